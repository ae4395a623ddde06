"""The Whisper encoder equals openai-whisper's AudioEncoder on the same random weights."""

from __future__ import annotations

import pytest
import torch
import whisper.model as wm

from vs2_plugin.errors import MediaError
from vs2_plugin.modeling.tiny import build_tiny_whisper_checkpoint
from vs2_plugin.modeling.whisper_encoder import WhisperAudioEncoder, load_whisper_checkpoint, whisper_sinusoids


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return build_tiny_whisper_checkpoint(tmp_path_factory.mktemp("whisper") / "tiny.pt", seed=3)


@pytest.mark.parametrize("use_sdpa", [True, False])
def test_encoder_matches_openai_whisper(checkpoint, use_sdpa):
    import whisper

    reference = whisper.load_model(str(checkpoint), device="cpu").encoder.eval()
    audio_config, state = load_whisper_checkpoint(checkpoint)
    ours = WhisperAudioEncoder.from_audio_config(audio_config).eval()
    ours.load_state_dict(state, strict=True)
    mel = torch.randn(2, audio_config["n_mels"], 3000, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        if use_sdpa:
            expected = reference(mel)
        else:
            with wm.disable_sdpa():  # openai-whisper's explicit softmax path
                expected = reference(mel)
        got = ours(mel)
    assert got.shape == (2, 1500, audio_config["n_audio_state"])
    assert (got - expected).abs().max().item() <= 1e-5


def test_sinusoids_match_openai_whisper():
    assert torch.allclose(whisper_sinusoids(1500, 64), wm.sinusoids(1500, 64), atol=1e-6)


def test_bad_mel_shape_is_reported():
    encoder = WhisperAudioEncoder(80, 1500, 32, 2, 1)
    with pytest.raises(ValueError, match=r"\(segments, 80, 3000\)"):
        encoder(torch.zeros(1, 80, 2999))


def test_checkpoint_errors(tmp_path):
    with pytest.raises(MediaError, match="not found"):
        load_whisper_checkpoint(tmp_path / "missing.pt")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(MediaError, match="not a loadable Whisper checkpoint"):
        load_whisper_checkpoint(garbage)
    torch.save({"weights": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(MediaError, match="'dims' and 'model_state_dict'"):
        load_whisper_checkpoint(tmp_path / "other.pt")


def test_checkpoint_errors_are_one_line(tmp_path):
    import argparse

    partial = tmp_path / "partial.pt"
    torch.save({"dims": {"n_mels": 80, "n_audio_state": 64}, "model_state_dict": {}}, partial)
    with pytest.raises(MediaError, match=r"'dims' lack the encoder's whole numbers \['n_audio_ctx', 'n_audio_head'"):
        load_whisper_checkpoint(partial)
    pickled = tmp_path / "pickled.pt"  # an object weights_only refuses: torch explains at length
    torch.save({"dims": argparse.Namespace(n_mels=80), "model_state_dict": {}}, pickled)
    with pytest.raises(MediaError, match="not a loadable Whisper checkpoint") as info:
        load_whisper_checkpoint(pickled)
    assert "\n" not in str(info.value)
