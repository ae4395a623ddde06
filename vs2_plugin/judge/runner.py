"""Call the judge hooks: the one entry point the CLI and the mrDPO driver use.

    from vs2_plugin.judge.config import JudgeConfig
    from vs2_plugin.judge.runner import judge_items, extract_events

    judgments = judge_items([{"id": "v1", "caption": "...", "events": ["..."]}], JudgeConfig(judge="offline"))
    judgments[0].rates()   # {"miss_rate": ..., "hall_rate": ..., "total_rate": ...} or None if it failed

The judge is the registered :class:`~vs2_plugin.judge.registry.Judge` named ``config.judge``;
``config.options`` is parsed into its options dataclass here. Items whose ``events`` are empty
but that carry a ``reference`` get their events through the judge's ``extract_events`` first;
items with neither fail here, so a judge only ever sees items with at least one event. A judge's
``extract_events`` may answer an :class:`Extraction` in place of a list (or ``None``) to say why
it failed and what its requests used: the reason becomes the item's error, and the usage is added
to the item's. Repetition rate and unnatural patterns are computed here from
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
from vs2_plugin.judge.types import Extraction, JudgeItem, Judgment
from vs2_plugin.secrets import redact


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


def judge_not_ready(config: JudgeConfig, pm=None) -> str | None:
    """Why the selected judge cannot run on this machine (its ``ready``, e.g. no API key), or None."""
    judge, options = resolve(config, _manager(pm))
    return judge.ready(options) if judge.ready is not None else None


def extractions(references: list[str], config: JudgeConfig, pm=None) -> list[Extraction]:
    """One :class:`Extraction` per reference caption, by the selected judge."""
    judge, options = resolve(config, _manager(pm))
    if not references:
        return []
    if judge.extract_events is None:
        raise ConfigError(f"judge {judge.name!r} does not implement event extraction")
    result = judge.extract_events(list(references), options, config)
    if len(result) != len(references):
        raise ConfigError(f"judge {config.judge!r} returned {len(result)} event lists for {len(references)} references")
    out = []
    for r in result:
        if isinstance(r, Extraction):
            out.append(Extraction(list(r.events) if r.events is not None else None, r.error, dict(r.usage)))
        else:
            out.append(Extraction(list(r) if r is not None else None))
    return out


def extract_events(references: list[str], config: JudgeConfig, pm=None) -> list[list[str] | None]:
    """Atomic events of each reference caption, by the selected judge (None = extraction failed)."""
    return [e.events for e in extractions(references, config, pm)]


def extraction_error(extraction: Extraction) -> str:
    if extraction.error:
        # one line: a report row or a Markdown list item holds it
        return "event extraction from the reference failed: " + " ".join(redact(extraction.error).split())
    if extraction.events is None:
        return "event extraction from the reference failed (the judge gave no reason)"
    return "event extraction from the reference gave no events"


def _add_usage(judgment: Judgment, usage: dict[str, float]) -> None:
    if not usage:
        return
    total = dict(judgment.usage or {})
    for key, value in usage.items():
        total[key] = total.get(key, 0) + value
    judgment.usage = total


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
    extracted: dict[int, Extraction] = {}
    if need:
        extracted = dict(zip(need, extractions([items[k].reference for k in need], config, pm)))
        for k, extraction in extracted.items():
            if extraction.events:
                items[k].events = extraction.events
            else:
                unjudgeable[k] = extraction_error(extraction)
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
    for k, extraction in extracted.items():  # an item's usage counts the requests that found its events
        _add_usage(results[k], extraction.usage)
    for item, judgment in zip(items, results):
        rate = None
        if judgment.rep_rate is None:
            judgment.rep_rate = rate = metrics.repetition_rate(item.caption)
        if not judgment.unnatural:  # reuses the rate computed here from the same caption
            judgment.unnatural = metrics.unnatural_patterns(item.caption, rep_rate=rate)
    return results  # type: ignore[return-value]
