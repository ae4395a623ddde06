"""``vs2 pairs``'s work without its command line: read sampled captions, turn judgments (or
precomputed rates) into :class:`ScoredSample` s for the App. F pair selection."""

from __future__ import annotations

import math
from pathlib import Path

from vs2_plugin.errors import DataError
from vs2_plugin.files import numbered_jsonl
from vs2_plugin.judge import metrics
from vs2_plugin.judge.types import JudgeItem, Judgment, ScoredSample, event_list
from vs2_plugin.secrets import redact


def _as_list(value) -> list[str]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _paths(row: dict, key: str, where: str) -> list[str]:
    """``row[key]`` (a path or a list of paths) as a list; anything else is a DataError."""
    value = _as_list(row.get(key))
    if not all(isinstance(v, str) and v.strip() for v in value):
        raise DataError(f"{where}: '{key}' must be a path or a list of paths, got {row.get(key)!r}")
    return value


# what a precomputed rate may be: (lowest, highest); Hall is not capped by every judge
_RATE_RANGES = {"miss_rate": (0.0, 1.0), "hall_rate": (0.0, None), "total_rate": (0.0, None), "rep_rate": (0.0, 1.0)}


def _rate(row: dict, key: str, where: str) -> float:
    value = row[key]
    low, high = _RATE_RANGES[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise DataError(f"{where}: '{key}' must be a number, got {value!r}")
    if value < low or (high is not None and value > high):
        bounds = f"[{low}, {high}]" if high is not None else f"[{low}, inf)"
        raise DataError(f"{where}: '{key}' must lie in {bounds}, got {value!r}")
    return float(value)


def _precomputed(row: dict, where: str = "") -> tuple[float, float] | None:
    """(error, repetition rate) given in the row instead of a judgment, or None."""
    if "total_rate" in row:
        error = _rate(row, "total_rate", where)
        if "miss_rate" in row and "hall_rate" in row:  # Total = Miss + Hall (App. E): two answers would be one too many
            parts = _rate(row, "miss_rate", where) + _rate(row, "hall_rate", where)
            if abs(parts - error) > 1e-6:
                raise DataError(
                    f"{where}: 'total_rate' {error:g} is not 'miss_rate' + 'hall_rate' ({parts:g}); give one or the other"
                )
    elif "miss_rate" in row and "hall_rate" in row:
        error = _rate(row, "miss_rate", where) + _rate(row, "hall_rate", where)
    else:
        return None
    rep = _rate(row, "rep_rate", where) if "rep_rate" in row else metrics.repetition_rate(row["caption"])
    return error, rep


#: the keys a ``vs2 pairs`` row is read by
SAMPLE_KEYS = frozenset(
    {"video_id", "prompt", "caption", "task", "media", "audios", "sample_id", "events", "reference"} | set(_RATE_RANGES)
)


def load_samples(path: Path) -> list[dict]:
    """The rows of a ``vs2 pairs`` input, checked before any judging: every error names the file,
    the line and the video; a misspelt key (``Task``, ``rep-rate``) is warned of. ``sample_id``
    (absent or null) defaults to ``video#task#line`` and must be unique."""
    from vs2_plugin.judge.evaluation import warn_near_keys

    rows, seen, warned = [], {}, set()
    for n, row in numbered_jsonl(path):
        warn_near_keys(row, SAMPLE_KEYS, f"{path}:{n}", warned)
        missing = [k for k in ("video_id", "prompt", "caption") if k not in row]
        if missing:
            raise DataError(f"{path}:{n}: missing {missing}")
        video = row["video_id"]
        if isinstance(video, bool) or not isinstance(video, (str, int)) or not str(video).strip():
            raise DataError(f"{path}:{n}: video_id must be a non-blank string or an integer, got {video!r}")
        where = f"{path}:{n} (video {video!r})"
        for key in ("prompt", "caption", "reference"):
            if key in row and not isinstance(row[key], str):
                raise DataError(f"{where}: '{key}' must be a string, got {type(row[key]).__name__}")
        if row.get("task", "global") not in ("global", "local"):
            raise DataError(f"{where}: task must be 'global' or 'local', got {row.get('task')!r}")
        if not (_paths(row, "media", where) or _paths(row, "audios", where)):
            raise DataError(f"{where}: no 'media' (or 'audios'): a pair needs the clip its captions describe")
        if _precomputed(row, where) is None and not row.get("events") and not row.get("reference"):
            raise DataError(f"{where}: no events, reference or precomputed rates")
        if "events" in row:  # one string would be one event per character: refused here, with the row
            row["events"] = event_list(row["events"], where)
        if row.get("sample_id") is None:
            row["sample_id"] = f"{video}#{row.get('task', 'global')}#{n}"
        sample_id = row["sample_id"]
        if isinstance(sample_id, bool) or not isinstance(sample_id, (str, int)) or not str(sample_id).strip():
            raise DataError(f"{where}: sample_id must be a non-blank string or an integer, got {sample_id!r}")
        sample_id = str(sample_id)
        if sample_id in seen:
            raise DataError(f"{where}: duplicate sample_id {sample_id!r} (line {seen[sample_id]} has it too)")
        seen[sample_id] = n
        row["sample_id"] = sample_id
        rows.append(row)
    return rows


def missing_media_warning(rows: list[dict], dataset_dir: Path) -> str | None:
    """Which media files of ``rows`` are not where LLaMA-Factory will look for them: a relative path
    from its ``media_dir``, the dataset_dir unless the recipe sets another (so a warning, not an
    error); and which are there but no media the training could read (the bad-sample check of the
    training run would refuse them: a text file named .mp4, a cut download). None when all are fine."""
    from vs2_plugin.data.media_check import MediaLimits, check_media

    missing: dict[str, str] = {}
    unreadable: dict[str, tuple[str, str]] = {}
    for row in rows:
        for key, kind in (("media", "video"), ("audios", "audio")):
            for path in _as_list(row.get(key)):
                full = Path(dataset_dir) / path  # an absolute path stays itself
                if not full.exists():
                    missing.setdefault(path, row["sample_id"])
                elif path not in unreadable and (problem := check_media(str(full), kind, MediaLimits())):
                    unreadable[path] = (row["sample_id"], problem)
    lines = []
    if missing:
        shown = ", ".join(f"{path} (sample {sample})" for path, sample in list(missing.items())[:5])
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        lines.append(
            f"{len(missing)} media file(s) not found from --dataset-dir {dataset_dir}, where LLaMA-Factory reads "
            f"relative paths unless the recipe sets media_dir: {shown}{more}"
        )
    if unreadable:
        shown = "; ".join(f"{path} (sample {s}): {why}" for path, (s, why) in list(unreadable.items())[:5])
        more = f"; and {len(unreadable) - 5} more" if len(unreadable) > 5 else ""
        lines.append(f"{len(unreadable)} media file(s) a training run would refuse: {shown}{more}")
    return "; ".join(lines) or None


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
