"""Judge configuration: the judge's name, the settings every judge shares, its own options."""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field, fields
from typing import Any

from vs2_plugin.errors import ConfigError


def default_cache_path() -> str:
    """``$VS2_CACHE_DIR/judge_cache.sqlite``, else ``~/.cache/vs2_plugin/judge_cache.sqlite``."""
    root = os.environ.get("VS2_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "vs2_plugin")
    return os.path.join(root, "judge_cache.sqlite")


#: Keys that used to sit flat in the ``judge:`` mapping and now belong in its ``options:``
#: mapping (old name -> option name of the judge that used it).
LEGACY_OPTION_KEYS = {
    "model": "model",
    "base_url": "base_url",
    "api_key_file": "api_key_file",
    "passes": "passes",
    "concurrency": "concurrency",
    "max_retries": "max_retries",
    "timeout_s": "timeout_s",
    "backoff_base_s": "backoff_base_s",
    "backoff_max_s": "backoff_max_s",
    "temperature": "temperature",
    "max_tokens": "max_tokens",
    "price_in_per_mtok": "price_in_per_mtok",
    "price_out_per_mtok": "price_out_per_mtok",
    "offline_encoder": "encoder",
    "miss_threshold": "miss_threshold",
    "support_threshold": "support_threshold",
}


@dataclass
class JudgeConfig:
    """Which judge to use, the settings every judge shares, and that judge's own options.

    judge: registered judge name (``offline``, ``openai``, or a third-party one; ``vs2 plugins``
        lists them).
    show_progress: draw a progress bar on stderr.
    cache_path: SQLite answer cache of judges that cache answers (remote ones); ``None``
        disables it. The mrDPO driver puts it in the run directory.
    options: the selected judge's options: a mapping (from YAML ``options:`` or
        ``--judge-option KEY=VALUE``) that the host parses into that judge's options dataclass
        (:attr:`vs2_plugin.judge.registry.Judge.options`), or that dataclass itself.
    """

    judge: str = "offline"
    show_progress: bool = True
    cache_path: str | None = field(default_factory=default_cache_path)
    options: Any = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.judge, str) or not self.judge.strip():
            raise ConfigError(f"judge must be a non-empty judge name, got {self.judge!r}")
        if not isinstance(self.show_progress, bool):
            raise ConfigError(f"show_progress must be true or false, got {self.show_progress!r}")
        if self.cache_path is not None and not isinstance(self.cache_path, (str, os.PathLike)):
            raise ConfigError(f"cache_path must be a path or null, got {self.cache_path!r}")
        if self.options is None:
            self.options = {}
        if isinstance(self.options, (str, bytes, list, tuple, int, float, bool)):
            raise ConfigError(f"options must be a mapping of the judge's options, got {type(self.options).__name__}")

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> "JudgeConfig":
        """Build from a mapping (e.g. the ``judge:`` block of a YAML file); unknown keys are errors.

        ``judge_options`` is accepted for ``options``. The old flat keys (``model``, ``passes``,
        ``offline_encoder``...) still work: they move into ``options`` with a FutureWarning.
        """
        data = normalize_judge_settings(data)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(
                f"unknown judge config key(s) {unknown}; known: {sorted(known)} "
                "(a judge's own settings go under 'options:')"
            )
        return cls(**data)


def normalize_judge_settings(data: dict[str, Any] | None) -> dict[str, Any]:
    """The ``judge:`` mapping in its current shape, without adding defaults: ``judge_options``
    renamed ``options``, old flat option keys moved into ``options`` (with a FutureWarning)."""
    data = dict(data or {})
    if "judge_options" in data:
        if "options" in data:
            raise ConfigError("give the judge's options once, as options or judge_options, not both")
        data["options"] = data.pop("judge_options")
    shared = {f.name for f in fields(JudgeConfig)}
    legacy = sorted(k for k in data if k not in shared and k in LEGACY_OPTION_KEYS)
    if legacy:
        # the flat keys were shared by every judge, which ignored those it had no use for
        # (the offline judge ignored ``passes``); keep doing so for them, and say it
        accepted = _option_names(data.get("judge", "offline"))
        options = dict(data.get("options") or {})
        ignored = []
        for key in legacy:
            value = data.pop(key)
            if accepted is None or LEGACY_OPTION_KEYS[key] in accepted:
                options.setdefault(LEGACY_OPTION_KEYS[key], value)
            else:
                ignored.append(key)
        data["options"] = options
        note = f"; {ignored} ignored: judge {data.get('judge', 'offline')!r} has no such option" if ignored else ""
        warnings.warn(
            f"judge config key(s) {legacy} are deprecated at the top level of the judge settings; "
            f"write them under 'options:' (as {sorted(LEGACY_OPTION_KEYS[k] for k in legacy)}){note}",
            FutureWarning,
            stacklevel=3,
        )
    return data


def _option_names(judge_name: Any) -> set[str] | None:
    """Option names of the registered judge ``judge_name``; None when it is not registered
    (its name error comes from the registry later)."""
    from vs2_plugin.plugins import judge_registry

    judge = judge_registry().get(judge_name) if isinstance(judge_name, str) else None
    return None if judge is None else {f.name for f in fields(judge.options)}
