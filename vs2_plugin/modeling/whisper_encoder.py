"""Whisper's audio encoder (openai-whisper architecture), Encoder_Audio of eq. (2).

Parameter names equal openai-whisper's ``AudioEncoder`` except its MLP (``mlp.0``/``mlp.2``
here ``mlp.fc1``/``mlp.fc2``); :func:`load_whisper_encoder_state_dict` maps the keys. Attention
uses ``F.scaled_dot_product_attention``; LayerNorm runs in float32 like openai-whisper's.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from vs2_plugin.errors import ConfigError


def whisper_sinusoids(length: int, channels: int, max_timescale: float = 10000.0) -> torch.Tensor:
    """Whisper's fixed positional table (sin half, then cos half), shape (length, channels)."""
    if channels % 2:
        raise ConfigError(f"sinusoidal embedding needs an even width, got {channels}")
    log_increment = math.log(max_timescale) / (channels // 2 - 1)
    inv_timescales = torch.exp(-log_increment * torch.arange(channels // 2, dtype=torch.float32))
    scaled = torch.arange(length, dtype=torch.float32)[:, None] * inv_timescales[None, :]
    return torch.cat([torch.sin(scaled), torch.cos(scaled)], dim=1)


class FloatLayerNorm(nn.LayerNorm):
    """LayerNorm computed in float32 and cast back (stable under bf16)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x.float(), self.normalized_shape, self.weight.float(), self.bias.float(), self.eps).to(
            x.dtype
        )


class WhisperSelfAttention(nn.Module):
    def __init__(self, n_state: int, n_head: int):
        super().__init__()
        self.n_head = n_head
        self.query = nn.Linear(n_state, n_state)
        self.key = nn.Linear(n_state, n_state, bias=False)
        self.value = nn.Linear(n_state, n_state)
        self.out = nn.Linear(n_state, n_state)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, width = x.shape

        def heads(t):
            return t.view(batch, length, self.n_head, -1).transpose(1, 2)

        attended = F.scaled_dot_product_attention(heads(self.query(x)), heads(self.key(x)), heads(self.value(x)))
        return self.out(attended.transpose(1, 2).reshape(batch, length, width))


class FeedForward(nn.Module):
    """Linear-GELU-Linear with named layers (``fc1``/``fc2``): LLaMA-Factory picks LoRA targets by
    module-name substrings, and ``nn.Sequential``'s ``0``/``2`` would match every ``layers.0``."""

    def __init__(self, width: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(width, hidden)
        self.fc2 = nn.Linear(hidden, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class WhisperEncoderBlock(nn.Module):
    def __init__(self, n_state: int, n_head: int):
        super().__init__()
        self.attn = WhisperSelfAttention(n_state, n_head)
        self.attn_ln = FloatLayerNorm(n_state)
        self.mlp = FeedForward(n_state, 4 * n_state)
        self.mlp_ln = FloatLayerNorm(n_state)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.attn_ln(x))
        return x + self.mlp(self.mlp_ln(x))


class WhisperAudioEncoder(nn.Module):
    """(S, n_mels, 2 * n_ctx) log-mel segments -> (S, n_ctx, n_state) encoder states."""

    def __init__(self, n_mels: int, n_audio_ctx: int, n_audio_state: int, n_audio_head: int, n_audio_layer: int):
        super().__init__()
        self.n_mels = n_mels
        self.n_ctx = n_audio_ctx
        self.conv1 = nn.Conv1d(n_mels, n_audio_state, kernel_size=3, padding=1)
        self.conv2 = nn.Conv1d(n_audio_state, n_audio_state, kernel_size=3, stride=2, padding=1)
        # Persistent like openai-whisper's, so its state dicts map one to one.
        self.register_buffer("positional_embedding", whisper_sinusoids(n_audio_ctx, n_audio_state))
        self.blocks = nn.ModuleList([WhisperEncoderBlock(n_audio_state, n_audio_head) for _ in range(n_audio_layer)])
        self.ln_post = FloatLayerNorm(n_audio_state)

    @classmethod
    def from_audio_config(cls, audio_config: dict) -> "WhisperAudioEncoder":
        return cls(
            **{k: audio_config[k] for k in ("n_mels", "n_audio_ctx", "n_audio_state", "n_audio_head", "n_audio_layer")}
        )

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        if mel.dim() != 3 or mel.shape[1] != self.n_mels or mel.shape[2] != 2 * self.n_ctx:
            raise ValueError(
                f"audio_features must have shape (segments, {self.n_mels}, {2 * self.n_ctx}), got {tuple(mel.shape)}"
            )
        x = mel.to(self.conv1.weight.dtype)
        x = F.gelu(self.conv1(x))
        x = F.gelu(self.conv2(x))
        x = x.transpose(1, 2)
        x = (x + self.positional_embedding).to(x.dtype)
        for block in self.blocks:
            x = block(x)
        return self.ln_post(x)


def load_whisper_checkpoint(path) -> tuple[dict, dict]:
    """Read an openai-whisper checkpoint (``{"dims": ..., "model_state_dict": ...}``) safely.

    Returns (encoder dims as an ``audio_config`` dict, encoder state dict with the ``encoder.``
    prefix removed). Uses ``torch.load(weights_only=True)``: no pickled code runs.
    """
    from vs2_plugin.errors import MediaError

    path = Path(path)
    if path.is_dir():
        raise MediaError(path, "a folder: give the openai-whisper checkpoint file itself (e.g. large-v3.pt)")
    if not path.is_file():
        raise MediaError(path, "Whisper checkpoint not found")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - report any unreadable file the same way
        # the first line: torch's refusal of pickled code goes on for a page of advice
        reason = (str(exc).strip().splitlines() or [""])[0]
        raise MediaError(path, f"not a loadable Whisper checkpoint ({exc.__class__.__name__}: {reason})") from exc
    if not isinstance(checkpoint, dict) or "dims" not in checkpoint or "model_state_dict" not in checkpoint:
        raise MediaError(path, "expected an openai-whisper checkpoint with 'dims' and 'model_state_dict'")
    dims = checkpoint["dims"] if isinstance(checkpoint["dims"], dict) else {}
    keys = ("n_mels", "n_audio_ctx", "n_audio_state", "n_audio_head", "n_audio_layer")
    missing = [k for k in keys if not isinstance(dims.get(k), int) or isinstance(dims.get(k), bool)]
    if missing:
        raise MediaError(
            path, f"its 'dims' lack the encoder's whole numbers {missing}; not an openai-whisper checkpoint"
        )
    audio_config = {k: dims[k] for k in keys}
    return audio_config, load_whisper_encoder_state_dict(checkpoint["model_state_dict"])


def load_whisper_encoder_state_dict(state_dict: dict) -> dict:
    """Keep the encoder part of an openai-whisper state dict, keys as :class:`WhisperAudioEncoder` names them.

    Accepts a whole-model state dict (``encoder.*`` / ``decoder.*``) or an encoder-only one.
    """
    if any(key.startswith("encoder.") for key in state_dict):
        state_dict = {key[len("encoder.") :]: value for key, value in state_dict.items() if key.startswith("encoder.")}
    return {openai_key_to_ours(key): value for key, value in state_dict.items()}


def openai_key_to_ours(key: str) -> str:
    """``blocks.3.mlp.0.weight`` -> ``blocks.3.mlp.fc1.weight`` (and ``mlp.2`` -> ``mlp.fc2``)."""
    return key.replace(".mlp.0.", ".mlp.fc1.").replace(".mlp.2.", ".mlp.fc2.")
