"""``VideoSalmonn2Config``: Qwen2.5-VL's config plus the audio branch (paper sec. 3.1, 4.1).

Audio geometry (Whisper): a segment of ``segment_s`` = 30 s is a log-mel of 3000 frames, the
encoder turns it into ``n_audio_ctx`` = 1500 states (50 per second). The window-level Q-Former
reads ``audio_window_s`` of states at a time (0.2 s = 10 states in the paper) and emits
``audio_queries_per_window`` tokens per window, so a 30 s segment gives
``1500 / 10 * 1 = 150`` audio tokens (sec. 4.1).
"""

from __future__ import annotations

import math

from huggingface_hub.dataclasses import strict
from transformers import Qwen2_5_VLConfig

from vs2_plugin.errors import ConfigError
from vs2_plugin.modeling import MODEL_TYPE
from vs2_plugin.modeling.geometry import AUDIO_DEFAULTS

#: openai-whisper ``ModelDimensions`` fields of the audio encoder.
AUDIO_CONFIG_KEYS = ("n_mels", "n_audio_ctx", "n_audio_state", "n_audio_head", "n_audio_layer")

#: Whisper-large-v3's encoder (the paper's audio encoder).
WHISPER_LARGE_V3_AUDIO = dict(
    n_mels=AUDIO_DEFAULTS.n_mels,
    n_audio_ctx=AUDIO_DEFAULTS.segment_frames,
    n_audio_state=1280,
    n_audio_head=20,
    n_audio_layer=32,
)

