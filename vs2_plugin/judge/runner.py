"""Call the judge hooks: the one entry point the CLI and the mrDPO driver use.

    from vs2_plugin.judge.config import JudgeConfig
    from vs2_plugin.judge.runner import judge_items, extract_events

    judgments = judge_items([{"id": "v1", "caption": "...", "events": ["..."]}], JudgeConfig(judge="offline"))
    judgments[0].rates()   # {"miss_rate": ..., "hall_rate": ..., "total_rate": ...} or None if it failed

Items whose ``events`` are empty but that carry a ``reference`` get their events through
``vs2_extract_events`` first. Repetition rate and unnatural patterns are computed here from
the caption (same for every judge) unless the judge filled them in.
"""

from __future__ import annotations

from collections.abc import Iterable

from vs2_plugin.errors import ConfigError
from vs2_plugin.judge import metrics
from vs2_plugin.judge.config import JudgeConfig
from vs2_plugin.judge.types import JudgeItem, Judgment


def _manager(pm):
    from vs2_plugin.plugins import get_plugin_manager

    return pm or get_plugin_manager()


def require_judge(config: JudgeConfig, pm=None) -> None:
    """Raise :class:`ConfigError` when no plugin registered ``config.judge``."""
    from vs2_plugin.plugins import load_failures, registered_judges

    judges = registered_judges(_manager(pm))
    if config.judge not in judges:
        hint = ""
        failures = load_failures()
        if failures:
            hint = "; plugins that failed to load: " + ", ".join(f"{k} ({v})" for k, v in failures.items())
        raise ConfigError(f"no judge named {config.judge!r} is registered; available: {sorted(judges)}{hint}")


def extract_events(references: list[str], config: JudgeConfig, pm=None) -> list[list[str] | None]:
    """Atomic events of each reference caption via ``vs2_extract_events`` (None = extraction failed)."""
    pm = _manager(pm)
    require_judge(config, pm)
    if not references:
        return []
    result = pm.hook.vs2_extract_events(references=list(references), config=config)
    if result is None:
        raise ConfigError(f"judge {config.judge!r} does not implement event extraction (vs2_extract_events)")
    if len(result) != len(references):
        raise ConfigError(f"judge {config.judge!r} returned {len(result)} event lists for {len(references)} references")
    return [list(r) if r is not None else None for r in result]


def judge_items(items: Iterable[JudgeItem | dict], config: JudgeConfig, pm=None) -> list[Judgment]:
    """One :class:`Judgment` per item, in order; failed items have ``status="failed"``."""
    pm = _manager(pm)
    require_judge(config, pm)
    items = [i if isinstance(i, JudgeItem) else JudgeItem.from_dict(i) for i in items]
    extraction_errors: dict[int, str] = {}
    need = [k for k, it in enumerate(items) if not it.events and it.reference]
    if need:
        extracted = extract_events([items[k].reference for k in need], config, pm)
        for k, events in zip(need, extracted):
            if events:
                items[k].events = events
            else:
                extraction_errors[k] = "event extraction from the reference failed or gave no events"
    judged_idx = [k for k in range(len(items)) if k not in extraction_errors]
    results: list[Judgment | None] = [None] * len(items)
    for k, message in extraction_errors.items():
        results[k] = Judgment.failed(items[k].id, config.judge, message)
    if judged_idx:
        answer = pm.hook.vs2_judge_captions(items=[items[k] for k in judged_idx], config=config)
        if answer is None:
            raise ConfigError(f"judge {config.judge!r} is registered but no plugin answered vs2_judge_captions")
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
