"""Bad samples: find them before a long run starts, then fail on them or leave them out.

A run over thousands of clips should not die hours in because one file is broken. This
module checks a dataset up front, cheaply (container metadata and the last seconds of
packets, no decoding), and says what is wrong with every bad sample:

* media: missing, empty (0 bytes), not a readable container (e.g. a text file named .mp4),
  data that ends before the header says (a cut-short download), no video stream for a
  ``<video>``, no audio stream where audio is required (an ``<audio>`` input, or a video
  when ``vs2_require_audio`` is set), an audio track the run would drop (a model with an audio
  branch, ``use_audio_in_video: false``), shorter than ``vs2_min_duration_s`` (default 1 s),
  longer than ``vs2_max_duration_s`` (default: no limit);
* samples whose media tokens (frames and audio, as ``vs2 tokens`` counts them) reach
  ``cutoff_len``, or whose prompt holding media LLaMA-Factory would cut once the text around the
  media and the reply are counted with the run's template (:mod:`vs2_plugin.data.cutoff`; when the
  model's tokenizer is at hand offline): the cut falls inside the media tokens or the instruction;
* rows: a missing or malformed column, roles out of order, an empty caption, text that is
  not valid UTF-8, a number of ``<video>`` / ``<audio>`` / ``<image>`` placeholders that
  differs from the number of files given.

Damage inside a file (header and last packets intact) is invisible to that cheap check;
``vs2_check_decode: true`` also decodes every file once the way training reads it.

What is *not* bad: long media (frames are capped at ``video_maxlen``; audio runs in 30 s
segments), variable frame rate, multichannel or 44.1 / 48 kHz audio (downmixed and
resampled to 16 kHz mono when read).

The policy (:data:`POLICIES`) is ``fail`` (default for training data: one line naming the
sample, the file and the problem), ``skip`` (bad samples are left out and listed) or ``off``
(no check). Datasets are read the way LLaMA-Factory reads them (``dataset_info.json``,
sharegpt / openai / alpaca formatting, media paths joined to ``media_dir``), but with our own
code (:mod:`vs2_plugin.data.dataset_rows`): nothing here imports LLaMA-Factory.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from vs2_plugin.data import media
from vs2_plugin.data.dataset_rows import DatasetSpec, RowChecker, media_items, read_rows
from vs2_plugin.data.media_check import (  # noqa: F401 (re-exported)
    CHECK_WORKERS,
    MediaLimits,
    check_many,
    check_media,
    cutoff_problem,
    tokens_problem,
)
from vs2_plugin.errors import ConfigError

POLICIES = ("fail", "skip", "off")
#: Files written to the run's output directory.
SKIPPED_FILE = "skipped_samples.jsonl"
BAD_FILE = "bad_samples.jsonl"
SUMMARY_FILE = "data_check.json"
FILTERED_DIR = "vs2_data"


# ----------------------------------------------------------------------------- arguments


@dataclass
class DataCheckArguments:
    """Keys of the bad-sample check, in the same YAML as LLaMA-Factory's (popped before it parses)."""

    vs2_bad_samples: str = field(
        default="fail",
        metadata={
            "help": "What a bad training sample does: 'fail' = stop before training with one line naming the "
            "sample, file and problem; 'skip' = leave it out (listed in <output_dir>/skipped_samples.jsonl, "
            "the run trains on a filtered copy in <output_dir>/vs2_data); 'off' = no check."
        },
    )
    vs2_min_duration_s: float = field(
        default=media.MIN_DURATION_S, metadata={"help": "Media shorter than this (seconds) is bad."}
    )
    vs2_max_duration_s: float | None = field(
        default=None,
        metadata={
            "help": "Media longer than this (seconds) is bad (default: no limit; frames are capped at "
            "video_maxlen, but audio tokens grow with the length, 5 per second)."
        },
    )
    vs2_check_decode: bool = field(
        default=False,
        metadata={
            "help": "Also decode every file as training will (frames and audio): finds damage inside a file "
            "that the metadata check cannot see, at the cost of one decode per file before the run."
        },
    )
    vs2_require_audio: bool = field(
        default=False,
        metadata={"help": "A <video> without an audio stream is bad (when the run uses the video's audio)."},
    )

    def __post_init__(self):
        if self.vs2_bad_samples is False:  # a bare `off` in YAML reads as false
            self.vs2_bad_samples = "off"
        self.vs2_bad_samples = str(self.vs2_bad_samples).strip().lower()
        if self.vs2_bad_samples not in POLICIES:
            raise ConfigError(f"vs2_bad_samples must be one of {', '.join(POLICIES)}; got {self.vs2_bad_samples!r}")
        self.vs2_min_duration_s = _number("vs2_min_duration_s", self.vs2_min_duration_s, minimum=0.0)
        if self.vs2_max_duration_s is not None:
            self.vs2_max_duration_s = _number("vs2_max_duration_s", self.vs2_max_duration_s, minimum=0.0)
            if self.vs2_max_duration_s <= self.vs2_min_duration_s:
                raise ConfigError(
                    f"vs2_max_duration_s ({self.vs2_max_duration_s:g}) must be larger than "
                    f"vs2_min_duration_s ({self.vs2_min_duration_s:g})"
                )
        self.vs2_require_audio = _boolean("vs2_require_audio", self.vs2_require_audio)
        self.vs2_check_decode = _boolean("vs2_check_decode", self.vs2_check_decode)

    @classmethod
    def field_names(cls) -> set[str]:
        return {f.name for f in fields(cls)}

    @classmethod
    def pop_from(cls, args: dict) -> DataCheckArguments:
        """Remove these keys from a raw LLaMA-Factory args dict (strings from a command line are converted)."""
        own = {name: args.pop(name) for name in list(args) if name in cls.field_names()}
        if isinstance(own.get("vs2_max_duration_s"), str) and own["vs2_max_duration_s"].strip().lower() in (
            "",
            "none",
            "null",
        ):
            own["vs2_max_duration_s"] = None
        return cls(**own)


