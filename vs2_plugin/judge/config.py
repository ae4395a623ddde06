"""Judge configuration, shared by every judge plugin (unknown options go in ``options``)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from vs2_plugin.errors import ConfigError


def default_cache_path() -> str:
    """``$VS2_CACHE_DIR/judge_cache.sqlite``, else ``~/.cache/vs2_plugin/judge_cache.sqlite``."""
    root = os.environ.get("VS2_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "vs2_plugin")
    return os.path.join(root, "judge_cache.sqlite")


@dataclass
class JudgeConfig:
    """Which judge to use and how (paper App. E: K passes, median reported).

    Common
        judge: registered judge name (``offline``, ``openai``, or a third-party one).
        passes: K independent judging passes; the pass with the median total error is kept
            (App. E uses 7). The offline judge is deterministic and runs once.
        show_progress: draw a tqdm bar on stderr.
    Remote (OpenAI-compatible) judges
        model: chat model name (``--judge-model``); ``base_url`` overrides ``OPENAI_BASE_URL``.
        api_key_file: path of a file holding the key; otherwise ``OPENAI_API_KEY`` is used.
            The key itself is never a config value, so it cannot end up in a saved config.
        concurrency: requests in flight at most. max_retries / timeout_s / backoff_*: retry
            policy on 429 (``Retry-After`` honoured), 5xx, timeouts and dropped connections.
        temperature: sampling temperature of each pass (passes differ through it and the seed).
        cache_path: SQLite file of answers keyed by request; ``None`` disables the cache.
        price_in_per_mtok / price_out_per_mtok: USD per million tokens for the cost tally.
    Offline judge
        offline_encoder: ``auto`` (MiniLM if installed, else WordLlama), ``minilm``, ``wordllama``.
        miss_threshold: an event whose score is below this is missed.
        support_threshold: a caption clause whose support by the reference is below this is
            counted as hallucinated.
    """

    judge: str = "offline"
    passes: int = 7
    show_progress: bool = True
    model: str = "gpt-4.1-mini"
    base_url: str | None = None
    api_key_file: str | None = None
    concurrency: int = 8
    max_retries: int = 6
    timeout_s: float = 120.0
    backoff_base_s: float = 1.0
    backoff_max_s: float = 60.0
    temperature: float = 0.7
    max_tokens: int = 4096
    cache_path: str | None = field(default_factory=default_cache_path)
    price_in_per_mtok: float = 0.0
    price_out_per_mtok: float = 0.0
    offline_encoder: str = "auto"
    miss_threshold: float = 0.5
    support_threshold: float = 0.5
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.judge, str) or not self.judge.strip():
            raise ConfigError(f"judge must be a non-empty judge name, got {self.judge!r}")
        for name in ("passes", "concurrency", "max_tokens"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{name} must be an integer >= 1, got {value!r}")
        if not isinstance(self.max_retries, int) or self.max_retries < 0:
            raise ConfigError(f"max_retries must be an integer >= 0, got {self.max_retries!r}")
        for name in ("timeout_s", "backoff_max_s"):
            if not _is_number(getattr(self, name)) or getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be a positive number, got {getattr(self, name)!r}")
        for name in ("backoff_base_s", "price_in_per_mtok", "price_out_per_mtok", "temperature"):
            if not _is_number(getattr(self, name)) or getattr(self, name) < 0:
                raise ConfigError(f"{name} must be a number >= 0, got {getattr(self, name)!r}")
        for name in ("miss_threshold", "support_threshold"):
            value = getattr(self, name)
            if not _is_number(value) or not 0.0 <= value <= 1.0:
                raise ConfigError(f"{name} must be in [0, 1], got {value!r}")
        if self.offline_encoder not in ("auto", "minilm", "wordllama"):
            raise ConfigError(f"offline_encoder must be auto, minilm or wordllama, got {self.offline_encoder!r}")
        if not isinstance(self.model, str) or not self.model.strip():
            raise ConfigError(f"model must be a non-empty model name, got {self.model!r}")
        if self.api_key_file is not None and not Path(self.api_key_file).expanduser().is_file():
            raise ConfigError(f"api_key_file {self.api_key_file!r} does not exist")
        if not isinstance(self.options, dict):
            raise ConfigError(f"options must be a mapping, got {type(self.options).__name__}")

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> "JudgeConfig":
        """Build from a mapping (e.g. the ``judge:`` block of a YAML file); unknown keys are errors."""
        data = dict(data or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown judge config key(s) {unknown}; known: {sorted(known)}")
        return cls(**data)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value
