"""The vs2 plugin manager: built-in default plugins + the ``vs2`` entry-point group.

``VS2_PLUGINS`` (comma-separated entry-point names) is an allow-list: when set, only the
named third-party plugins load (built-ins always do). ``VS2_PLUGINS=none`` loads none.
A plugin that fails to import is reported by name and skipped.
"""

from __future__ import annotations

import importlib
import os
import warnings
from importlib import metadata

import pluggy

from vs2_plugin import hookspecs

ENTRY_POINT_GROUP = "vs2"
ALLOW_ENV = "VS2_PLUGINS"

#: Modules implementing hooks that ship with vs2_plugin (registered under these names).
DEFAULT_PLUGINS = (
    "vs2_plugin.judge.offline",
    "vs2_plugin.judge.pairs",
)

_pm: pluggy.PluginManager | None = None
_failures: dict[str, str] = {}


class PluginWarning(UserWarning):
    """A ``vs2`` plugin could not be loaded."""


def _allowed() -> set[str] | None:
    raw = os.environ.get(ALLOW_ENV)
    if raw is None or not raw.strip():
        return None
    names = {n.strip() for n in raw.split(",") if n.strip()}
    return set() if names == {"none"} else names


def build_plugin_manager(entry_points=None) -> pluggy.PluginManager:
    """A fresh manager with the built-ins and the allowed entry points (tests pass fakes)."""
    pm = pluggy.PluginManager("vs2")
    pm.add_hookspecs(hookspecs)
    for mod_name in DEFAULT_PLUGINS:
        pm.register(importlib.import_module(mod_name), name=mod_name)
    allowed = _allowed()
    eps = entry_points if entry_points is not None else metadata.entry_points(group=ENTRY_POINT_GROUP)
    for ep in eps:
        if allowed is not None and ep.name not in allowed:
            continue
        if pm.has_plugin(ep.name):
            warnings.warn(
                f"vs2 plugin {ep.name!r} ({ep.value}) is installed twice; keeping the first",
                PluginWarning,
                stacklevel=2,
            )
            continue
        try:
            plugin = ep.load()
            pm.register(plugin, name=ep.name)
        except Exception as exc:
            _failures[ep.name] = f"{type(exc).__name__}: {exc}"
            warnings.warn(
                f"vs2 plugin {ep.name!r} ({ep.value}) failed to load and was skipped: {type(exc).__name__}: {exc}",
                PluginWarning,
                stacklevel=2,
            )
    pm.check_pending()
    return pm


def get_plugin_manager() -> pluggy.PluginManager:
    """The process-wide manager, built on first use."""
    global _pm
    if _pm is None:
        _pm = build_plugin_manager()
    return _pm


def reset_plugin_manager() -> None:
    global _pm
    _pm = None
    _failures.clear()


def load_failures() -> dict[str, str]:
    return dict(_failures)


def judge_registry(pm: pluggy.PluginManager | None = None) -> dict:
    """name -> :class:`~vs2_plugin.judge.registry.Judge` of every judge declared through
    ``vs2_register_judges``; a name registered twice is an error naming it."""
    from vs2_plugin.judge.registry import Judge

    pm = pm or get_plugin_manager()
    judges: dict = {}

    def register(judge: Judge, *old_style) -> None:
        if old_style or not isinstance(judge, Judge):
            # register(name, description) was the hook's first form; say what it is now
            raise TypeError(
                f"vs2_register_judges: register() takes a vs2_plugin.judge.registry.Judge "
                f"(name, description, options dataclass, functions), got {(judge, *old_style)!r}"
            )
        if judge.name in judges:
            raise ValueError(f"judge {judge.name!r} is registered by two plugins")
        judges[judge.name] = judge

    pm.hook.vs2_register_judges(register=register)
    return judges


def registered_judges(pm: pluggy.PluginManager | None = None) -> dict[str, str]:
    """name -> description of every registered judge."""
    return {name: judge.description for name, judge in judge_registry(pm).items()}
