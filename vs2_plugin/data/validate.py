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
sharegpt / openai / alpaca formatting, media paths joined to ``media_dir``), but with this
module's own code: nothing here imports LLaMA-Factory.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from vs2_plugin.data import media
from vs2_plugin.data.cutoff import Dialogue
from vs2_plugin.data.media_check import (  # noqa: F401 (re-exported)
    CHECK_WORKERS,
    MediaLimits,
    check_many,
    check_media,
    cutoff_problem,
    tokens_problem,
)
from vs2_plugin.errors import ConfigError, DataError, did_you_mean

POLICIES = ("fail", "skip", "off")
IMAGE_PLACEHOLDER = os.environ.get("IMAGE_PLACEHOLDER", "<image>")
VIDEO_PLACEHOLDER = os.environ.get("VIDEO_PLACEHOLDER", "<video>")
AUDIO_PLACEHOLDER = os.environ.get("AUDIO_PLACEHOLDER", "<audio>")
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


# ----------------------------------------------------------------------------- dataset rows


@dataclass
class DatasetSpec:
    """One ``dataset_info.json`` entry, as far as the checks need it (LLaMA-Factory's defaults)."""

    name: str
    entry: dict[str, Any]
    dataset_dir: str
    media_dir: str

    @property
    def formatting(self) -> str:
        return self.entry.get("formatting", "alpaca")

    @property
    def ranking(self) -> bool:
        return bool(self.entry.get("ranking", False))

    def column(self, key: str, default: str | None = None) -> str | None:
        return (self.entry.get("columns") or {}).get(key, default)

    def tag(self, key: str, default: str) -> str:
        return (self.entry.get("tags") or {}).get(key, default)

    @property
    def local(self) -> bool:
        return not any(
            k in self.entry for k in ("hf_hub_url", "ms_hub_url", "om_hub_url", "script_url", "cloud_file_name")
        )

    def files(self) -> list[Path]:
        path = Path(self.dataset_dir) / self.entry["file_name"]
        if path.is_dir():
            return sorted(p for p in path.iterdir() if p.is_file())
        if path.is_file():
            return [path]
        raise DataError(f"dataset {self.name!r}: file {path} not found (dataset_dir={self.dataset_dir})")


def load_dataset_info(dataset_dir: str | os.PathLike) -> dict[str, Any]:
    path = Path(dataset_dir) / "dataset_info.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path}: not found (dataset_dir={dataset_dir})") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not valid JSON ({exc})") from None


def read_rows(path: Path) -> list[tuple[str, Any]]:
    """(position, row) of each row of a .json (array, or JSON lines) or .jsonl file, the position
    as an editor shows it ("item 3" of an array, "line 7" of JSON lines, blank lines counted);
    bytes that are not UTF-8 become lone surrogates (so one bad caption marks its row, not the
    whole file)."""
    text = path.read_bytes().decode("utf-8", errors="surrogateescape").lstrip("\ufeff")
    if path.suffix == ".json" and text.strip().startswith("["):
        try:
            rows = json.loads(text.strip())
        except ValueError as exc:
            raise DataError(f"{path}: not valid JSON ({exc})") from None
        return [(f"item {n}", row) for n, row in enumerate(rows, 1)]
    rows = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rows.append((f"line {n}", json.loads(line)))
        except ValueError as exc:
            rows.append((f"line {n}", _Unparsed(f"not valid JSON ({exc})")))
    return rows


@dataclass
class _Unparsed:
    reason: str


def text_problem(text: str) -> str | None:
    """Why ``text`` is not valid UTF-8 (lone surrogates from undecodable bytes or \\ud800 escapes)."""
    for i, ch in enumerate(text):
        if 0xD800 <= ord(ch) <= 0xDFFF:
            shown = f"byte 0x{ord(ch) - 0xDC00:02x}" if 0xDC80 <= ord(ch) <= 0xDCFF else f"U+{ord(ch):04X}"
            return f"not valid UTF-8 ({shown} at character {i})"
    return None


def _media_list(value: Any) -> list | None:
    if value is None:
        return None
    if isinstance(value, list):
        return value or None
    return [value]


def resolve_media(value: str, media_dir: str) -> str:
    """Where LLaMA-Factory looks for ``value``: ``media_dir/value`` if that file exists, else ``value``."""
    joined = os.path.join(media_dir, value)
    return joined if os.path.isfile(joined) else value


