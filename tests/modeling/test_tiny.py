"""``vs2 build-tiny``: deterministic, complete model directories that load back."""

from __future__ import annotations

import torch
from safetensors.torch import load_file

from vs2_plugin.cli import main as cli_main
from vs2_plugin.modeling.tiny import build_tiny_model, build_tiny_text_model


def same_tensors(a, b) -> bool:
    x, y = load_file(str(a / "model.safetensors")), load_file(str(b / "model.safetensors"))
    return x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)


def test_build_tiny_is_deterministic_for_a_seed(tmp_path, tiny_model_dir):
    assert cli_main(["build-tiny", "--out", str(tmp_path / "again"), "--seed", "0"]) == 0
    assert same_tensors(tiny_model_dir, tmp_path / "again")
    # a model folder that may have been trained further is not replaced without being asked to
    assert cli_main(["build-tiny", "--out", str(tmp_path / "again"), "--seed", "1"]) == 2
    assert same_tensors(tiny_model_dir, tmp_path / "again")
    assert cli_main(["build-tiny", "--out", str(tmp_path / "again"), "--seed", "1", "--overwrite"]) == 0
    assert not same_tensors(tiny_model_dir, tmp_path / "again")
    assert (tmp_path / "again" / "tokenizer.json").read_text() == (tiny_model_dir / "tokenizer.json").read_text()
    build_tiny_model(tmp_path / "other", seed=1)
    assert not same_tensors(tiny_model_dir, tmp_path / "other")


def test_tiny_directory_has_tokenizer_processor_and_chat_template(tiny_model_dir):
    from transformers import AutoConfig, AutoProcessor

    from vs2_plugin.modeling import register_auto_classes

    register_auto_classes()
    config = AutoConfig.from_pretrained(tiny_model_dir)
    assert config.model_type == "video_salmonn2" and config.audio_window_s == 0.2
    processor = AutoProcessor.from_pretrained(tiny_model_dir)
    assert type(processor).__name__ == "Qwen2_5_VLProcessor"
    tokenizer = processor.tokenizer
    assert type(tokenizer).__name__ == "Qwen2Tokenizer"
    for name in (
        "audio_token_id",
        "audio_start_token_id",
        "audio_end_token_id",
        "video_token_id",
        "vision_start_token_id",
    ):
        assert getattr(config, name) < config.text_config.vocab_size
    assert tokenizer.convert_tokens_to_ids("<|audio_pad|>") == config.audio_token_id
    assert tokenizer.eos_token == "<|im_end|>" and tokenizer.pad_token == "<|endoftext|>"
    messages = [{"role": "user", "content": [{"type": "video"}, {"type": "audio"}, {"type": "text", "text": "Hi"}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True)
    assert "<|vision_start|><|video_pad|><|vision_end|><|audio_start|><|audio_pad|><|audio_end|>Hi<|im_end|>" in text
    assert text.endswith("<|im_start|>assistant\n")
    # The processor expands the video placeholder for a real (tiny) clip.
    video = torch.randint(0, 255, (4, 3, 56, 84), dtype=torch.uint8)
    text = processor.apply_chat_template([{"role": "user", "content": [{"type": "video"}]}])
    out = processor(text=[text], videos=[video], return_tensors="pt", do_sample_frames=False)
    grid = out["video_grid_thw"][0]
    assert (out["input_ids"] == config.video_token_id).sum() == grid.prod() // 4


def test_text_only_model(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = build_tiny_text_model(tmp_path / "text", seed=0)
    model = AutoModelForCausalLM.from_pretrained(out)
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert model.config.model_type == "qwen2"
    ids = tokenizer.apply_chat_template(
        [{"role": "user", "content": "hello"}], add_generation_prompt=True, return_tensors="pt"
    )
    ids = ids["input_ids"] if not torch.is_tensor(ids) else ids
    generated = model.generate(ids, max_new_tokens=3, do_sample=False)
    assert generated.shape[1] == ids.shape[1] + 3
