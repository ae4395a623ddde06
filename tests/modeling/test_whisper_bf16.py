"""Whisper encoder in bf16 (how a 7B run loads it) against openai-whisper in fp32, 128 mel bins."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from vs2_plugin.modeling.tiny import build_tiny_whisper_checkpoint
from vs2_plugin.modeling.whisper_encoder import WhisperAudioEncoder, load_whisper_checkpoint

#: bf16 keeps 8 significand bits (unit roundoff 2**-9 ~ 2e-3); through conv, 2 blocks and the
#: final LayerNorm the error stays a few roundoffs (measured: relative 3.4e-3, worst frame
#: cosine 0.99998), so these bounds leave ~3x headroom and still catch a wrong op or layout.
MAX_RELATIVE_L2 = 1e-2
MIN_FRAME_COSINE = 0.9995


def test_bf16_encoder_is_close_to_openai_whisper_fp32(repo_root, tmp_path):
    import whisper

    path = build_tiny_whisper_checkpoint(tmp_path / "large-v3-tiny.pt", seed=2, n_mels=128)  # large-v3: 128 mels
    reference = whisper.load_model(str(path), device="cpu").encoder.eval()
    audio_config, state = load_whisper_checkpoint(path)
    ours = WhisperAudioEncoder.from_audio_config(audio_config).eval()
    ours.load_state_dict(state, strict=True)
    ours = ours.to(torch.bfloat16)
    assert ours.positional_embedding.dtype == torch.bfloat16  # as from_pretrained(dtype=bf16) leaves it
    speech = whisper.load_audio(str(repo_root / "vs2_plugin/assets/demo_data/media/speech.mp3"))
    mel = whisper.log_mel_spectrogram(whisper.pad_or_trim(speech), n_mels=128)[None]  # real speech + padding
    with torch.no_grad():
        expected = reference(mel)
        got = ours(mel.to(torch.bfloat16))
    assert got.dtype == torch.bfloat16 and got.shape == expected.shape == (1, 1500, audio_config["n_audio_state"])
    got = got.float()
    relative = ((got - expected).norm() / expected.norm()).item()
    worst_frame = F.cosine_similarity(got[0], expected[0], dim=-1).min().item()
    assert relative <= MAX_RELATIVE_L2, relative
    assert worst_frame >= MIN_FRAME_COSINE, worst_frame
    assert relative > 0  # really computed in bf16, not silently upcast
