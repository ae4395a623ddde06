"""The audio branch of a model as the data side needs it, read from the model's config as
transformers loads it. No LLaMA-Factory import here: the training-data check uses it too."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from vs2_plugin.errors import DataError
from vs2_plugin.modeling.geometry import AUDIO_DEFAULTS, AudioGeometry


@dataclass(frozen=True)
class AudioSettings:
    """The model's audio branch, as far as the data side needs it (from its config)."""

    enabled: bool
    window_s: float = AUDIO_DEFAULTS.window_s
    queries_per_window: int = AUDIO_DEFAULTS.queries_per_window
    n_mels: int = AUDIO_DEFAULTS.n_mels
    segment_s: float = AUDIO_DEFAULTS.segment_s


def audio_settings_of(config) -> AudioSettings:
    """The data side of a loaded model config (a ``VideoSalmonn2Config``; any other: no audio)."""
    from vs2_plugin.modeling.config import VideoSalmonn2Config

    if not isinstance(config, VideoSalmonn2Config):
        return AudioSettings(enabled=False)
    geometry = AudioGeometry.from_config(config)
    return AudioSettings(
        enabled=True,
        window_s=geometry.window_s,
        queries_per_window=geometry.queries_per_window,
        n_mels=geometry.n_mels,
        segment_s=geometry.segment_s,
    )


@lru_cache(maxsize=32)
def model_audio_settings(name_or_path: str) -> AudioSettings:
    """Settings of the checkpoint ``name_or_path`` (a folder or a hub id, cached files only when
    offline) through ``AutoConfig``; a config that cannot be read is an error, never "no audio"."""
    from transformers import AutoConfig

    from vs2_plugin.modeling import register_auto_classes

    if not name_or_path:
        return AudioSettings(enabled=False)
    register_auto_classes()
    try:
        config = AutoConfig.from_pretrained(name_or_path)
    except (OSError, ValueError) as exc:  # never guess "no audio": that would drop it in silence
        raise DataError(
            f"cannot read the model config of {name_or_path!r} (the processor's checkpoint) to learn "
            f"its audio settings: {exc}"
        ) from None
    return audio_settings_of(config)
