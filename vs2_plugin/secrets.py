"""Keep API keys out of logs, exceptions and reports.

Keys are read only from the environment or from a file named in a config; every string that
leaves a judge (log line, error message, report field) goes through :func:`redact` first.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

from vs2_plugin.errors import ConfigError

#: Environment variables whose values are always treated as secrets.
SECRET_ENV_VARS = ("OPENAI_API_KEY", "AZURE_OPENAI_API_KEY", "VS2_JUDGE_API_KEY")

#: Key-like tokens (``sk-...``, bearer tokens) redacted even when their value is not known.
_KEY_PATTERN = re.compile(r"(?:\bsk-[A-Za-z0-9_\-]{8,}|(?i:bearer)\s+[A-Za-z0-9_\-\.=]{8,})")
REDACTED = "[REDACTED]"

_registered: set[str] = set()


def register_secret(value: str | None) -> None:
    """Remember a secret value so that :func:`redact` hides it wherever it appears."""
    if value and len(value) >= 4:
        _registered.add(value)


def known_secrets() -> set[str]:
    values = set(_registered)
    for name in SECRET_ENV_VARS:
        value = os.environ.get(name)
        if value and len(value) >= 4:
            values.add(value)
    return values


def redact(text: object) -> str:
    """``str(text)`` with every known secret and key-like token replaced by ``[REDACTED]``."""
    out = str(text)
    for value in sorted(known_secrets(), key=len, reverse=True):
        out = out.replace(value, REDACTED)
    return _KEY_PATTERN.sub(REDACTED, out)


def read_api_key(env_var: str = "OPENAI_API_KEY", key_file: str | os.PathLike | None = None) -> str | None:
    """The API key from ``key_file`` (first non-empty line) or the environment; registered for redaction."""
    if key_file is not None:
        path = Path(key_file).expanduser()
        try:
            lines = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
        except OSError as exc:
            raise ConfigError(f"api_key_file {str(path)!r} cannot be read: {exc.strerror}") from None
        if not lines:
            raise ConfigError(f"api_key_file {str(path)!r} is empty")
        key = lines[0]
    else:
        key = os.environ.get(env_var) or None
    register_secret(key)
    return key


class RedactingFilter(logging.Filter):
    """A logging filter that redacts the formatted message (attach to handlers or loggers)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True
