"""Call the judge hooks: the one entry point the CLI and the mrDPO driver use.

    from vs2_plugin.judge.config import JudgeConfig
    from vs2_plugin.judge.runner import judge_items, extract_events

    judgments = judge_items([{"id": "v1", "caption": "...", "events": ["..."]}], JudgeConfig(judge="offline"))
    judgments[0].rates()   # {"miss_rate": ..., "hall_rate": ..., "total_rate": ...} or None if it failed

The judge is the registered :class:`~vs2_plugin.judge.registry.Judge` named ``config.judge``;
``config.options`` is parsed into its options dataclass here. Items whose ``events`` are empty
but that carry a ``reference`` get their events through the judge's ``extract_events`` first;
items with neither fail here, so a judge only ever sees items with at least one event. Repetition rate and unnatural patterns are computed here from
the caption (same for every judge) unless the judge filled them in.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

from vs2_plugin.errors import ConfigError
from vs2_plugin.judge import metrics
from vs2_plugin.judge.config import JudgeConfig
from vs2_plugin.judge.registry import Judge
from vs2_plugin.judge.types import JudgeItem, Judgment


def _manager(pm):
    from vs2_plugin.plugins import get_plugin_manager

    return pm or get_plugin_manager()


def get_judge(name: str, pm=None) -> Judge:
    """The registered :class:`Judge` called ``name``; :class:`ConfigError` listing the others if none."""
    from vs2_plugin.plugins import judge_registry, load_failures

    judges = judge_registry(_manager(pm))
    if name not in judges:
        hint = ""
        failures = load_failures()
        if failures:
            hint = "; plugins that failed to load: " + ", ".join(f"{k} ({v})" for k, v in failures.items())
        raise ConfigError(f"no judge named {name!r} is registered; available: {sorted(judges)}{hint}")
    return judges[name]


def resolve(config: JudgeConfig, pm=None) -> tuple[Judge, Any]:
    """The selected judge and ``config.options`` parsed into its options dataclass (validated)."""
    judge = get_judge(config.judge, pm)
    return judge, judge.parse_options(config.options)


def require_judge(config: JudgeConfig, pm=None) -> JudgeConfig:
    """Check ``config`` early (judge registered, options valid); returns it with parsed options."""
    _, options = resolve(config, pm)
    return dataclasses.replace(config, options=options)


def extract_events(references: list[str], config: JudgeConfig, pm=None) -> list[list[str] | None]:
    """Atomic events of each reference caption, by the selected judge (None = extraction failed)."""
    judge, options = resolve(config, _manager(pm))
    if not references:
        return []
    if judge.extract_events is None:
        raise ConfigError(f"judge {judge.name!r} does not implement event extraction")
    result = judge.extract_events(list(references), options, config)
    if len(result) != len(references):
        raise ConfigError(f"judge {config.judge!r} returned {len(result)} event lists for {len(references)} references")
    return [list(r) if r is not None else None for r in result]


def judge_items(items: Iterable[JudgeItem | dict], config: JudgeConfig, pm=None) -> list[Judgment]:
    """One :class:`Judgment` per item, in order; failed items have ``status="failed"``."""
    pm = _manager(pm)
    judge, options = resolve(config, pm)
    items = [i if isinstance(i, JudgeItem) else JudgeItem.from_dict(i) for i in items]
    # an item with no event to look for has no Miss rate: failed here, never handed to a judge
    unjudgeable = {
        k: "no events to judge against (an empty 'events' list and no 'reference')"
        for k, it in enumerate(items)
        if not it.events and not it.reference
    }
    need = [k for k, it in enumerate(items) if not it.events and it.reference]
    if need:
        extracted = extract_events([items[k].reference for k in need], config, pm)
        for k, events in zip(need, extracted):
            if events:
                items[k].events = events
            else:
                unjudgeable[k] = "event extraction from the reference failed or gave no events"
    judged_idx = [k for k in range(len(items)) if k not in unjudgeable]
    results: list[Judgment | None] = [None] * len(items)
    for k, message in unjudgeable.items():
        results[k] = Judgment.failed(items[k].id, config.judge, message)
    if judged_idx:
        answer = judge.judge_captions([items[k] for k in judged_idx], options, config)
        if len(answer) != len(judged_idx):
            raise ConfigError(f"judge {config.judge!r} returned {len(answer)} judgments for {len(judged_idx)} items")
        for k, judgment in zip(judged_idx, answer):
            if judgment.id != items[k].id:
                raise ConfigError(f"judge {config.judge!r} answered item {judgment.id!r} in place of {items[k].id!r}")
            results[k] = judgment
    for item, judgment in zip(items, results):
        rate = None
        if judgment.rep_rate is None:
            judgment.rep_rate = rate = metrics.repetition_rate(item.caption)
        if not judgment.unnatural:  # reuses the rate computed here from the same caption
            judgment.unnatural = metrics.unnatural_patterns(item.caption, rep_rate=rate)
    return results  # type: ignore[return-value]