class RowChecker:
    """Checks rows of one dataset; :meth:`check` returns the problems of a row (empty: good)."""

    def __init__(self, spec: DatasetSpec, limits: MediaLimits, known: dict[tuple[str, str], str | None] | None = None):
        self.spec, self.limits = spec, limits
        self.known = known or {}  # (path, kind) -> problem, checked beforehand (:func:`check_many`)

    def _check_media(self, path: str, kind: str) -> str | None:
        key = (path, kind)
        return self.known[key] if key in self.known else check_media(path, kind, self.limits)

    def check(self, row: Any) -> list[tuple[str | None, str]]:
        """``[(file or None, reason), ...]`` for ``row``; the resolved media paths are in ``self.media``."""
        self.media: dict[str, list[str]] = {}
        if isinstance(row, _Unparsed):
            return [(None, row.reason)]
        if not isinstance(row, dict):
            return [(None, f"row is a {type(row).__name__}, not an object")]
        try:
            texts, prompts = self._texts(row)
        except _RowProblem as exc:
            return [(None, str(exc))]
        problems: list[tuple[str | None, str]] = []
        used: list[tuple[str, str]] = []  # (path, kind) of the row's good video and audio files
        for what, text in texts:
            bad = text_problem(text)
            if bad:
                problems.append((None, f"{what} is {bad}"))
        for key, placeholder, kind in (
            ("images", IMAGE_PLACEHOLDER, "image"),
            ("videos", VIDEO_PLACEHOLDER, "video"),
            ("audios", AUDIO_PLACEHOLDER, "audio"),
        ):
            column = self.spec.column(key)
            wanted = sum(text.count(placeholder) for text in prompts)
            if column is None:
                if wanted:
                    problems.append(
                        (None, f"{wanted} {placeholder} placeholder(s) but the dataset has no {key} column")
                    )
                continue
            if column not in row and wanted:
                problems.append(
                    (None, f"missing column {column!r} ({wanted} {placeholder} placeholder(s) in the prompt)")
                )
                continue
            items = _media_list(row.get(column))
            given = len(items or [])
            if given != wanted:
                problems.append((None, f"{wanted} {placeholder} placeholder(s) but {given} {key} given"))
                continue
            resolved = []
            for item in items or []:
                if not isinstance(item, str) or not item:
                    problems.append((None, f"{key} entries must be file paths, got {item!r}"))
                    continue
                path = resolve_media(item, self.spec.media_dir)
                resolved.append(os.path.abspath(path))
                if kind == "image":
                    if not os.path.isfile(path):
                        problems.append((path, "file not found"))
                    continue
                reason = self._check_media(path, kind)
                if reason:
                    problems.append((path, reason))
                else:
                    used.append((path, kind))
            self.media[column] = resolved
        too_long = None if problems else tokens_problem(used, self.limits)  # counted from readable files only
        if not problems and not too_long:
            placeholders = {"video": VIDEO_PLACEHOLDER, "audio": AUDIO_PLACEHOLDER}
            too_long = cutoff_problem(self.dialogue, used, placeholders, self.limits)
        if too_long:
            problems.append(too_long)
        return problems

    # -- text of a row, LLaMA-Factory's converters' way
    def _texts(self, row: dict) -> tuple[list[tuple[str, str]], list[str]]:
        if self.spec.formatting in ("sharegpt", "openai"):
            return self._chat_texts(row)
        return self._alpaca_texts(row)

    def _need(self, row: dict, key: str | None, what: str):
        if not key:
            raise _RowProblem(f"dataset_info.json names no {what} column")
        if key not in row or row[key] is None:
            raise _RowProblem(f"missing column {key!r} (row keys: {sorted(row)})")
        return row[key]

    def _chat_texts(self, row: dict):
        s = self.spec
        role_tag, content_tag = (
            s.tag("role_tag", "from" if s.formatting == "sharegpt" else "role"),
            s.tag("content_tag", "value" if s.formatting == "sharegpt" else "content"),
        )
        user, assistant = (
            s.tag("user_tag", "human" if s.formatting == "sharegpt" else "user"),
            s.tag("assistant_tag", "gpt" if s.formatting == "sharegpt" else "assistant"),
        )
        observation, function = s.tag("observation_tag", "observation"), s.tag("function_tag", "function_call")
        system_tag = s.tag("system_tag", "system")
        messages = self._need(row, s.column("messages", "conversations"), "messages")
        if not isinstance(messages, list) or not messages:
            raise _RowProblem(f"column {s.column('messages', 'conversations')!r} must be a non-empty list of messages")
        for k, m in enumerate(messages):
            if not isinstance(m, dict) or role_tag not in m or content_tag not in m:
                raise _RowProblem(f"message {k} needs {role_tag!r} and {content_tag!r}")
            if not isinstance(m[content_tag], str):
                raise _RowProblem(f"message {k}: {content_tag!r} must be text, got {type(m[content_tag]).__name__}")
        system = row.get(s.column("system")) if s.column("system") else None
        if system_tag and messages[0][role_tag] == system_tag:
            system = messages[0][content_tag]
            messages = messages[1:]
        accept = ((user, observation), (assistant, function))
        for k, m in enumerate(messages):
            if m[role_tag] not in accept[k % 2]:
                raise _RowProblem(
                    f"message roles out of order: turn {k} is {m[role_tag]!r}, expected "
                    f"{' or '.join(map(repr, accept[k % 2]))}"
                )
        texts = [(f"message {k} ({m[role_tag]})", m[content_tag]) for k, m in enumerate(messages)]
        prompts = [m[content_tag] for m in messages]
        roles = {user: "user", observation: "observation", assistant: "assistant", function: "function"}
        dialogue = tuple((roles[m[role_tag]], m[content_tag]) for m in messages)
        self.dialogue = Dialogue(system if isinstance(system, str) else None, dialogue)
        if s.ranking:
            if len(messages) % 2 == 0:
                raise _RowProblem(f"{len(messages)} messages; a preference row ends with the user's turn")
            for key in ("chosen", "rejected"):
                reply = self._need(row, s.column(key), key)
                if not isinstance(reply, dict) or not isinstance(reply.get(content_tag), str):
                    raise _RowProblem(f"column {s.column(key)!r} must be a message with text {content_tag!r}")
                if not reply[content_tag].strip():
                    raise _RowProblem(f"empty caption in {s.column(key)!r}")
                texts.append((key, reply[content_tag]))
            self.dialogue = replace(self.dialogue, replies=(texts[-2][1], texts[-1][1]))
        else:
            if len(messages) % 2 != 0:
                raise _RowProblem(f"{len(messages)} messages; a training row ends with the assistant's answer")
            for k, m in enumerate(messages):
                if k % 2 == 1 and not m[content_tag].strip():
                    raise _RowProblem(f"empty caption (assistant message {k})")
        return texts, prompts

    def _alpaca_texts(self, row: dict):
        s = self.spec
        prompt_key, query_key = s.column("prompt", "instruction"), s.column("query", "input")
        texts = [(prompt_key, self._need(row, prompt_key, "prompt"))]
        if query_key and row.get(query_key) is not None:
            texts.append((query_key, row[query_key]))
        keys = [s.column("chosen"), s.column("rejected")] if s.ranking else [s.column("response", "output")]
        replies = [(key, self._need(row, key, "response")) for key in keys]
        for what, text in texts + replies:
            if not isinstance(text, str):
                raise _RowProblem(f"column {what!r} must be text, got {type(text).__name__}")
        for what, text in replies:
            if not text.strip():
                raise _RowProblem(f"empty caption in {what!r}")
        # LLaMA-Factory's alpaca converter: the instruction and the input as one user message
        system = row.get(s.column("system")) if s.column("system") else None
        prompt = ("user", "\n".join(text for _, text in texts if text))
        if s.ranking:
            self.dialogue = Dialogue(system, (prompt,), (replies[0][1], replies[1][1]))
        else:
            self.dialogue = Dialogue(system, (prompt, ("assistant", replies[0][1])))
        return texts + replies, [t for _, t in texts + replies]


