"""``vs2 build``: Qwen2.5-VL directory + openai-whisper checkpoint -> one model directory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from vs2_plugin.cli import main as cli_main
from vs2_plugin.errors import ConfigError, MediaError
from vs2_plugin.modeling.compose import compose, qwen_key_to_ours
from vs2_plugin.modeling.tiny import build_tiny_qwen25vl, build_tiny_whisper_checkpoint


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    root = tmp_path_factory.mktemp("compose")
    return build_tiny_qwen25vl(root / "qwen", seed=0), build_tiny_whisper_checkpoint(root / "tiny.pt", seed=0)


def test_key_mapping():
    assert qwen_key_to_ours("model.layers.0.mlp.up_proj.weight") == "model.language_model.layers.0.mlp.up_proj.weight"
    assert qwen_key_to_ours("visual.blocks.0.attn.qkv.weight") == "model.visual.blocks.0.attn.qkv.weight"
    assert qwen_key_to_ours("model.language_model.norm.weight") == "model.language_model.norm.weight"
    assert qwen_key_to_ours("lm_head.weight") == "lm_head.weight"


def test_build_copies_weights_and_adds_audio_tokens(parts, tmp_path):
    import whisper
    from transformers import AutoModelForImageTextToText, AutoTokenizer

    qwen_dir, whisper_pt = parts
    out = tmp_path / "vs2"
    assert (
        cli_main(
            ["build", "--visual-llm", str(qwen_dir), "--whisper", str(whisper_pt), "--out", str(out), "--window", "0.5"]
        )
        == 0
    )
    model, info = AutoModelForImageTextToText.from_pretrained(out, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    assert model.config.model_type == "video_salmonn2" and model.config.audio_tokens_per_segment == 60
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert tokenizer.convert_tokens_to_ids("<|audio_pad|>") == model.config.audio_token_id
    assert model.config.text_config.vocab_size == 1024  # spare rows: no resize needed

    source = AutoModelForImageTextToText.from_pretrained(qwen_dir)
    assert type(source).__name__ == "Qwen2_5_VLForConditionalGeneration"
    ours = model.state_dict()
    audio_rows = [model.config.audio_start_token_id, model.config.audio_token_id, model.config.audio_end_token_id]
    kept_rows = [i for i in range(1024) if i not in audio_rows]
    for key, tensor in source.state_dict().items():
        if key.endswith("embed_tokens.weight"):  # the new audio tokens' rows are initialised by the build
            assert torch.equal(ours[key][kept_rows], tensor[kept_rows]), key
            assert not torch.equal(ours[key][audio_rows], tensor[audio_rows]), key
            continue
        assert torch.equal(ours[key], tensor), key
    reference = whisper.load_model(str(whisper_pt), device="cpu").encoder.eval()
    mel = torch.randn(1, 80, 3000)
    with torch.no_grad():
        assert (model.model.audio_encoder(mel) - reference(mel)).abs().max() <= 1e-5


def test_build_is_deterministic_and_seeded(parts, tmp_path):
    qwen_dir, whisper_pt = parts
    a = load_file(str(compose(qwen_dir, whisper_pt, tmp_path / "a", seed=5, progress=False) / "model.safetensors"))
    b = load_file(str(compose(qwen_dir, whisper_pt, tmp_path / "b", seed=5, progress=False) / "model.safetensors"))
    c = load_file(str(compose(qwen_dir, whisper_pt, tmp_path / "c", seed=6, progress=False) / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    key = "model.audio_aligner.projection.weight"
    assert not torch.equal(a[key], c[key])


def test_resizes_embeddings_only_when_needed(parts, tmp_path):
    import json

    qwen_dir, whisper_pt = parts
    small = tmp_path / "small"
    small.mkdir()
    for item in qwen_dir.iterdir():
        (small / item.name).write_bytes(item.read_bytes())
    config = json.loads((small / "config.json").read_text())
    config.setdefault("text_config", {})["vocab_size"] = 1008  # no spare rows for the audio tokens
    (small / "config.json").write_text(json.dumps(config))
    weights = load_file(str(small / "model.safetensors"))
    for key in ("model.embed_tokens.weight", "lm_head.weight"):
        weights[key] = weights[key][:1008].clone()
    from safetensors.torch import save_file

    save_file(weights, str(small / "model.safetensors"), metadata={"format": "pt"})
    out = compose(small, whisper_pt, tmp_path / "resized", progress=False)
    composed = load_file(str(out / "model.safetensors"))
    assert composed["model.language_model.embed_tokens.weight"].shape[0] == 1024
    assert torch.equal(
        composed["model.language_model.embed_tokens.weight"][:1008], weights["model.embed_tokens.weight"]
    )


def test_errors_name_the_problem(parts, tmp_path):
    qwen_dir, whisper_pt = parts
    with pytest.raises(ConfigError, match="--visual-llm .*: not a model directory \\(no config.json\\)"):
        compose(tmp_path, whisper_pt, tmp_path / "x", progress=False)
    with pytest.raises(ConfigError, match="--visual-llm .*nope: not found"):
        compose(tmp_path / "nope", whisper_pt, tmp_path / "x", progress=False)
    with pytest.raises(MediaError, match="Whisper checkpoint not found"):
        compose(qwen_dir, tmp_path / "none.pt", tmp_path / "y", progress=False)
    with pytest.raises(MediaError, match="a folder: give the openai-whisper checkpoint file itself"):
        compose(qwen_dir, tmp_path, tmp_path / "y", progress=False)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "f").write_text("x")
    with pytest.raises(ConfigError, match="not empty"):
        compose(qwen_dir, whisper_pt, tmp_path / "full", progress=False)
    with pytest.raises(ConfigError, match="audio_window_s=0.3"):
        compose(qwen_dir, whisper_pt, tmp_path / "z", audio_window_s=0.33, progress=False)
    with pytest.raises(ConfigError, match="audio_window_s must be a positive number of seconds, got inf"):
        compose(qwen_dir, whisper_pt, tmp_path / "z", audio_window_s=float("inf"), progress=False)


def _copy_of(qwen_dir, to):
    import shutil

    return Path(shutil.copytree(qwen_dir, to))


def test_unreadable_source_parts_are_named_and_leave_no_out(parts, tmp_path):
    qwen_dir, whisper_pt = parts
    out = tmp_path / "out"

    no_tokenizer = _copy_of(qwen_dir, tmp_path / "no_tokenizer")
    for path in no_tokenizer.glob("tokenizer*"):
        path.unlink()
    # it would load a tokenizer of a few tokens, and the audio tokens would take real vocabulary rows
    with pytest.raises(MediaError, match=r"<\|video_pad\|> is id 0, video_token_id is \d+; are the tokenizer files"):
        compose(no_tokenizer, whisper_pt, out, progress=False)

    corrupt = _copy_of(qwen_dir, tmp_path / "corrupt")
    (corrupt / "model.safetensors").write_bytes(b"\x01\x02\x03")
    with pytest.raises(MediaError, match="model.safetensors: cannot read it as safetensors"):
        compose(corrupt, whisper_pt, out, progress=False)
    assert not out.exists() and not list(tmp_path.glob(".out.tmp-*"))  # no half-written model

    indexed = _copy_of(qwen_dir, tmp_path / "indexed")
    (indexed / "model.safetensors").rename(indexed / "model-00001-of-00002.safetensors")
    weight_map = {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}
    (indexed / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    with pytest.raises(MediaError, match="names shard\\(s\\) not in the folder: model-00002-of-00002.safetensors"):
        compose(indexed, whisper_pt, out, progress=False)

    bad_config = _copy_of(qwen_dir, tmp_path / "bad_config")
    (bad_config / "config.json").write_text("{not json")
    with pytest.raises(MediaError, match="cannot read its config or tokenizer"):
        compose(bad_config, whisper_pt, out, progress=False)
    assert not out.exists()
