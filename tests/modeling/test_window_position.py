"""``audio_window_position: learned``: a vector per window added to that window's audio tokens."""

from __future__ import annotations

import pytest
import torch

from vs2_plugin.errors import ConfigError
from vs2_plugin.modeling.config import VideoSalmonn2Config
from vs2_plugin.modeling.qformer import WindowPositionOffsets, WindowQFormerAligner
from vs2_plugin.modeling.tiny import tiny_audio_config_dict

TEXT = dict(hidden_size=8, num_attention_heads=2, num_key_value_heads=1, intermediate_size=16, num_hidden_layers=1)


def config(**kwargs) -> VideoSalmonn2Config:
    return VideoSalmonn2Config(
        audio_config=tiny_audio_config_dict(),
        qformer_hidden=8,
        qformer_heads=2,
        text_config=TEXT,
        **kwargs,
    )


def test_paper_default_has_no_window_position():
    assert config().audio_window_position == "none"
    assert WindowQFormerAligner(config()).window_position is None
    with pytest.raises(ConfigError, match="audio_window_position must be one of .*'sinusoid'"):
        config(audio_window_position="sinusoid")


def test_offsets_hand_worked():
    offsets = WindowPositionOffsets(windows=3, hidden=2)
    with torch.no_grad():
        offsets.table.copy_(torch.tensor([[1.0, 0.0], [0.0, 2.0], [5.0, 5.0]]))
    tokens = torch.zeros(1, 4, 2)  # two windows of two queries each
    out = offsets(tokens, queries_per_window=2)
    assert out[0].tolist() == [[1.0, 0.0], [1.0, 0.0], [0.0, 2.0], [0.0, 2.0]]


def test_aligner_adds_the_row_of_each_window_and_starts_at_zero():
    torch.manual_seed(0)
    cfg = config(audio_window_position="learned", audio_queries_per_window=2)
    aligner = WindowQFormerAligner(cfg)
    assert aligner.window_position.table.shape == (cfg.audio_windows_per_segment, 8)
    states = torch.randn(2, cfg.audio_config["n_audio_ctx"], cfg.audio_config["n_audio_state"])
    segments = torch.tensor([0, 1])
    with torch.no_grad():
        before = aligner(states, segments)
        aligner.window_position.table.normal_()
        after = aligner(states, segments)
    table = aligner.window_position.table
    expected = table.repeat_interleave(2, dim=0)  # window w's row on both of its queries
    assert torch.allclose(after - before, expected.expand(2, -1, -1), atol=1e-6)
    assert not torch.allclose(after[0, 0], after[0, 2])  # same segment, other window: other row


def test_zero_at_init_in_the_model_and_trained_with_the_aligner(tiny_model_dir, tmp_path):
    from transformers import AutoModelForImageTextToText

    from vs2_plugin.modeling import register_auto_classes
    from vs2_plugin.modeling.freezing import apply_freezing
    from vs2_plugin.modeling.tiny import build_tiny_model

    register_auto_classes()
    plain = AutoModelForImageTextToText.from_pretrained(tiny_model_dir)
    out = build_tiny_model(tmp_path / "wp", audio_window_position="learned")
    model = AutoModelForImageTextToText.from_pretrained(out)
    table = model.model.audio_aligner.window_position.table
    assert table.abs().max() == 0  # a trained aligner's output is unchanged until the table trains
    mel = torch.randn(1, 80, 3000)
    with torch.no_grad():
        ours = model.model.get_audio_features(mel, torch.tensor([1]), torch.tensor([12]))
        theirs = plain.model.get_audio_features(mel, torch.tensor([1]), torch.tensor([12]))
    assert torch.equal(ours, theirs)  # same seed, same other weights: the zero table adds nothing
    apply_freezing(model, "audio_align")
    assert table.requires_grad
    tokens = model.model.get_audio_features(mel, torch.tensor([1]), torch.tensor([12]))
    (tokens * torch.randn_like(tokens)).sum().backward()
    assert table.grad[:12].abs().sum(dim=1).gt(0).all()  # every window of the audio gets a gradient
    assert table.grad[12:].abs().sum() == 0  # windows past the audio's end do not


def test_vs2_build_writes_a_zero_table(tmp_path):
    from safetensors.torch import load_file
    from transformers import AutoConfig

    from vs2_plugin.cli import main
    from vs2_plugin.modeling.tiny import build_tiny_qwen25vl, build_tiny_whisper_checkpoint

    qwen = build_tiny_qwen25vl(tmp_path / "qwen")
    whisper = build_tiny_whisper_checkpoint(tmp_path / "w.pt")
    out = tmp_path / "vs2"
    argv = ["build", "--visual-llm", str(qwen), "--whisper", str(whisper), "--out", str(out)]
    assert main([*argv, "--window-position", "learned"]) == 0
    assert AutoConfig.from_pretrained(out).audio_window_position == "learned"
    table = load_file(str(out / "model.safetensors"))["model.audio_aligner.window_position.table"]
    assert table.shape == (150, 64) and table.abs().max() == 0
