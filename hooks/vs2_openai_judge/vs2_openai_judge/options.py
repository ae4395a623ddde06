"""Options of the OpenAI-compatible judge (``judge.options`` / ``--judge-option KEY=VALUE``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vs2_plugin.errors import ConfigError


@dataclass
class OpenAIOptions:
    """How the OpenAI-compatible judge runs (paper App. E: K passes, median reported).

    model: chat model name; ``base_url`` overrides ``OPENAI_BASE_URL``.
    api_key_file: path of a file holding the key; otherwise ``OPENAI_API_KEY`` is used. The key
        itself is never an option, so it cannot end up in a saved config.
    passes: K independent judging passes; the pass with the median total error is kept (App. E
        uses 7).
    concurrency: requests in flight at most. max_retries / timeout_s / backoff_*: retry policy
        on 429 (``Retry-After`` honoured), 5xx, timeouts and dropped connections.
    temperature: sampling temperature of each pass (passes differ through it and the seed).
    max_tokens: answer length limit of each request.
    price_in_per_mtok / price_out_per_mtok: USD per million tokens for the cost tally.
    json_mode: ask the server for a JSON object answer (``response_format``).
    """

    model: str = "gpt-4.1-mini"
    base_url: str | None = None
    api_key_file: str | None = None
    passes: int = 7
    concurrency: int = 8
    max_retries: int = 6
    timeout_s: float = 120.0
    backoff_base_s: float = 1.0
    backoff_max_s: float = 60.0
    temperature: float = 0.7
    max_tokens: int = 4096
    price_in_per_mtok: float = 0.0
    price_out_per_mtok: float = 0.0
    json_mode: bool = True

    def __post_init__(self) -> None:
        for name in ("passes", "concurrency", "max_tokens"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"openai judge: {name} must be an integer >= 1, got {value!r}")
        if not isinstance(self.max_retries, int) or isinstance(self.max_retries, bool) or self.max_retries < 0:
            raise ConfigError(f"openai judge: max_retries must be an integer >= 0, got {self.max_retries!r}")
        for name in ("timeout_s", "backoff_max_s"):
            if not _is_number(getattr(self, name)) or getattr(self, name) <= 0:
                raise ConfigError(f"openai judge: {name} must be a positive number, got {getattr(self, name)!r}")
        for name in ("backoff_base_s", "price_in_per_mtok", "price_out_per_mtok", "temperature"):
            if not _is_number(getattr(self, name)) or getattr(self, name) < 0:
                raise ConfigError(f"openai judge: {name} must be a number >= 0, got {getattr(self, name)!r}")
        if not isinstance(self.model, str) or not self.model.strip():
            raise ConfigError(f"openai judge: model must be a non-empty model name, got {self.model!r}")
        if self.base_url is not None and not isinstance(self.base_url, str):
            raise ConfigError(f"openai judge: base_url must be a URL string, got {self.base_url!r}")
        if self.api_key_file is not None and not Path(self.api_key_file).expanduser().is_file():
            raise ConfigError(f"openai judge: api_key_file {self.api_key_file!r} does not exist")
        if not isinstance(self.json_mode, bool):
            raise ConfigError(f"openai judge: json_mode must be true or false, got {self.json_mode!r}")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value
