"""Audio geometry of video-SALMONN 2 (paper sec. 3.1, 4.1): the one place its defaults are written.

Whisper cuts audio into ``segment_s`` = 30 s segments (t_max of eq. 2) and its encoder yields
``encoder_frames_per_second`` = 50 states per second; the window-level Q-Former reads
``window_s`` = 0.2 s of states (10 frames) at a time and emits ``queries_per_window`` = 1 token
per window, so a segment gives 150 audio tokens (sec. 4.1).

Everything that needs these numbers reads them from here: the model config
(:class:`vs2_plugin.modeling.config.VideoSalmonn2Config` field defaults), the slot arithmetic
(:mod:`vs2_plugin.modeling.interleave`), the M-RoPE index, the builders (``vs2 build``,
``vs2 build-tiny``: flags default to ``None`` and fall through to :data:`AUDIO_DEFAULTS`), the
data plugin and ``vs2 tokens``. A model directory's values are read once, by
:func:`read_model_config` / :meth:`AudioGeometry.from_config`.

Pure Python: importing this module pulls in neither torch nor transformers.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vs2_plugin.errors import ConfigError

#: config.json key -> AudioGeometry field (keys as VideoSalmonn2Config writes them, top level)
CONFIG_KEYS = {"audio_window_s": "window_s", "audio_queries_per_window": "queries_per_window", "segment_s": "segment_s"}


@dataclass(frozen=True)
class AudioGeometry:
    """How audio becomes tokens. Defaults: paper sec. 4.1 (Whisper-large-v3 + 0.2 s windows).

    window_s: Q-Former window length in seconds.
    queries_per_window: learned queries, hence audio tokens, per window.
    segment_s: Whisper segment length t_max (eq. 2), seconds.
    encoder_frames_per_second: Whisper encoder states per second (1500 per 30 s).
    n_mels: log-mel bins of the encoder input (128 for large-v3).
    """

    window_s: float = 0.2
    queries_per_window: int = 1
    segment_s: float = 30.0
    encoder_frames_per_second: int = 50
    n_mels: int = 128

    def __post_init__(self):
        for name in ("window_s", "segment_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise ConfigError(f"audio geometry: {name} must be a positive number of seconds, got {value!r}")
        for name in ("queries_per_window", "encoder_frames_per_second", "n_mels"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ConfigError(f"audio geometry: {name} must be a positive integer, got {value!r}")
        frames = self.window_s * self.encoder_frames_per_second
        if abs(frames - round(frames)) > 1e-6 or round(frames) < 1:
            raise ConfigError(
                f"audio geometry: window_s={self.window_s} is not a whole number of encoder frames "
                f"({self.encoder_frames_per_second} per second)"
            )
        if self.segment_frames % round(frames):
            raise ConfigError(
                f"audio geometry: window_s={self.window_s} ({round(frames)} frames) does not divide the "
                f"{self.segment_frames} encoder frames of a {self.segment_s:g} s segment"
            )

    @property
    def segment_frames(self) -> int:
        """Encoder states per segment (Whisper's ``n_audio_ctx``, 1500)."""
        return round(self.segment_s * self.encoder_frames_per_second)

    @property
    def window_frames(self) -> int:
        """Encoder states per Q-Former window (10 with the defaults)."""
        return round(self.window_s * self.encoder_frames_per_second)

    @property
    def tokens_per_segment(self) -> int:
        """Audio tokens of one segment (150 with the defaults)."""
        return self.segment_frames // self.window_frames * self.queries_per_window

    @classmethod
    def from_config(cls, config: Any) -> AudioGeometry:
        """The geometry a model config pins: a ``config.json`` mapping or a loaded config object
        (``audio_window_s``, ``audio_queries_per_window``, ``segment_s``, ``audio_config``);
        keys it lacks keep their defaults."""
        get = config.get if isinstance(config, dict) else (lambda key, default=None: getattr(config, key, default))
        values: dict[str, Any] = {}
        for key, name in CONFIG_KEYS.items():
            if get(key) is not None:
                values[name] = get(key)
        audio = get("audio_config") or {}
        if audio.get("n_mels") is not None:
            values["n_mels"] = audio["n_mels"]
        segment_s = values.get("segment_s", cls.segment_s)
        if audio.get("n_audio_ctx") is not None:
            per_second = audio["n_audio_ctx"] / segment_s
            if abs(per_second - round(per_second)) > 1e-6:
                raise ConfigError(
                    f"audio_config.n_audio_ctx={audio['n_audio_ctx']} is not a whole number of encoder "
                    f"frames per second over segment_s={segment_s}"
                )
            values["encoder_frames_per_second"] = round(per_second)
        for name in ("window_s", "segment_s"):
            if name in values and not isinstance(values[name], bool) and isinstance(values[name], (int, float)):
                values[name] = float(values[name])
        return cls(**values)


#: The paper's geometry (sec. 4.1); every default of the package refers to this one object.
AUDIO_DEFAULTS = AudioGeometry()


@dataclass(frozen=True)
class VideoSampling:
    """Frame sampling of paper sec. 4.1: ``fps`` (phi) frames per second, at most ``max_frames`` (m).
    The defaults of ``vs2 tokens`` and of the data plugin when a processor carries no
    LLaMA-Factory ``video_fps`` / ``video_maxlen``."""

    fps: float = 1.0
    max_frames: int = 30

    def __post_init__(self) -> None:
        if isinstance(self.fps, bool) or not isinstance(self.fps, (int, float)) or not 0 < self.fps < math.inf:
            raise ConfigError(f"fps must be a finite number > 0, got {self.fps!r}")
        if isinstance(self.max_frames, bool) or not isinstance(self.max_frames, int) or self.max_frames < 1:
            raise ConfigError(f"max_frames must be an integer >= 1, got {self.max_frames!r}")

    def arguments(self) -> dict[str, Any]:
        """As LLaMA-Factory's arguments: its own defaults (2 frames/s, at most 128) are not the paper's."""
        return {"video_fps": self.fps, "video_maxlen": self.max_frames}


#: The paper's frame sampling (sec. 4.1).
VIDEO_DEFAULTS = VideoSampling()


def read_model_config(model_dir: str | Path) -> dict:
    """``model_dir/config.json`` as a dict: the one reader of a model directory's config
    (``{}`` when the folder has none); ConfigError naming the file when it is not a JSON object."""
    path = Path(model_dir) / "config.json"
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: not readable JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a JSON object")
    return data