class _RowProblem(Exception):
    pass


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
    wanted = {item for _, rows in contents for _, row in rows for item in _media_items(spec, row)}
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


def _media_items(spec: DatasetSpec, row: Any) -> list[tuple[str, str]]:
    """(resolved path, kind) of the videos and audios a row names (for :func:`check_many`)."""
    if not isinstance(row, dict):
        return []
    items = []
    for key, kind in (("videos", "video"), ("audios", "audio")):
        column = spec.column(key)
        for item in (_media_list(row.get(column)) or []) if column else []:
            if isinstance(item, str) and item:
                items.append((resolve_media(item, spec.media_dir), kind))
    return items


def dataset_specs(names: list[str], dataset_dir: str, media_dir: str | None = None) -> list[DatasetSpec]:
    info = load_dataset_info(dataset_dir)
    specs = []
    for name in names:
        if name not in info:
            close = did_you_mean(name, info)
            raise DataError(f"dataset {name!r} is not in {Path(dataset_dir) / 'dataset_info.json'}{close}")
        specs.append(DatasetSpec(name, info[name], str(dataset_dir), str(media_dir or dataset_dir)))
    return specs


def split_names(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [str(v).strip() for v in value if str(v).strip()]
    return [v.strip() for v in str(value).split(",") if v.strip()]


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