#: Qwen2.5-VL-7B-Instruct's language model (its public config.json): the shapes the GPU smoke test
#: (scripts/gpu_smoke.py) and the 7B variant of benchmarks/gdpo_step.py build random models of.
QWEN25VL_7B_TEXT = dict(
    hidden_size=3584,
    intermediate_size=18944,
    num_hidden_layers=28,
    num_attention_heads=28,
    num_key_value_heads=4,
    vocab_size=152064,
    max_position_embeddings=128000,
)
#: its rotary embedding: head_dim 128 -> 64 frequencies split over (time, height, width)
QWEN25VL_7B_ROPE = {"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [16, 24, 24]}
#: its vision tower
QWEN25VL_7B_VISION = dict(
    depth=32, hidden_size=1280, intermediate_size=3420, num_heads=16, out_hidden_size=3584, window_size=112
)

SEGMENT_POSITION_KINDS = ("learned", "sinusoidal")

#: Whisper's log-mel hop is 10 ms and its encoder halves the frame rate: 3000 mel frames per 30 s.
MEL_FRAMES_PER_SECOND = 100


@strict(accept_kwargs=True)
class VideoSalmonn2Config(Qwen2_5_VLConfig):
    r"""Qwen2.5-VL config with a Whisper encoder and a window-level Q-Former audio aligner.

    audio_config (`dict`): openai-whisper encoder dimensions (``n_mels``, ``n_audio_ctx``,
        ``n_audio_state``, ``n_audio_head``, ``n_audio_layer``); default Whisper-large-v3.
    audio_window_s (`float`): Q-Former window length in seconds; default
        :data:`vs2_plugin.modeling.geometry.AUDIO_DEFAULTS` (paper sec. 4.1), as for the next two.
    audio_queries_per_window (`int`): learned queries, hence audio tokens, per window.
    qformer_layers (`int`, 2): BERT-style layers (self-attn over queries, cross-attn to the window).
    qformer_hidden (`int`, 768), qformer_heads (`int`, 12), qformer_intermediate (`int`, 4 x hidden).
    segment_s (`float`): audio encoder segment length t_max (eq. 2).
    max_audio_segments (`int`, 64): rows of the segment position embedding (eq. 3), 32 min of audio.
    segment_position (`str`, "learned"): "learned" = an embedding matrix indexed by the segment
        number (the paper's Z^Pos); "sinusoidal" = fixed sinusoids of the segment number (the
        public video-SALMONN 2 code). Both are added to every encoder frame of the segment.
    audio_token_id / audio_start_token_id / audio_end_token_id: ids of ``<|audio_pad|>``,
        ``<|audio_start|>``, ``<|audio_end|>``.
    audio_encoder_cache_mb (`int`, 0): megabytes of frozen Whisper encoder states kept per process,
        keyed by the segment's content (:mod:`vs2_plugin.modeling.frozen_cache`); 0 = off. Results
        do not change; a run that sees its clips again (epochs, sampling rounds) skips re-encoding.
    """

    model_type = MODEL_TYPE

    audio_config: dict | None = None
    audio_window_s: float = AUDIO_DEFAULTS.window_s
    audio_queries_per_window: int = AUDIO_DEFAULTS.queries_per_window
    qformer_layers: int = 2
    qformer_hidden: int = 768
    qformer_heads: int = 12
    qformer_intermediate: int | None = None
    segment_s: float = AUDIO_DEFAULTS.segment_s
    max_audio_segments: int = 64
    segment_position: str = "learned"
    audio_token_id: int = 151666
    audio_start_token_id: int = 151665
    audio_end_token_id: int = 151667
    audio_encoder_cache_mb: int = 0

    def __post_init__(self, **kwargs):
        audio = dict(WHISPER_LARGE_V3_AUDIO)
        if self.audio_config is not None:
            unknown = sorted(set(self.audio_config) - set(AUDIO_CONFIG_KEYS))
            if unknown:
                raise ConfigError(f"audio_config: unknown keys {unknown}; expected {list(AUDIO_CONFIG_KEYS)}")
            audio.update(self.audio_config)
        self.audio_config = audio
        if self.qformer_intermediate is None:
            self.qformer_intermediate = 4 * self.qformer_hidden
        super().__post_init__(**kwargs)
        self._validate_audio()

    def _validate_audio(self) -> None:
        for key in AUDIO_CONFIG_KEYS:
            value = self.audio_config[key]
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ConfigError(f"audio_config.{key} must be a positive integer, got {value!r}")
        if self.audio_config["n_audio_state"] % self.audio_config["n_audio_head"]:
            raise ConfigError(
                f"audio_config.n_audio_state={self.audio_config['n_audio_state']} is not divisible by "
                f"n_audio_head={self.audio_config['n_audio_head']}"
            )
        for key in (
            "audio_queries_per_window",
            "qformer_layers",
            "qformer_hidden",
            "qformer_heads",
            "qformer_intermediate",
            "max_audio_segments",
        ):
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ConfigError(f"{key} must be a positive integer, got {value!r}")
        cache_mb = self.audio_encoder_cache_mb
        if not isinstance(cache_mb, int) or isinstance(cache_mb, bool) or cache_mb < 0:
            raise ConfigError(f"audio_encoder_cache_mb must be a non-negative integer, got {cache_mb!r}")
        if self.qformer_hidden % self.qformer_heads:
            raise ConfigError(
                f"qformer_hidden={self.qformer_hidden} is not divisible by qformer_heads={self.qformer_heads}"
            )
        if self.segment_position not in SEGMENT_POSITION_KINDS:
            raise ConfigError(
                f"segment_position must be one of {SEGMENT_POSITION_KINDS}, got {self.segment_position!r}"
            )
        if not self.segment_s > 0:
            raise ConfigError(f"segment_s must be positive, got {self.segment_s!r}")
        mel_frames = self.segment_s * MEL_FRAMES_PER_SECOND
        if not math.isclose(mel_frames / 2, self.audio_config["n_audio_ctx"]):
            raise ConfigError(
                f"segment_s={self.segment_s} does not match audio_config.n_audio_ctx="
                f"{self.audio_config['n_audio_ctx']} (Whisper yields 50 encoder frames per second)"
            )
        if not (
            isinstance(self.audio_window_s, (int, float))
            and math.isfinite(self.audio_window_s)
            and self.audio_window_s > 0
        ):
            raise ConfigError(f"audio_window_s must be a positive number of seconds, got {self.audio_window_s!r}")
        frames = self.audio_window_s * self.encoder_frames_per_second
        if abs(frames - round(frames)) > 1e-6 or round(frames) < 1:
            raise ConfigError(
                f"audio_window_s={self.audio_window_s} is not a whole number of encoder frames "
                f"({self.encoder_frames_per_second:g} per second)"
            )
        if self.audio_config["n_audio_ctx"] % round(frames):
            raise ConfigError(
                f"audio_window_s={self.audio_window_s} ({round(frames)} frames) does not divide the "
                f"{self.audio_config['n_audio_ctx']} encoder frames of a segment"
            )

    @property
    def encoder_frames_per_second(self) -> float:
        return self.audio_config["n_audio_ctx"] / self.segment_s

    @property
    def audio_window_frames(self) -> int:
        """Encoder frames per Q-Former window (10 with the paper's geometry)."""
        return round(self.audio_window_s * self.encoder_frames_per_second)

    @property
    def audio_windows_per_segment(self) -> int:
        return self.audio_config["n_audio_ctx"] // self.audio_window_frames

    @property
    def audio_tokens_per_segment(self) -> int:
        """Audio tokens one 30 s segment yields (150 with the paper's settings)."""
        return self.audio_windows_per_segment * self.audio_queries_per_window
