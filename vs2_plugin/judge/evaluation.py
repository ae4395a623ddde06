"""``vs2 eval``'s work without its command line: read caption rows, build the judged report."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

from vs2_plugin.errors import ConfigError, DataError, did_you_mean
from vs2_plugin.files import check_folder_can_be_made, numbered_jsonl
from vs2_plugin.judge.report import summarize_by_task
from vs2_plugin.judge.types import JudgeItem
from vs2_plugin.secrets import redact

logger = logging.getLogger(__name__)


def usage_totals(judgments) -> dict[str, float]:
    """Sum of each usage counter (tokens, requests, cost) over the judgments that report it; an
    item's usage holds its event-extraction requests as well as its judging ones."""
    totals: dict[str, float] = {}
    for j in judgments:
        for key, value in (j.usage or {}).items():
            totals[key] = totals.get(key, 0) + value
    return totals


def check_report_path(out: Path, input_path: Path) -> None:
    """Refuse, before any judging, an ``--out`` whose report (``.json``, ``.md`` and ``.html``
    beside it) could not be written: a folder in its place, a file where its folder should be, or
    the input itself. Found only at the end, it would throw away the whole judging."""
    if out.suffix.lower() in (".md", ".html"):
        raise ConfigError(f"--out {out}: give the report's JSON path (the .md and .html go next to it)")
    paths = [out.with_suffix(s) for s in (out.suffix, ".md", ".html")]
    if input_path.resolve() in {p.resolve() for p in paths}:
        raise ConfigError(f"--out {out}: the report would overwrite --input {input_path}")
    if folders := [p for p in paths if p.is_dir()]:
        raise ConfigError(f"--out {out}: {folders[0]} is a folder; give the report's JSON file path")
    check_folder_can_be_made(out.parent, f"--out {out}")


def from_prediction(row: dict, n: int) -> dict:
    """A ``generated_predictions.jsonl`` row (``vs2 caption``, LLaMA-Factory's ``do_predict``) as a
    judge row: ``predict`` is the caption, ``label`` the reference, ``key`` (else ``id``, else the
    line number) the id, checked as any id (a key 0 is not the line's number, a list no id). A row
    with a ``caption`` and a ``label`` but no ``reference`` reads the label as its reference."""
    if "caption" in row or "predict" not in row:
        return {**row, "reference": row["label"]} if row.get("label") and not row.get("reference") else row
    ident = next((row[k] for k in ("key", "id") if row.get(k) is not None), f"line{n}")
    return {
        **row,
        "id": ident,
        "caption": row["predict"] or "",
        "reference": row.get("reference") or row.get("label"),
    }


#: the keys a ``vs2 eval`` row is read by (``vs2 caption``'s output rows included)
ROW_KEYS = frozenset(
    {"id", "caption", "events", "reference", "task", "video", "start", "end"}
    | {"key", "prompt", "predict", "label", "finish_reason"}
)


def load_items(path: Path, numbered: list[tuple[int, dict]] | None = None) -> list[JudgeItem]:
    """The rows of ``path`` (``numbered``: as :func:`~vs2_plugin.files.numbered_jsonl` already read
    them, e.g. from a pipe that reads once) as judge items. Every error names the line; a key one
    letter or a case away from a key the rows are read by (``Task``) is warned of, once, since the
    row would be read without it (as global). A row with neither events nor a reference (a video
    of ``vs2 caption``'s list that had none) is an item that fails with that reason; a file of such
    rows only is refused, naming the first."""
    items, seen, warned, unfounded = [], set(), set(), []
    for n, row in numbered_jsonl(path) if numbered is None else numbered:
        warn_near_keys(row, ROW_KEYS, f"{path}:{n}", warned)
        _check_view_keys(row, f"{path}:{n}")
        row = from_prediction(row, n)
        reference = row.get("reference")
        if "events" not in row and not (reference.strip() if isinstance(reference, str) else reference):
            unfounded.append(f"{path}:{n}: item {row.get('id')!r} has neither 'events' nor 'reference'")
            row = {**row, "reference": None}
        try:
            item = JudgeItem.from_dict(row)
        except DataError as exc:
            raise DataError(f"{path}:{n}: {exc}") from None
        if item.id in seen:
            raise DataError(f"{path}:{n}: duplicate id {item.id!r}")
        seen.add(item.id)
        items.append(item)
    if unfounded and len(unfounded) == len(items):  # the wrong file, or the wrong keys: nothing to judge
        raise DataError(unfounded[0])
    return items


def warn_near_keys(row: dict, known, where: str, warned: set) -> None:
    """Warn of each key of ``row`` one letter or a case away from a key of ``known`` that the row
    lacks (``Task``), once per file (``warned`` holds those said): the row is read without it,
    silently otherwise."""
    absent = set(known) - set(row)
    for key in sorted(set(row) - set(known) - warned):
        if hint := did_you_mean(key.lower(), absent) or did_you_mean(key, absent):
            warned.add(key)
            logger.warning("%s: key %r is not read%s", where, key, hint)


def _check_view_keys(row: dict, where: str) -> None:
    """``video`` (a path) and ``start`` / ``end`` (seconds): what the HTML report shows of a row."""
    video = row.get("video")
    if video is not None and not isinstance(video, str):
        raise DataError(f"{where}: 'video' must be a path (a string), got {video!r}")
    for key in ("start", "end"):
        value = row.get(key)
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < float("inf")
        ):
            raise DataError(f"{where}: {key!r} must be a number of seconds >= 0, got {value!r}")
    start, end = row.get("start"), row.get("end")
    if start is not None and end is not None and end <= start:
        raise DataError(f"{where}: 'end' {end!r} must come after 'start' {start!r}")


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