def _number(name: str, value: Any, minimum: float) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number, got {value!r}") from None
    if isinstance(value, bool) or not math.isfinite(number) or number < minimum:
        raise ConfigError(f"{name} must be a finite number >= {minimum:g}, got {value!r}")
    return number


def _boolean(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off"):
        return False
    raise ConfigError(f"{name} must be true or false, got {value!r}")


def check_policy(name: str, value: Any) -> str:
    """``value`` as a policy name, or a ConfigError naming the key."""
    text = str(value).strip().lower()
    if text not in POLICIES:
        raise ConfigError(f"{name} must be one of {', '.join(POLICIES)}; got {value!r}")
    return text


# ----------------------------------------------------------------------------- results


@dataclass(frozen=True)
class BadSample:
    """One bad sample: where it is, which file (if a file is at fault) and what is wrong."""

    dataset: str  #: dataset name (dataset_info.json) or video-list path
    index: int | None  #: 0-based row index in the dataset (file order; folders: sorted file names)
    reason: str
    file: str | None = None  #: the media file at fault (None when the row itself is at fault)
    id: str | None = None  #: the row's ``id`` field, if it has one
    source: str | None = None  #: the dataset file the row came from
    #: where in ``source`` as an editor shows it: "line 4" (JSON lines) or "item 4" (a JSON array)
    position: str | None = None

    def message(self) -> str:
        where = []
        if self.position is not None:
            where.append(f"{Path(self.source).name} {self.position}" if self.source else self.position)
        elif self.index is not None:
            where.append(f"row {self.index}")
        if self.id is not None:
            where.append(f"id {self.id!r}")
        who = f"dataset {self.dataset!r}" + (f" ({', '.join(where)})" if where else "")
        return f"{who}: {self.file}: {self.reason}" if self.file else f"{who}: {self.reason}"

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass
class DatasetCheck:
    """The result for one dataset: the good rows (media paths resolved) and the bad samples."""

    spec: DatasetSpec
    total: int = 0
    good_rows: list[Any] = field(default_factory=list)
    bad: list[BadSample] = field(default_factory=list)
    checked: bool = True  #: False for hub / script / non-JSON datasets (not checked)


def check_dataset(spec: DatasetSpec, limits: MediaLimits) -> DatasetCheck:
    """Check every row of one local dataset."""
    result = DatasetCheck(spec)
    if not spec.local or "file_name" not in spec.entry:
        result.checked = False
        return result
    files = spec.files()
    if any(f.suffix not in (".json", ".jsonl") for f in files):
        result.checked = False  # csv / parquet / arrow: left to LLaMA-Factory
        return result
    contents = [(path, read_rows(path)) for path in files]
    wanted = {item for _, rows in contents for _, row in rows for item in media_items(spec, row)}
    checker = RowChecker(spec, limits, check_many(wanted, limits))
    index = 0
    for path, rows in contents:
        for position, row in rows:
            problems = checker.check(row)
            sample_id = row.get("id") if isinstance(row, dict) else None
            sample_id = None if sample_id is None else str(sample_id)
            if problems:
                for file, reason in problems:
                    result.bad.append(BadSample(spec.name, index, reason, file, sample_id, str(path), position))
            else:
                good = dict(row)
                good.update(checker.media)  # absolute paths: the copy may live elsewhere
                result.good_rows.append(good)
            index += 1
    result.total = index
    return result


# ----------------------------------------------------------------------------- reports


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    os.replace(tmp, path)


def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def fail_message(bad: list[BadSample], listed: Path | None, total_rows: int) -> str:
    """The one line a ``fail`` run stops with: the first bad sample, how many more, where they are listed."""
    first = bad[0].message()
    rows = {(b.dataset, b.index) for b in bad}
    more = f"; {len(rows)} of {total_rows} samples are bad" if len(rows) > 1 else ""
    where = f", all listed in {listed}" if listed else ""
    return f"bad training sample: {first}{more}{where}; fix them or set vs2_bad_samples: skip to leave them out"
