"""Plain data passed through the judge hooks: items to judge, judgments, scored samples, pairs.

Rates are fractions of the item's reference events (paper App. E): ``miss_rate`` =
missed / events, ``hall_rate`` = (incorrect + hallucinated) / events, ``total_rate`` =
miss + hall. A failed judgment carries ``status="failed"`` and an ``error`` and no rates,
so it can never be mistaken for a perfect caption.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from vs2_plugin.errors import DataError

TASKS = ("global", "local")
#: Counts a judge may leave unmeasured, and the rates that then read n/a.
UNMEASURABLE = ("incorrect", "hallucinated")
_RATES_OF = {
    "incorrect": ("incorrect_rate", "hall_rate", "total_rate"),
    "hallucinated": ("hallucination_rate", "hall_rate", "total_rate"),
}


def event_list(value: Any, where: str) -> list[str]:
    """``value`` as a new list of atomic events (``None``: none). Anything but a list of strings
    with a word each is a DataError naming ``where`` and the event: one string would otherwise be
    read as one event per character, and a blank event ("", "...") counted as one more missed."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise DataError(f"{where}: events must be a list of strings, got {type(value).__name__}")
    other = next((k for k, e in enumerate(value) if not isinstance(e, str)), None)
    if other is not None:
        raise DataError(f"{where}: events must be a list of strings; event {other} is {value[other]!r}")
    # an event with no letter or digit ("...", "-") tells nothing a caption could mention
    wordless = next((k for k, e in enumerate(value) if not any(ch.isalnum() for ch in e)), None)
    if wordless is not None:
        what = "blank" if not value[wordless].strip() else f"{value[wordless]!r}, which has no word"
        raise DataError(f"{where}: event {wordless} is {what}")
    return list(value)


@dataclass
class JudgeItem:
    """One caption to judge against its own atomic events (or reference, to extract events from)."""

    id: str
    caption: str
    events: list[str] = field(default_factory=list)
    reference: str | None = None
    task: str = "global"

    def __post_init__(self) -> None:
        if isinstance(self.id, bool) or not isinstance(self.id, (str, int)) or not str(self.id).strip():
            raise DataError(f"id must be a non-blank string or an integer, got {self.id!r}")
        self.id = str(self.id)
        if not isinstance(self.caption, str):
            raise DataError(f"item {self.id!r}: caption must be a string, got {type(self.caption).__name__}")
        self.events = event_list(self.events, f"item {self.id!r}")
        if self.reference is not None and not isinstance(self.reference, str):
            raise DataError(f"item {self.id!r}: reference must be a string, got {type(self.reference).__name__}")
        if self.task not in TASKS:
            raise DataError(f"item {self.id!r}: task must be one of {TASKS}, got {self.task!r}")

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> "JudgeItem":
        if "id" not in row or "caption" not in row:
            raise DataError(f"judge item needs 'id' and 'caption', got keys {sorted(row)}")
        return cls(
            id=row["id"],
            caption=row["caption"],
            events=row.get("events"),
            reference=row.get("reference"),
            task=row.get("task", "global"),
        )


