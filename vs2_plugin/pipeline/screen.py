"""Bad videos in the driver's video lists: left out and listed, so a multi-hour run goes on.

:func:`screen_videos` checks every row of a video list (``vs2_plugin.pipeline.videos``) the
way :func:`load_videos` does, and every video the way training data is checked
(:func:`vs2_plugin.data.validate.check_media`: missing / empty / unreadable / truncated file,
no video stream, too short or too long). With ``policy="skip"`` (the driver's default) a bad
row is left out and written to ``<run_dir>/skipped_videos.jsonl`` (``list``, ``index``, ``id``,
``file``, ``reason``); with ``"fail"`` the first bad row stops the run with one line naming it.
"""

from __future__ import annotations

import os
from pathlib import Path

from vs2_plugin.data.dataset_rows import read_rows, text_problem
from vs2_plugin.data.validate import BadSample, MediaLimits, check_media, check_policy, write_jsonl
from vs2_plugin.errors import DataError, MediaError
from vs2_plugin.files import read_jsonl
from vs2_plugin.pipeline import console
from vs2_plugin.pipeline.videos import VideoEntry, interval_past_end, load_videos, media_duration, parse_video_row

SKIPPED_VIDEOS_FILE = "skipped_videos.jsonl"


def _row_entry(row: dict, list_path: Path, require_reference: bool) -> VideoEntry:
    """The row by :func:`parse_video_row`'s rules, after a check that its text is valid UTF-8."""
    for key, value in row.items():
        for text in value if isinstance(value, list) else [value]:
            bad = text_problem(text) if isinstance(text, str) else None
            if bad:
                raise DataError(f"{key!r} is {bad}")
    return parse_video_row(row, list_path.parent, require_reference)


def video_limits(cfg) -> MediaLimits:
    """The clip lengths an mrDPO config (``min_duration_s`` / ``max_duration_s``) lets its video
    lists have: the driver's and rebirth's."""
    return MediaLimits(
        min_duration_s=float(cfg.min_duration_s),
        max_duration_s=None if cfg.max_duration_s is None else float(cfg.max_duration_s),
    )


def screen_videos(
    path: str | Path,
    run_dir: str | Path,
    *,
    policy: str = "skip",
    limits: MediaLimits | None = None,
    require_reference: bool = True,
    tag: str = "videos",
) -> tuple[list[VideoEntry], list[BadSample]]:
    """The good videos of ``path`` and the bad rows (also appended to ``run_dir/skipped_videos.jsonl``).

    ``tag`` names the list in the skipped file (e.g. "train", "heldout").
    """
    policy = check_policy("bad_samples", policy)
    limits = limits or MediaLimits()
    if policy == "off":
        return load_videos(path, require_reference=require_reference), []
    p = Path(path)
    good, bad = screen_rows(p, limits=limits, require_reference=require_reference, tag=tag)
    if bad and policy == "fail":
        first = bad[0]
        raise DataError(
            f"bad video in {p}: {first.message()}; {len(bad)} bad row(s) in all; "
            "set bad_samples: skip to leave them out"
        )
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    listing = record_skipped(run_dir, tag, bad)
    if not good:
        raise DataError(
            f"{p}: no usable videos ({len(bad)} bad, listed in {listing})" if bad else f"{p}: no videos listed"
        )
    return good, bad


def screen_rows(
    path: str | Path, *, limits: MediaLimits, require_reference: bool = True, tag: str = "videos"
) -> tuple[list[VideoEntry], list[BadSample]]:
    """The good videos of the list at ``path`` and its bad rows, each with what is wrong; writes nothing."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{tag} video list not found: {p}")
    good: list[VideoEntry] = []
    bad: list[BadSample] = []
    seen: set[str] = set()
    for index, (position, row) in enumerate(read_rows(p)):
        sample_id = str(row["id"]) if isinstance(row, dict) and row.get("id") else None
        try:
            if not isinstance(row, dict):
                raise DataError(getattr(row, "reason", None) or f"row is a {type(row).__name__}, not an object")
            video = row.get("video")
            if isinstance(video, str) and video:
                path = str((p.parent / video).absolute()) if not os.path.isabs(video) else video
                problem = check_media(path, "video", limits)
                if problem:
                    bad.append(BadSample(tag, index, problem, path, sample_id, str(p), position))
                    continue
            entry = _row_entry(row, p, require_reference)
            if entry.local:  # an interval past the end would be captioned from frames that do not exist
                duration = media_duration(entry.video)
                past = [interval_past_end(k, iv.start, iv.end, duration) for k, iv in enumerate(entry.local)]
                if any(past):
                    raise DataError(next(filter(None, past)))
            if entry.id in seen:
                raise DataError(f"duplicate id {entry.id!r}")
            seen.add(entry.id)
            good.append(entry)
        except (DataError, MediaError) as exc:
            bad.append(BadSample(tag, index, str(exc), None, sample_id, str(p), position))
    return good, bad


def record_skipped(run_dir: str | Path, tag: str, bad: list[BadSample]) -> Path:
    """Write ``bad`` as the ``tag`` entries of ``run_dir/skipped_videos.jsonl`` (replacing earlier ones)."""
    listing = Path(run_dir) / SKIPPED_VIDEOS_FILE
    earlier = [r for r in read_jsonl(listing, allow_empty=True) if r.get("dataset") != tag] if listing.is_file() else []
    write_jsonl(listing, earlier + [b.to_dict() for b in bad])
    if bad:  # a warning that matters: on the terminal even when the console is quiet
        console.warn(f"{tag}: {len(bad)} bad video(s) left out (first: {bad[0].message()}); listed in {listing}")
    return listing


def drop_failed(rows: list[dict], run_dir: str | Path, tag: str, policy: str = "skip") -> tuple[list[dict], set[str]]:
    """Sampled rows minus those of videos that could not be read while sampling (rows with
    ``error``); those videos are listed under ``tag`` in ``skipped_videos.jsonl``, or, with
    ``policy="fail"``, stop the run. Returns the kept rows and the ids of the failed videos."""
    failed = {}
    for r in rows:
        if r.get("error"):
            failed.setdefault(r["video_id"], r)
    if not failed:
        return rows, set()
    if check_policy("bad_samples", policy) == "fail":
        r = next(iter(failed.values()))
        raise DataError(
            f"bad video {r['video_id']!r} while sampling ({tag}): {r['video']}: {r['error']}; "
            "set bad_samples: skip to leave it out"
        )
    bad = [BadSample(tag, None, r["error"], r["video"], vid) for vid, r in failed.items()]
    record_skipped(run_dir, tag, bad)
    return [r for r in rows if r["video_id"] not in failed], set(failed)
