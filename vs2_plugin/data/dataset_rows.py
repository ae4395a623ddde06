"""Rows of a LLaMA-Factory dataset, read and checked the way LLaMA-Factory reads them.

``dataset_info.json`` entries (:class:`DatasetSpec`), the rows of a ``.json`` / ``.jsonl`` file
with their positions as an editor shows them (:func:`read_rows`), and what is wrong with one
row (:class:`RowChecker`): sharegpt / openai / alpaca columns and tags, roles in order, empty
captions, text that is not UTF-8, placeholders against the media given, each medium's cheap check
and the tokens it takes (:mod:`vs2_plugin.data.media_check`). The policies that use these checks,
and what a run writes about them, are in :mod:`vs2_plugin.data.validate`. Nothing here imports
LLaMA-Factory.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from vs2_plugin.data.cutoff import Dialogue
from vs2_plugin.data.media_check import MediaLimits, check_media, cutoff_problem, tokens_problem
from vs2_plugin.errors import DataError, did_you_mean

IMAGE_PLACEHOLDER = os.environ.get("IMAGE_PLACEHOLDER", "<image>")
VIDEO_PLACEHOLDER = os.environ.get("VIDEO_PLACEHOLDER", "<video>")
AUDIO_PLACEHOLDER = os.environ.get("AUDIO_PLACEHOLDER", "<audio>")


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
    for n, line in enumerate(text.split("\n"), 1):  # not splitlines: a caption may hold U+2028
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
    from vs2_plugin.files import first_surrogate

    if (i := first_surrogate(text)) is None:
        return None
    code = ord(text[i])
    shown = f"byte 0x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else f"U+{code:04X}"
    return f"not valid UTF-8 ({shown} at character {i})"


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
                folder = next((f for f in (os.path.join(self.spec.media_dir, item), path) if os.path.isdir(f)), None)
                if folder:  # LLaMA-Factory would look for the name elsewhere and not find it
                    problems.append((folder, "a folder, not a media file"))
                    continue
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


def media_items(spec: DatasetSpec, row: Any) -> list[tuple[str, str]]:
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
