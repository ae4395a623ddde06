"""``vs2 eval``'s work without its command line: read caption rows, build the judged report."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from vs2_plugin.errors import DataError
from vs2_plugin.files import numbered_jsonl
from vs2_plugin.judge.report import summarize_by_task
from vs2_plugin.judge.types import JudgeItem
from vs2_plugin.secrets import redact


def usage_totals(judgments) -> dict[str, float]:
    """Sum of each usage counter (tokens, requests, cost) over the judgments that report it; an
    item's usage holds its event-extraction requests as well as its judging ones."""
    totals: dict[str, float] = {}
    for j in judgments:
        for key, value in (j.usage or {}).items():
            totals[key] = totals.get(key, 0) + value
    return totals


def from_prediction(row: dict, n: int) -> dict:
    """A ``generated_predictions.jsonl`` row (``vs2 caption``, LLaMA-Factory's ``do_predict``) as a
    judge row: ``predict`` is the caption, ``label`` the reference, ``key`` (else ``id``, else the
    line number) the id."""
    if "caption" in row or "predict" not in row:
        return row
    ident = row.get("key") or row.get("id") or f"line{n}"
    return {
        **row,
        "id": str(ident),
        "caption": row["predict"] or "",
        "reference": row.get("reference") or row.get("label"),
    }


def load_items(path: Path) -> list[JudgeItem]:
    items, seen = [], set()
    for n, row in numbered_jsonl(path):
        row = from_prediction(row, n)
        if "events" not in row and not row.get("reference"):
            raise DataError(f"{path}:{n}: item {row.get('id')!r} has neither 'events' nor 'reference'")
        try:
            item = JudgeItem.from_dict(row)
        except DataError as exc:
            raise DataError(f"{path}:{n}: {exc}") from None
        if item.id in seen:
            raise DataError(f"{path}:{n}: duplicate id {item.id!r}")
        seen.add(item.id)
        items.append(item)
    return items


def build_report(items: list[JudgeItem], judgments: list, config, input_path: Path, seconds: float) -> dict:
    """The ``report.json`` mapping: judge, its options, usage, per-task summary and one row per
    item (errors redacted). ``config`` is a JudgeConfig whose options are parsed."""
    rows = []
    for item, judgment in zip(items, judgments):
        row = judgment.to_dict()
        row["task"] = item.task
        if judgment.error:
            row["error"] = redact(judgment.error)
        rows.append(row)
    options = config.options
    return {
        "judge": config.judge,
        # read from the judge's own options, whatever judge it is (None / 1 when it has none)
        "model": getattr(options, "model", None),
        "passes": getattr(options, "passes", 1),
        "judge_options": dataclasses.asdict(options) if dataclasses.is_dataclass(options) else dict(options),
        "input": str(input_path),
        "seconds": round(seconds, 3),
        "usage": usage_totals(judgments),
        "summary": summarize_by_task(rows),
        "items": rows,
    }
