"""Generic entry-point loader for LLaMA-Factory plugins.

LLaMA-Factory 0.9.5 discovers no plugins, and it trains in fresh processes (torchrun ranks,
the web UI's ``llamafactory-cli train`` subprocess). This module closes the gap for *any*
package, not only ours:

* ``llamafactory_plugins.pth`` (installed into site-packages) calls :func:`install` at every
  interpreter start. That only appends an import watcher to ``sys.meta_path``: nothing is
  imported until LLaMA-Factory itself is.
* When the ``llamafactory`` package has finished importing, every installed entry point of the
  group ``llamafactory.plugins`` is loaded and called once, in that process.
* Plugins stay lazy with :func:`when_imported`: "call ``fn`` once module X has loaded"
  (immediately if it already has), so a plugin that extends the trainer does not make
  ``llamafactory-cli version`` pay for importing it.

Set ``LLAMAFACTORY_PLUGINS_DISABLE=1`` to turn autoloading off. A plugin that raises is
reported on stderr by name and skipped; the host keeps working.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import sys
import threading
import warnings
from importlib import metadata
from typing import Callable

GROUP = "llamafactory.plugins"
DISABLE_ENV = "LLAMAFACTORY_PLUGINS_DISABLE"
HOST_MODULE = "llamafactory"

_lock = threading.RLock()
_callbacks: dict[str, list[Callable[[object], None]]] = {}
_loaded_plugins: dict[str, str] = {}  # entry-point name -> "ok" or the error text
_installed = False


class PluginLoadWarning(UserWarning):
    """A plugin of the ``llamafactory.plugins`` group failed to load or to register."""


def disabled() -> bool:
    return os.environ.get(DISABLE_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def when_imported(module_name: str, fn: Callable[[object], None]) -> None:
    """Call ``fn(module)`` once ``module_name`` has finished importing (now if it has)."""
    with _lock:
        module = sys.modules.get(module_name)
        if module is None or getattr(getattr(module, "__spec__", None), "_initializing", False):
            _callbacks.setdefault(module_name, []).append(fn)
            _ensure_finder()
            return
    _call_safely(fn, module)


def _call_safely(fn: Callable[[object], None], module) -> None:
    """Run a registration; a failing one is reported by name, the import goes on."""
    try:
        fn(module)
    except Exception as exc:
        where = f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"
        warnings.warn(
            f"LLaMA-Factory plugin hook {where} failed after importing {module.__name__} and was skipped: "
            f"{type(exc).__name__}: {exc}",
            PluginLoadWarning,
            stacklevel=2,
        )


def load_plugins(entry_points=None) -> dict[str, str]:
    """Load and call every entry point of :data:`GROUP` once; return name -> status.

    ``entry_points`` (an iterable of ``importlib.metadata.EntryPoint``) is for tests.
    """
    eps = list(entry_points) if entry_points is not None else list(metadata.entry_points(group=GROUP))
    for ep in eps:
        key = f"{ep.name}={ep.value}"
        with _lock:
            if key in _loaded_plugins:
                continue
            _loaded_plugins[key] = "loading"
        try:
            ep.load()()
            status = "ok"
        except Exception as exc:  # a broken plugin must not break LLaMA-Factory
            status = f"error: {type(exc).__name__}: {exc}"
            warnings.warn(
                f"LLaMA-Factory plugin {ep.name!r} ({ep.value}) failed and was skipped: {type(exc).__name__}: {exc}",
                PluginLoadWarning,
                stacklevel=2,
            )
        _loaded_plugins[key] = status
    return dict(_loaded_plugins)


def loaded_plugins() -> dict[str, str]:
    return dict(_loaded_plugins)


def install() -> None:
    """Arm the loader (called from the ``.pth`` file). Cheap: imports nothing heavy."""
    global _installed
    if _installed or disabled():
        return
    _installed = True
    when_imported(HOST_MODULE, lambda _module: load_plugins())


class _PostImportLoader(importlib.abc.Loader):
    def __init__(self, wrapped, name):
        self._wrapped = wrapped
        self._name = name

    def create_module(self, spec):
        return self._wrapped.create_module(spec)

    def exec_module(self, module):
        self._wrapped.exec_module(module)
        with _lock:
            callbacks = _callbacks.pop(self._name, [])
        for fn in callbacks:
            _call_safely(fn, module)

    def __getattr__(self, item):  # get_source, is_package, ... for tools that ask
        return getattr(self._wrapped, item)


class _PostImportFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path, target=None):
        if fullname not in _callbacks:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _PostImportLoader(spec.loader, fullname)
                return spec
        return None


_finder = _PostImportFinder()


def _ensure_finder() -> None:
    if _finder not in sys.meta_path:
        sys.meta_path.insert(0, _finder)
