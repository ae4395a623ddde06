"""The predictions file of ``vs2 caption`` and the files beside it: what a file must hold to be
resumed, the record of the settings its captions were made with (a rerun with others is refused),
and the rows set aside when the video list no longer has their ids. The captioning itself is
:mod:`vs2_plugin.pipeline.caption`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vs2_plugin.errors import ConfigError, DataError
from vs2_plugin.gdpo.rounds import atomic_write_text
from vs2_plugin.pipeline import console
from vs2_plugin.pipeline.fingerprint import INPUTS_KEY, fingerprints
from vs2_plugin.pipeline.records import JsonlLog, write_jsonl_atomic

if TYPE_CHECKING:
    from vs2_plugin.pipeline.caption import Settings


#: the fields of every row :func:`output_row` writes; ``key`` comes first in each line
ROW_FIELDS = ("key", "id", "video", "task", "prompt", "predict")


def check_out_file(out: Path) -> None:
    """An existing ``out`` is a predictions file of this command: each complete line (blank ones
    aside) a row of :func:`output_row`. Only a torn last line, the start of a row that an interrupted
    write left without its newline, is allowed (a rerun drops it). Anything else is refused, so that
    resuming, ``--overwrite`` or a dropped torn tail never touches a file of other content."""
    if not out.is_file():
        return
    how = "it is left as it is: give --out a new file or a predictions file of vs2 caption"
    with open(out, "rb") as f:
        data = f.read()
    lines = data.split(b"\n")
    for n, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        torn = n == len(lines)  # no newline after it
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise DataError(f"--out {out}:{n}: not UTF-8 text, so not a predictions file; {how}") from None
        if torn:
            if not text.startswith('{"key": '):
                raise DataError(f"--out {out}:{n}: the last line is not a predictions row (nor part of one); {how}")
            continue
        try:
            row = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataError(f"--out {out}:{n}: not a JSON row ({exc.msg}), so not a predictions file; {how}") from None
        missing = [k for k in ROW_FIELDS if k not in row] if isinstance(row, dict) else list(ROW_FIELDS)
        if missing or not isinstance(row["key"], str):
            raise DataError(
                f"--out {out}:{n}: not a predictions row of vs2 caption (lacks {', '.join(missing) or 'a string key'}); {how}"
            )


def settings_path(out: Path) -> Path:
    """What determined the captions of ``out``: ``preds.settings.json`` beside ``preds.jsonl``."""
    return out.with_name(out.stem + ".settings.json")


def bad_videos_path(out: Path) -> Path:
    """The videos ``out`` has no caption of, and why: ``preds.bad_videos.jsonl`` beside ``preds.jsonl``."""
    return out.with_name(out.stem + ".bad_videos.jsonl")


def unlisted_path(out: Path) -> Path:
    """Rows of ``out`` whose id the video list no longer has: ``preds.unlisted.jsonl`` beside ``preds.jsonl``."""
    return out.with_name(out.stem + ".unlisted.jsonl")


def caption_settings(
    settings: Settings, task: str, temperature: float | None, top_p: float, seed: int
) -> dict[str, Any]:
    """Everything a caption depends on (not the batch size: batching leaves captions unchanged). The
    model and adapters are recorded by path, for people to read, and by contents under
    ``input_fingerprints`` (:func:`~vs2_plugin.pipeline.fingerprint.fingerprint`: a folder by its
    model files, a hub id by its name), which is what a rerun compares (:func:`_differences`)."""

    def where(path: str) -> str:
        return str(Path(path).resolve()) if Path(path).exists() else path

    record: dict[str, Any] = {
        "model": where(settings.model),
        "adapters": [where(a) for a in settings.adapters],
        "infer": settings.infer,
        "max_new_tokens": settings.max_new_tokens,
    }
    if task in ("global", "both"):
        record["global_prompt"] = settings.global_prompt
    if task in ("local", "both"):
        record["local_prompt"] = settings.local_prompt
    if temperature is None:
        record["decoding"] = "greedy"
    else:
        record["decoding"] = {"temperature": temperature, "top_p": top_p, "seed": seed}
    record[INPUTS_KEY] = fingerprints({"model": settings.model, "adapters": settings.adapters})
    return json.loads(json.dumps(record))  # as it reads back from the file


def _changed_contents(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """The model and adapters whose contents (``input_fingerprints``) differ between two records,
    each named by its path now (and then, when it moved)."""
    was, now = old[INPUTS_KEY], new[INPUTS_KEY]

    def changed(name: str, then: Any, path: Any) -> str:
        moved = f"{then} -> {path}" if then != path else str(path)
        return f"{name} ({moved}: other contents than those its captions were made with)"

    out = []
    if was.get("model") != now.get("model"):
        out.append(changed("model", old.get("model"), new.get("model")))
    then, paths = old.get("adapters") or [], new.get("adapters") or []
    contents = was.get("adapters") or [], now.get("adapters") or []
    if len(contents[0]) != len(contents[1]) or len(then) != len(paths):
        out.append(f"adapters ({_short(then)} -> {_short(paths)})")
    else:
        out += [changed(f"adapters[{k}]", then[k], paths[k]) for k, (a, b) in enumerate(zip(*contents)) if a != b]
    return out


def _differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """The settings of two records that differ, each with both values (prompts by name only). The
    model and adapters are compared by contents when both records have them; a record of an older
    vs2 has paths only, and those are compared as then: without fingerprints the path is all that
    says which model made the captions, and resuming whatever model is given would mix captions of
    two models silently. A rerun with the recorded paths adds the fingerprints, after which the
    folders may move."""
    by_contents = all(isinstance(r.get(INPUTS_KEY), dict) for r in (old, new))
    out = _changed_contents(old, new) if by_contents else []
    skipped = {INPUTS_KEY, "model", "adapters"} if by_contents else {INPUTS_KEY}
    for key in sorted((old.keys() | new.keys()) - skipped):
        a, b = old.get(key), new.get(key)
        if key == "infer" and isinstance(a, dict) and isinstance(b, dict):
            out += [
                f"infer.{k} ({_short(a.get(k))} -> {_short(b.get(k))})"
                for k in sorted(a.keys() | b.keys())
                if a.get(k) != b.get(k)
            ]
        elif key.endswith("_prompt"):
            if a is not None and b is not None and a != b:  # one missing: the task differs, which says it
                out.append(key)
        elif a != b:
            out.append(f"{key} ({_short(a)} -> {_short(b)})")
    return out


def _short(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k} {v}" for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(map(str, value)) or "none"
    return "unset" if value is None else str(value)


def start_or_resume(out: Path, record: dict[str, Any], overwrite: bool) -> None:
    """Begin ``out`` afresh (none yet, or ``overwrite``) with its settings record, or resume it when
    the record says its captions were made with these settings (the task may differ: its rows have
    other keys); refuse otherwise, naming each setting that differs and each input whose contents
    changed (:func:`_differences`). Rows without a record (an older vs2) are resumed, with a note."""
    sidecar = settings_path(out)
    if overwrite:
        for path in (out, sidecar, bad_videos_path(out), unlisted_path(out)):
            path.unlink(missing_ok=True)
    if JsonlLog(out).rows() and sidecar.is_file():
        how = f"choose a new --out or pass --overwrite to caption {out.name} afresh"
        try:
            old = json.loads(sidecar.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise DataError(f"{sidecar}: not valid JSON ({exc.msg}): {how}") from None
        changed = _differences(old, record) if isinstance(old, dict) else ["all"]
        if changed:
            raise ConfigError(f"--out {out} holds captions made with other settings: {'; '.join(changed)}: {how}")
        record = {**old, **record}  # a prompt of the other task stays recorded
    elif JsonlLog(out).rows():  # made by a vs2 that kept no record: these settings are assumed
        console.warn(f"{out} has no {sidecar.name}; resuming it with these settings, recorded from now on")
    atomic_write_text(sidecar, json.dumps(record, indent=2, ensure_ascii=False) + "\n")


def set_aside_unlisted(out: Path, rows: list[dict[str, Any]], listed: set[str], videos: Path) -> list[dict[str, Any]]:
    """The rows of the ids ``videos`` lists (``listed``); the others, which ``vs2 eval`` would judge
    with the list's videos, are added to :func:`unlisted_path` (a row of the same key there
    replaced), with one warning. That file is written before ``out`` is, so an interruption between
    the two leaves a row in both, never in neither."""
    unlisted = [r for r in rows if str(r.get("id")) not in listed]
    if not unlisted:
        return rows
    path = unlisted_path(out)
    earlier = JsonlLog(path).rows()
    write_jsonl_atomic(path, {r.get("key"): r for r in [*earlier, *unlisted]}.values())
    ids = {str(r.get("id")) for r in unlisted}
    console.warn(f"{out}: moved {len(unlisted)} row(s) of {len(ids)} id(s) that {videos} no longer lists to {path}")
    return [r for r in rows if str(r.get("id")) in listed]
