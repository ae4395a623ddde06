"""A judge as a registered object: its name, its options dataclass and its functions.

A plugin declares judges through the ``vs2_register_judges(register)`` hook::

    @dataclass
    class MyOptions:
        threshold: float = 0.5
        def __post_init__(self):
            if not 0 <= self.threshold <= 1:
                raise ConfigError(f"threshold must be in [0, 1], got {self.threshold!r}")

    @hookimpl
    def vs2_register_judges(register):
        register(Judge(name="mine", description="...", options=MyOptions, judge_captions=judge))

The host (:mod:`vs2_plugin.judge.runner`) looks the judge up by ``JudgeConfig.judge``, parses
``JudgeConfig.options`` into that judge's dataclass (an unknown key is an error naming the key
and the judge) and calls its functions; no judge ever sees another judge's settings.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from vs2_plugin.errors import ConfigError


@dataclass(frozen=True)
class Judge:
    """One caption judge.

    name: what ``--judge`` / ``judge.judge`` select.
    description: one line for ``vs2 plugins``.
    options: a dataclass of this judge's settings; it validates itself in ``__post_init__``.
    judge_captions: ``(items, options, config) -> list[Judgment]``, one per item, in order
        (paper App. E); ``config`` is the :class:`JudgeConfig` (shared settings).
    extract_events: ``(references, options, config) -> list[list[str] | None]``, the atomic
        events of each reference caption, or ``None`` when this judge cannot extract them; or a
        :class:`~vs2_plugin.judge.types.Extraction` per reference, to say why one failed and what
        its requests used.
    ready: ``(options) -> str | None``, why this judge cannot run on this machine (a missing API
        key), or None; asked before an mrDPO run's first step and by ``vs2 check-recipe``, so that
        a run does not fail at its first judging step after hours of sampling.
    """

    name: str
    description: str
    options: type
    judge_captions: Callable[..., list]
    extract_events: Callable[..., list] | None = None
    ready: Callable[[Any], str | None] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ConfigError(f"a judge needs a non-empty name, got {self.name!r}")
        if not (isinstance(self.options, type) and dataclasses.is_dataclass(self.options)):
            raise ConfigError(f"judge {self.name!r}: options must be a dataclass type, got {self.options!r}")
        if not callable(self.judge_captions):
            raise ConfigError(f"judge {self.name!r}: judge_captions must be callable")

    def option_defaults(self) -> dict[str, Any]:
        """Option name -> default (``None`` where it has none), as ``vs2 plugins`` lists them."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self.options):
            if f.default is not dataclasses.MISSING:
                out[f.name] = f.default
            elif f.default_factory is not dataclasses.MISSING:
                out[f.name] = f.default_factory()
            else:
                out[f.name] = None
        return out

    def parse_options(self, raw: Any) -> Any:
        """``raw`` (a mapping, ``None`` or already this judge's dataclass) as this judge's options."""
        if isinstance(raw, self.options):
            return raw
        if raw is None:
            raw = {}
        if not isinstance(raw, Mapping):
            raise ConfigError(f"options of judge {self.name!r} must be a mapping, got {type(raw).__name__}")
        known = {f.name for f in dataclasses.fields(self.options) if f.init}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ConfigError(f"unknown option(s) {unknown} for judge {self.name!r}; its options: {sorted(known)}")
        required = [
            f.name
            for f in dataclasses.fields(self.options)
            if f.init
            and f.name not in raw
            and f.default is dataclasses.MISSING
            and f.default_factory is dataclasses.MISSING
        ]
        if required:
            raise ConfigError(f"judge {self.name!r} needs option(s) {required} (--judge-option KEY=VALUE)")
        try:
            return self.options(**raw)
        except (ValueError, TypeError) as exc:  # a plugin's own validation: said as its judge's
            raise ConfigError(f"options of judge {self.name!r}: {exc}") from None
