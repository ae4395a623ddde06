"""The vs2 plugin manager: built-in default plugins + the ``vs2`` entry-point group.

``VS2_PLUGINS`` (comma-separated entry-point names) is an allow-list: when set, only the
named third-party plugins load (built-ins always do). ``VS2_PLUGINS=none`` loads none.
A plugin that fails to import, implements a hook that no spec names (a misspelt ``vs2_...``)
or registers a judge under a name already taken is reported by name (``vs2 plugins``) and
skipped; the host and the other plugins keep working.
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


def _skip(name: str, value: str, reason: str) -> None:
    reason = " ".join(reason.split())  # one line: pluggy's validation errors span several
    _failures[name] = reason
    warnings.warn(f"vs2 plugin {name!r} ({value}) was skipped: {reason}", PluginWarning, stacklevel=3)


def _unknown_hooks(pm: pluggy.PluginManager, plugin) -> list[str]:
    """Hooks ``plugin`` implements that no spec declares (what ``check_pending`` would raise on)."""
    return sorted(
        caller.name
        for caller in pm.get_hookcallers(plugin) or []
        if not caller.has_spec()
        and any(impl.plugin is plugin and not impl.optionalhook for impl in caller.get_hookimpls())
    )


def build_plugin_manager(entry_points=None) -> pluggy.PluginManager:
    """A fresh manager with the built-ins and the allowed entry points (tests pass fakes)."""
    pm = pluggy.PluginManager("vs2")
    pm.add_hookspecs(hookspecs)
    for mod_name in DEFAULT_PLUGINS:
        pm.register(importlib.import_module(mod_name), name=mod_name)
    allowed = _allowed()
    eps = list(entry_points if entry_points is not None else metadata.entry_points(group=ENTRY_POINT_GROUP))
    typos = sorted((allowed or set()) - {ep.name for ep in eps})
    if typos:  # a misspelt name would otherwise leave its plugin out without a word
        warnings.warn(
            f"{ALLOW_ENV} names {', '.join(typos)}, which no installed vs2 plugin is called "
            f"(installed: {', '.join(sorted({ep.name for ep in eps})) or 'none'})",
            PluginWarning,
            stacklevel=2,
        )
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
            _skip(ep.name, ep.value, f"failed to load: {type(exc).__name__}: {exc}")
            continue
        unknown = _unknown_hooks(pm, plugin)
        if unknown:
            pm.unregister(plugin)
            _skip(ep.name, ep.value, f"implements hooks that vs2 does not define: {', '.join(unknown)}")
    pm.check_pending()  # the built-ins and every plugin kept are valid by now
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
    ``vs2_register_judges``. Each plugin is asked on its own, in the order they were registered
    (built-ins first, so a judge name they hold stays theirs); a plugin whose registration fails
    (a judge name already taken, a ``register`` call of the wrong form, an exception) is
    unregistered with a warning and listed by ``vs2 plugins``."""
    from vs2_plugin.judge.registry import Judge

    pm = pm or get_plugin_manager()
    judges: dict = {}
    owners: dict[str, str] = {}
    named = pm.list_name_plugin()
    for name, plugin in named:
        if pm.hook.vs2_register_judges not in (pm.get_hookcallers(plugin) or []):
            continue
        mine: dict = {}

        def register(judge: Judge, *old_style) -> None:
            if old_style or not isinstance(judge, Judge):
                # register(name, description) was the hook's first form; say what it is now
                raise TypeError(
                    f"vs2_register_judges: register() takes a vs2_plugin.judge.registry.Judge "
                    f"(name, description, options dataclass, functions), got {(judge, *old_style)!r}"
                )
            if judge.name in judges or judge.name in mine:
                raise ValueError(
                    f"judge {judge.name!r} is already registered by plugin {owners.get(judge.name, name)!r}"
                )
            mine[judge.name] = judge

        others = [other for other_name, other in named if other_name != name]
        try:  # this plugin's implementation alone, through pluggy (its wrappers and options included)
            pm.subset_hook_caller("vs2_register_judges", remove_plugins=others)(register=register)
        except Exception as exc:
            pm.unregister(plugin)
            _skip(name, getattr(plugin, "__name__", name), f"vs2_register_judges: {type(exc).__name__}: {exc}")
            continue
        judges.update(mine)
        owners.update(dict.fromkeys(mine, name))
    return judges


def registered_judges(pm: pluggy.PluginManager | None = None) -> dict[str, str]:
    """name -> description of every registered judge."""
    return {name: judge.description for name, judge in judge_registry(pm).items()}


class PluginFailure(RuntimeError):
    """A plugin's hook implementation raised; the message names the plugin and the hook.

    Not a :class:`~vs2_plugin.errors.Vs2Error`: the plugin's own traceback is kept (chained),
    since the fault is in its code. A plugin that raises a ``Vs2Error`` is passed through as is.
    """


def call_hook(hook_name: str, pm: pluggy.PluginManager | None = None, **kwargs):
    """``pm.hook.<hook_name>(**kwargs)``, with an exception raised in a plugin's implementation re-raised as
    :class:`PluginFailure` naming that plugin (found by the implementation's frame in the traceback)."""
    from vs2_plugin.errors import Vs2Error

    caller = getattr((pm or get_plugin_manager()).hook, hook_name)
    try:
        return caller(**kwargs)
    except Vs2Error:
        raise
    except Exception as exc:
        codes = {getattr(impl.function, "__code__", None): impl.plugin_name for impl in caller.get_hookimpls()}
        raised_in = [codes[tb.tb_frame.f_code] for tb in _frames(exc.__traceback__) if tb.tb_frame.f_code in codes]
        if not raised_in:
            raise
        raise PluginFailure(f"vs2 plugin {raised_in[-1]!r} failed in {hook_name}: {type(exc).__name__}: {exc}") from exc


def answering_plugins(hook_name: str, pm: pluggy.PluginManager | None = None) -> list[str]:
    """Names of the plugins other than the built-ins that implement ``hook_name``."""
    caller = getattr((pm or get_plugin_manager()).hook, hook_name)
    return [impl.plugin_name for impl in caller.get_hookimpls() if impl.plugin_name not in DEFAULT_PLUGINS]


def _frames(tb):
    while tb is not None:
        yield tb
        tb = tb.tb_next
