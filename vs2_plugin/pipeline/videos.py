"""The video lists the driver samples from: JSONL rows ``{id, video, reference | events, local}``.

``video`` is a path (relative to the JSONL's folder or absolute). ``local`` is an optional list
of ``{start, end, reference | events}`` time intervals for local captioning (paper sec. 4.2).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from vs2_plugin.errors import DataError
from vs2_plugin.files import read_jsonl
from vs2_plugin.judge.types import event_list


@dataclass
class Interval:
    start: float
    end: float
    reference: str | None = None
    events: list[str] = field(default_factory=list)


@dataclass
class VideoEntry:
    id: str
    video: str
    reference: str | None = None
    events: list[str] = field(default_factory=list)
    local: list[Interval] = field(default_factory=list)


#: how far a local interval may end past the video's duration: hand-written ends are rounded
#: (5.3 on a 5.28 s clip) and audio often outlasts the video by a frame or two
INTERVAL_SLACK_S = 0.5


def media_duration(path: str | Path) -> float:
    """The longer of a file's streams, in seconds (header only; MediaError when unreadable)."""
    from vs2_plugin.data.media import probe

    info = probe(path)
    return max(info.video_duration_s or 0.0, info.audio_duration_s or 0.0, info.duration_s)


def interval_past_end(k: int, start: float, end: float, duration: float) -> str | None:
    """Why local interval ``k`` does not lie in a ``duration`` s video (None when it does)."""
    if start >= duration or end > duration + INTERVAL_SLACK_S:
        return f"local[{k}] (start {start:g}, end {end:g}) is past the video's end ({duration:.2f} s)"
    return None


def repeated_interval(k: int, start: float, end: float, seen: dict[str, int]) -> str | None:
    """Why local interval ``k`` repeats an earlier interval of its row (None when it does not).
    ``seen`` maps each earlier interval, as its key writes it (``{start:g}-{end:g}``: outputs are keyed
    so), to its index; ``k`` is added when new."""
    span = f"{start:g}-{end:g}"
    if span in seen:
        return f"local[{k}] (start {start:g}, end {end:g}) repeats local[{seen[span]}]: give each interval once"
    seen[span] = k
    return None


def parse_video_row(row: dict, base_dir: Path, require_reference: bool = True) -> VideoEntry:
    """One row as a :class:`VideoEntry` (``video`` resolved against ``base_dir``); DataError says what is wrong.
    ``require_reference=False`` (videos only to be labelled, as by rebirth): neither the video nor its
    local intervals need a reference caption or events."""
    for key in ("id", "video"):
        if not row.get(key):
            raise DataError(f"missing {key!r} (row keys: {sorted(row)})")
    vid = str(row["id"])
    if require_reference and not row.get("reference") and not row.get("events"):
        raise DataError(f"video {vid!r} needs a 'reference' caption or an 'events' list")
    video = Path(row["video"])
    video = video if video.is_absolute() else (base_dir / video)
    if not video.is_file():
        raise DataError(f"video file not found: {video}")
    local, spans = [], {}
    for k, iv in enumerate(row.get("local") or []):
        try:
            start, end = float(iv["start"]), float(iv["end"])
        except (KeyError, TypeError, ValueError):
            raise DataError(f"local[{k}] needs numeric 'start' and 'end'") from None
        if not 0 <= start < end:
            raise DataError(f"local[{k}] has start={start} end={end}")
        repeat = repeated_interval(k, start, end, spans)
        if repeat:
            raise DataError(f"video {vid!r}: {repeat}")
        if require_reference and not iv.get("reference") and not iv.get("events"):
            raise DataError(f"local[{k}] needs a 'reference' or 'events'")
        events = event_list(iv.get("events"), f"video {vid!r} local[{k}]")
        local.append(Interval(start, end, iv.get("reference"), events))
    events = event_list(row.get("events"), f"video {vid!r}")
    return VideoEntry(vid, str(video.resolve()), row.get("reference"), events, local)


def load_videos(path: str | Path, require_reference: bool = True) -> list[VideoEntry]:
    """Rows of ``path``; ``require_reference=False`` for videos that are only to be labelled."""
    p = Path(path)
    out, seen = [], set()
    for n, row in enumerate(read_jsonl(p, allow_empty=True), 1):
        try:
            entry = parse_video_row(row, p.parent, require_reference)
            if entry.id in seen:
                raise DataError(f"duplicate id {entry.id!r}")
        except DataError as exc:
            raise DataError(f"{p}:{n}: {exc}") from None
        seen.add(entry.id)
        out.append(entry)
    if not out:
        raise DataError(f"{p}: no videos")
    return out