@dataclass
class Judgment:
    """The judge's verdict on one item (one pass, or the median of K passes).

    ``missed`` / ``incorrect`` are reference events; ``hallucinated`` are caption clauses
    (or event-like statements) that the reference does not support. ``unmeasured`` names the
    counts a judge does not measure (``"incorrect"``, ``"hallucinated"``): their rates are
    reported as ``None`` (n/a in tables), never as 0.
    """

    id: str
    judge: str
    status: str = "ok"  # "ok" or "failed"
    error: str | None = None
    n_events: int = 0
    event_scores: list[float] = field(default_factory=list)
    missed: list[str] = field(default_factory=list)
    incorrect: list[str] = field(default_factory=list)
    hallucinated: list[str] = field(default_factory=list)
    rep_rate: float | None = None
    unnatural: list[str] = field(default_factory=list)
    passes: list[dict[str, Any]] = field(default_factory=list)
    usage: dict[str, int] = field(default_factory=dict)
    unmeasured: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        bad = sorted(set(self.unmeasured) - set(UNMEASURABLE))
        if bad:
            raise ValueError(f"Judgment.unmeasured must name counts among {UNMEASURABLE}, got {bad}")
        if self.status not in ("ok", "failed"):
            raise ValueError(f"Judgment.status must be 'ok' or 'failed', got {self.status!r}")
        if self.status == "failed" and not self.error:
            raise ValueError(f"Judgment {self.id!r} failed without an error message")

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @classmethod
    def failed(cls, item_id: str, judge: str, error: str, **extra: Any) -> "Judgment":
        return cls(id=str(item_id), judge=judge, status="failed", error=error, **extra)

    def rates(self) -> dict[str, float | None] | None:
        """Miss / Incorrect / Hallucination / Hall / Total as fractions; ``None`` when failed.

        A rate built on an ``unmeasured`` count is ``None`` (Hall and Total included).
        """
        if not self.ok:
            return None
        from vs2_plugin.judge.metrics import event_rates

        out: dict[str, float | None] = dict(
            event_rates(self.n_events, len(self.missed), len(self.incorrect), len(self.hallucinated))
        )
        for count in self.unmeasured:
            for key in _RATES_OF[count]:
                out[key] = None
        return out

    def to_dict(self) -> dict[str, Any]:
        out = {
            "id": self.id,
            "judge": self.judge,
            "status": self.status,
            "n_events": self.n_events,
            "event_scores": [round(float(s), 4) for s in self.event_scores],
            "missed": list(self.missed),
            "incorrect": list(self.incorrect),
            "hallucinated": list(self.hallucinated),
            "unnatural": list(self.unnatural),
        }
        if self.ok:
            out.update(self.rates())
            out["rep_rate"] = self.rep_rate
        else:
            out["error"] = self.error
        if self.passes:
            out["passes"] = self.passes
        if self.usage:
            out["usage"] = dict(self.usage)
        if self.unmeasured:
            out["unmeasured"] = list(self.unmeasured)
        return out


@dataclass
class Extraction:
    """What a judge's ``extract_events`` may answer per reference in place of a plain event list
    (or ``None``): the events (``None`` when extraction failed), why it failed (the item's error
    then names it), and the usage of its requests (the counters of ``Judgment.usage``, added to the
    item's)."""

    events: list[str] | None
    error: str | None = None
    usage: dict[str, float] = field(default_factory=dict)


@dataclass
class ScoredSample:
    """One sampled caption of a video with its judged metrics (input to pair selection).

    ``error`` is the total error rate (Miss + Hall) and ``rep`` the repetition rate, both
    fractions. ``media`` holds the video path(s) and ``audios`` optional separate audio files.
    """

    video_id: str
    task: str
    prompt: str
    caption: str
    error: float
    rep: float
    sample_id: str = ""
    media: list[str] = field(default_factory=list)
    audios: list[str] = field(default_factory=list)
    miss: float | None = None
    hall: float | None = None

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise DataError(f"sample {self.video_id!r}: task must be one of {TASKS}, got {self.task!r}")
        for name in ("error", "rep"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or value != value:  # NaN check
                raise DataError(f"sample {self.video_id!r}/{self.sample_id!r}: {name} must be a number, got {value!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class PreferencePair:
    """A chosen/rejected pair for DPO with the metric margins that justified it."""

    video_id: str
    task: str
    prompt: str
    chosen: ScoredSample
    rejected: ScoredSample
    error_margin: float
    rep_margin: float

    @property
    def media(self) -> list[str]:
        return list(self.chosen.media)

    def to_dict(self) -> dict[str, Any]:
        return {
            "video_id": self.video_id,
            "task": self.task,
            "prompt": self.prompt,
            "chosen": self.chosen.to_dict(),
            "rejected": self.rejected.to_dict(),
            "error_margin": self.error_margin,
            "rep_margin": self.rep_margin,
        }
