"""``vs2 pairs``'s work without its command line: read sampled captions, turn judgments (or
precomputed rates) into :class:`ScoredSample` s for the App. F pair selection."""

from __future__ import annotations

from pathlib import Path

from vs2_plugin.errors import DataError
from vs2_plugin.files import read_jsonl
from vs2_plugin.judge import metrics
from vs2_plugin.judge.types import JudgeItem, Judgment, ScoredSample, event_list
from vs2_plugin.secrets import redact


def _as_list(value) -> list[str]:
    if value is None:
        return []
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def _precomputed(row: dict) -> tuple[float, float] | None:
    if "total_rate" in row:
        error = float(row["total_rate"])
    elif "miss_rate" in row and "hall_rate" in row:
        error = float(row["miss_rate"]) + float(row["hall_rate"])
    else:
        return None
    rep = float(row["rep_rate"]) if "rep_rate" in row else metrics.repetition_rate(row["caption"])
    return error, rep


def load_samples(path: Path) -> list[dict]:
    rows = read_jsonl(path)
    for n, row in enumerate(rows, start=1):
        missing = [k for k in ("video_id", "prompt", "caption") if k not in row]
        if missing:
            raise DataError(f"{path}: row {n}: missing {missing}")
        if row.get("task", "global") not in ("global", "local"):
            raise DataError(f"{path}: row {n}: task must be 'global' or 'local', got {row.get('task')!r}")
        if _precomputed(row) is None and not row.get("events") and not row.get("reference"):
            raise DataError(
                f"{path}: row {n} (video {row['video_id']!r}) has no events, reference or precomputed rates"
            )
        if "events" in row:  # one string would be one event per character: refused here, with the row
            row["events"] = event_list(row["events"], f"{path}: row {n} (video {row['video_id']!r})")
        row.setdefault("sample_id", f"{row['video_id']}#{row.get('task', 'global')}#{n}")
    return rows


def items_to_judge(rows: list[dict]) -> list[JudgeItem]:
    """The rows without precomputed rates, as judge items keyed by ``sample_id``."""
    to_judge = [r for r in rows if _precomputed(r) is None]
    return [
        JudgeItem(
            id=r["sample_id"],
            caption=r["caption"],
            events=r.get("events"),
            reference=r.get("reference"),
            task=r.get("task", "global"),
        )
        for r in to_judge
    ]


def scored_samples(rows: list[dict], judged: dict[str, Judgment]) -> tuple[list[ScoredSample], list[dict]]:
    """(samples that can be paired, one score row per input row, failed ones included)."""
    samples, score_rows = [], []
    for r in rows:
        pre = _precomputed(r)
        entry = {"sample_id": r["sample_id"], "video_id": r["video_id"], "task": r.get("task", "global")}
        if pre is None:
            j = judged[r["sample_id"]]
            if not j.ok:
                entry.update(status="failed", error=redact(j.error))
                score_rows.append(entry)
                continue
            rates = j.rates()
            error, rep = rates["total_rate"], j.rep_rate
            if error is None:  # a judge that leaves a count unmeasured: rank by what it measured
                error = rates["miss_rate"] + sum(rates[k] or 0.0 for k in ("incorrect_rate", "hallucination_rate"))
            entry.update(rates)
        else:
            error, rep = pre
        entry.update(status="ok", error_rate=error, rep_rate=rep)
        score_rows.append(entry)
        samples.append(
            ScoredSample(
                video_id=str(r["video_id"]),
                task=r.get("task", "global"),
                prompt=r["prompt"],
                caption=r["caption"],
                error=error,
                rep=rep,
                sample_id=r["sample_id"],
                media=_as_list(r.get("media")),
                audios=_as_list(r.get("audios")),
            )
        )
    return samples, score_rows
