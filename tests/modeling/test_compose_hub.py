"""``vs2 build`` on the published checkpoint layout: flat config, sharded bf16 safetensors, real token ids, 128 mels."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open

from tests.support.hub_layout import IDS, hub_tokenizer, write_hub_qwen25vl
from vs2_plugin.modeling.compose import compose, qwen_key_to_ours
from vs2_plugin.modeling.tiny import build_tiny_whisper_checkpoint

AUDIO_IDS = [151665, 151666, 151667]  # <|audio_start|>, <|audio_pad|>, <|audio_end|> after <|file_sep|> 151664


def _read_sharded(directory) -> dict:
    """Every tensor of a model directory, sharded (index + shards) or single-file."""
    if not (directory / "model.safetensors.index.json").is_file():
        from safetensors.torch import load_file

        return load_file(str(directory / "model.safetensors"))
    index = json.loads((directory / "model.safetensors.index.json").read_text())["weight_map"]
    tensors = {}
    for name in sorted(set(index.values())):
        with safe_open(str(directory / name), framework="pt") as reader:
            tensors.update({k: reader.get_tensor(k) for k in reader.keys()})
    assert tensors.keys() == index.keys()
    return tensors


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    root = tmp_path_factory.mktemp("hub")
    tokenizer = hub_tokenizer()
    whisper_pt = build_tiny_whisper_checkpoint(root / "large-v3-tiny.pt", seed=1, n_mels=128)
    qwen_7b = write_hub_qwen25vl(root / "Qwen2.5-VL-7B-Instruct", tokenizer, vocab_size=152064)
    qwen_3b = write_hub_qwen25vl(
        root / "Qwen2.5-VL-3B-Instruct", tokenizer, vocab_size=151936, tie_word_embeddings=True
    )
    return {"whisper": whisper_pt, "7b": qwen_7b, "3b": qwen_3b, "root": root}


@pytest.fixture(scope="module")
def composed_7b(hub):
    return compose(hub["7b"], hub["whisper"], hub["root"] / "vs2-7b", progress=False)


def test_flat_config_sharded_bf16_real_ids(hub, composed_7b):
    from transformers import AutoConfig, AutoTokenizer

    out = composed_7b
    config = AutoConfig.from_pretrained(out)
    assert config.model_type == "video_salmonn2"
    assert [config.audio_start_token_id, config.audio_token_id, config.audio_end_token_id] == AUDIO_IDS
    text = config.text_config
    assert (text.vocab_size, text.hidden_size, text.num_hidden_layers, text.num_key_value_heads) == (152064, 64, 2, 2)
    assert text.rope_parameters["mrope_section"] == [2, 3, 3] and text.rope_parameters["rope_theta"] == 1000000.0
    assert config.video_token_id == IDS["<|video_pad|>"] and config.vision_start_token_id == IDS["<|vision_start|>"]
    assert config.vision_config.tokens_per_second == 2 and config.vision_config.depth == 2
    assert config.audio_config["n_mels"] == 128 and config.dtype == torch.bfloat16
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert [
        tokenizer.convert_tokens_to_ids(t) for t in ("<|audio_start|>", "<|audio_pad|>", "<|audio_end|>")
    ] == AUDIO_IDS
    assert len(tokenizer) == 151668 <= text.vocab_size  # spare rows: no resize
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(out)  # the hub's processor files came along
    assert (
        type(processor).__name__ == "Qwen2_5_VLProcessor"
        and processor.image_processor.size["longest_edge"] == 28 * 28 * 16
    )
    assert processor.tokenizer.convert_tokens_to_ids("<|audio_pad|>") == AUDIO_IDS[1]

    source, ours = _read_sharded(hub["7b"]), _read_sharded(out)
    assert len(set(json.loads((hub["7b"] / "model.safetensors.index.json").read_text())["weight_map"].values())) == 3
    assert all(v.dtype == torch.bfloat16 for v in ours.values())
    kept = [i for i in range(152064) if i not in AUDIO_IDS]
    for key, tensor in source.items():
        mine = ours[qwen_key_to_ours(key)]
        if key == "model.embed_tokens.weight":
            assert torch.equal(mine[kept], tensor[kept])
            assert not torch.equal(mine[AUDIO_IDS], tensor[AUDIO_IDS])  # initialised, not the spare rows
        else:
            assert torch.equal(mine, tensor), key
    assert ours["model.audio_encoder.conv1.weight"].shape[1] == 128


def test_composed_7b_layout_loads_and_runs_audio_in_bf16(composed_7b):
    from transformers import AutoModelForImageTextToText

    model, info = AutoModelForImageTextToText.from_pretrained(
        composed_7b, dtype=torch.bfloat16, output_loading_info=True
    )
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    config = model.config
    tokens = config.audio_tokens_per_segment  # one 30 s segment of 128-mel features
    ids = (
        [IDS["<|im_start|>"], config.audio_start_token_id]
        + [config.audio_token_id] * tokens
        + [config.audio_end_token_id, 40, 41]
    )
    mel = torch.randn(1, 128, 3000, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = model(
            input_ids=torch.tensor([ids]),
            audio_features=mel.to(torch.bfloat16),
            audio_segment_counts=torch.tensor([1]),
            audio_token_counts=torch.tensor([tokens]),
        )
    assert out.logits.shape == (1, len(ids), 152064) and torch.isfinite(out.logits).all()


def test_tied_3b_layout_without_lm_head(hub, tmp_path):
    from transformers import AutoModelForImageTextToText

    assert "lm_head.weight" not in _read_sharded(hub["3b"])
    out = compose(hub["3b"], hub["whisper"], tmp_path / "vs2-3b", progress=False)
    model, info = AutoModelForImageTextToText.from_pretrained(out, dtype=torch.bfloat16, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    assert model.config.text_config.vocab_size == 151936 and model.config.audio_token_id == 151666
    assert model.lm_head.weight.data_ptr() == model.get_input_embeddings().weight.data_ptr()  # still tied
