"""Library of ``vs2 caption``: caption a video list with a model (+ adapters) or a finished run, in
batches, appending one row per video and task. Inputs, outputs and resumption are described on
the command, :mod:`vs2_plugin.commands.caption`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vs2_plugin.errors import ConfigError, DataError, MediaError
from vs2_plugin.gdpo.rounds import atomic_write_text
from vs2_plugin.pipeline import console
from vs2_plugin.pipeline.config import (
    DEFAULT_GLOBAL_PROMPT,
    DEFAULT_LOCAL_PROMPT,
    SamplingConfig,
)
from vs2_plugin.pipeline.records import JsonlLog, finished_model, write_jsonl_atomic
from vs2_plugin.pipeline.videos import interval_past_end, media_duration, repeated_interval

#: model loading defaults when neither a run's config nor --infer says otherwise: the audio
#: track is part of the input of this model, so it is never dropped by default
DEFAULT_INFER = {"use_audio_in_video": True}


@dataclass
class Settings:
    model: str
    adapters: list[str]
    infer: dict[str, Any]
    global_prompt: str = DEFAULT_GLOBAL_PROMPT
    local_prompt: str = DEFAULT_LOCAL_PROMPT
    max_new_tokens: int = SamplingConfig.max_new_tokens


def run_settings(run_dir: Path) -> Settings:
    """Model, adapters and sampling settings of a finished mrDPO run or rebirth output folder."""
    model, adapters = finished_model(run_dir, "--run {}")
    settings = Settings(model, adapters, dict(DEFAULT_INFER))
    config = run_dir / "config.json"  # the mrDPO driver's resolved config: same prompts and media settings
    if config.is_file():
        cfg = json.loads(config.read_text(encoding="utf-8"))
        settings.infer.update(cfg.get("infer") or {})
        sampling = cfg.get("sampling") or {}
        settings.global_prompt = sampling.get("global_prompt", settings.global_prompt)
        settings.local_prompt = sampling.get("local_prompt", settings.local_prompt)
        settings.max_new_tokens = int(sampling.get("max_new_tokens", settings.max_new_tokens))
    return settings


#: loading arguments vs2 caption sets itself, and the flag that sets each
OWN_ARGUMENTS = {
    "model_name_or_path": "--model or --run",
    "adapter_name_or_path": "--adapters or --run",
    "max_new_tokens": "--max-new-tokens",
    "infer_backend": "nothing (captioning runs on the huggingface backend)",
}


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``--infer KEY=VALUE`` items as a dict, each checked before the model is loaded: a LLaMA-Factory
    loading argument (:func:`~vs2_plugin.pipeline.config.check_arguments`), not one set by a flag of
    its own, a value of its type as YAML reads it (``1.0``, ``30``, ``true``)."""
    from vs2_plugin.pipeline.config import check_arguments, yaml_value

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--infer expects KEY=VALUE, got {item!r}")
        if key in OWN_ARGUMENTS:
            raise ConfigError(f"--infer {key}: set by {OWN_ARGUMENTS[key]}, not --infer")
        out[key] = yaml_value(value) if value else ""
    return check_arguments("infer", out, where="--infer")


@dataclass
class Job:
    key: str
    id: str
    video: str
    task: str
    prompt: str
    label: str | None = None
    start: float | None = None
    end: float | None = None
    line: int = 0  #: of the video list


def check_video_list(path: Path) -> None:
    if not path.exists():
        raise DataError(f"--videos {path}: file not found")
    if path.is_dir():
        raise DataError(f"--videos {path}: a directory, not a JSONL file")


def video_rows(path: Path) -> list[tuple[int, Any, str | None]]:
    """(line number, parsed value, problem) of each non-blank line of the video list: a line that is
    not a JSON object is a bad row of its own, not the end of the run."""
    from vs2_plugin.files import jsonl_lines

    check_video_list(path)
    try:
        out = jsonl_lines(path)
    except DataError as exc:
        raise DataError(f"--videos {exc}") from None
    if not out:
        raise DataError(f"--videos {path}: no rows")
    return out


def _video_file(row: dict[str, Any], base: Path) -> Path:
    video = row.get("video")
    if not isinstance(video, str):
        raise DataError(f"'video' must be a path (a string), got {video!r}")
    file = Path(video) if Path(video).is_absolute() else base / video
    if file.is_dir():
        raise DataError(f"video path is a directory, not a file: {file}")
    if not file.is_file():
        raise DataError(f"video file not found: {file}")
    return file.resolve()


def _intervals(row: dict[str, Any], file: Path) -> tuple[list[tuple[float, float, Any]], list[tuple[int | None, str]]]:
    """The usable ``local`` intervals (start, end, reference) of a row, and (index, problem) of the
    others: a bad interval is listed alone, the video's other captions are still made. MediaError
    when the file's duration cannot be read."""
    local = row.get("local") or []
    if not isinstance(local, list):
        return [], [(None, f"'local' must be a list of {{start, end}} intervals, got {local!r}")]
    duration = None
    good, problems, spans = [], [], {}
    for k, iv in enumerate(local):
        try:
            start, end = float(iv["start"]), float(iv["end"])
        except (KeyError, TypeError, ValueError):
            problems.append((k, f"local[{k}] needs numeric 'start' and 'end'"))
            continue
        if not 0 <= start < end:
            problems.append((k, f"local[{k}] has start={start:g} end={end:g} (needs 0 <= start < end)"))
            continue
        repeat = repeated_interval(k, start, end, spans)
        if repeat:
            problems.append((k, repeat))
            continue
        if duration is None:
            duration = media_duration(file)  # an unreadable file makes the whole row bad
        past = interval_past_end(k, start, end, duration)
        if past:
            problems.append((k, past))
            continue
        good.append((start, end, iv.get("reference") or iv.get("label")))
    return good, problems


def read_jobs(path: Path, task: str, settings: Settings) -> tuple[list[Job], list[dict[str, Any]]]:
    """Caption jobs of the video list, and its bad rows (``{line, id, video, error}``, ``local``: the
    interval's index when only that interval is bad)."""
    jobs, bad, seen = [], [], set()
    for n, row, problem in video_rows(path):
        if problem:
            bad.append({"line": n, "id": None, "video": None, "error": problem})
            continue
        raw_id, video = row.get("id"), row.get("video")
        vid = "" if raw_id is None or isinstance(raw_id, bool) else str(raw_id)
        try:
            if not vid or not video:
                raise DataError(f"needs 'id' and 'video' (row keys: {sorted(row)})")
            if not isinstance(raw_id, (str, int)):
                raise DataError(f"'id' must be a string or a number, got {raw_id!r}")
            if vid in seen:
                raise DataError(f"duplicate id {vid!r}")
            seen.add(vid)
            file = _video_file(row, path.parent)
            video = str(file)
            intervals, problems = _intervals(row, file) if task in ("local", "both") else ([], [])
            if task in ("global", "both"):
                label = row.get("reference") or row.get("label")
                jobs.append(Job(f"{vid}/global", vid, video, "global", settings.global_prompt, label, line=n))
            for start, end, label in intervals:
                prompt = settings.local_prompt.format(start=start, end=end)
                jobs.append(Job(f"{vid}/local/{start:g}-{end:g}", vid, video, "local", prompt, label, start, end, n))
            for k, problem in problems:
                bad.append({"line": n, "id": vid, "video": video, "local": k, "error": problem})
        except DataError as exc:
            bad.append({"line": n, "id": vid or None, "video": video, "error": str(exc)})
        except MediaError as exc:
            bad.append({"line": n, "id": vid, "video": video, "error": exc.problem})
    if task == "local" and not jobs and not bad:
        raise DataError(f"--task local: no video of {path} has 'local' intervals ({{start, end}})")
    return jobs, bad


def output_row(job: Job, caption) -> dict[str, Any]:
    row = {
        "key": job.key,
        "id": job.id,
        "video": job.video,
        "task": job.task,
        "prompt": "<video>" + job.prompt,
        "predict": caption.text,
    }
    if job.label:
        row["label"] = job.label
    if job.task == "local":
        row.update(start=job.start, end=job.end)
    row["finish_reason"] = caption.finish_reason
    return row


def _listed_fields(row: dict[str, Any]) -> dict[str, Any]:
    """What of a predictions row comes from the video list and settings, not from the model."""
    return {k: v for k, v in row.items() if k not in ("predict", "finish_reason")}


def stale_rows(rows: list[dict[str, Any]], jobs: list[Job]) -> dict[str, Job]:
    """The jobs whose kept row (same key) was made for another video, label or prompt than the list
    now gives (its row is replaced), by key."""
    from types import SimpleNamespace

    by_key = {j.key: j for j in jobs}
    stale = {}
    for row in rows:
        job = by_key.get(row.get("key"))
        if job is None:
            continue
        want = json.loads(json.dumps(_listed_fields(output_row(job, SimpleNamespace(text="", finish_reason=None)))))
        if _listed_fields(row) != want:
            stale[job.key] = job
    return stale


def command_settings(
    model: str | None, adapters: list[str], run: str | None, max_new_tokens: int | None, infer: list[str]
) -> Settings:
    """The settings ``vs2 caption``'s flags name (``--run`` or ``--model``/``--adapters``,
    ``--max-new-tokens``, ``--infer``), checked before anything loads."""
    if run:
        if adapters:
            raise ConfigError("--adapters goes with --model; a --run brings its own adapters")
        settings = run_settings(Path(run).resolve())
    else:
        settings = Settings(str(model), list(adapters), dict(DEFAULT_INFER))
    if max_new_tokens is not None:
        if max_new_tokens < 1:
            raise ConfigError(f"--max-new-tokens must be >= 1; got {max_new_tokens}")
        settings.max_new_tokens = max_new_tokens
    check_model(settings, Path(run) if run else None)
    settings.infer.update(parse_overrides(infer))
    return settings


def bad_row_text(bad: dict[str, Any]) -> str:
    """One bad row of ``read_jobs`` as a line: where it is (line, id, video) and what is wrong."""
    where = [f"line {bad['line']}"] if bad.get("line") else []
    where += [f"id {bad['id']!r}"] if bad.get("id") else []
    where += [str(bad["video"])] if bad.get("video") else []
    what = "bad interval" if "local" in bad else "bad video"
    return f"{what} ({', '.join(where)}): {bad['error']}"


def check_model(settings: Settings, run: Path | None = None) -> None:
    """The model and adapter folders exist before anything is loaded; errors name the flag, or the
    ``--run`` folder that named them."""
    from vs2_plugin.pipeline.generation import check_model_files

    of = f" (named by --run {run})" if run else ""
    check_model_files(
        settings.model,
        settings.adapters,
        model_name=f"model {{}}{of}" if run else "--model {}",
        adapter_name=f"adapter {{}}{of}" if run else "--adapters {}",
    )


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


def check_options(out: Path, batch_size: int, temperature: float | None, top_p: float) -> None:
    """The options of :func:`caption_videos` that need no model nor video list (an existing ``out``
    must be a predictions file: :func:`check_out_file`)."""
    if out.is_dir():
        raise ConfigError(f"--out {out}: a directory; give the predictions file, e.g. {out / 'predictions.jsonl'}")
    check_out_file(out)
    if batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1; got {batch_size}")
    if temperature is not None and not temperature > 0:
        raise ConfigError(f"--temperature must be > 0 (or use --greedy); got {temperature}")
    if not 0 < top_p <= 1:
        raise ConfigError(f"--top-p must be in (0, 1]; got {top_p}")


def settings_path(out: Path) -> Path:
    """What determined the captions of ``out``: ``preds.settings.json`` beside ``preds.jsonl``."""
    return out.with_name(out.stem + ".settings.json")


def bad_videos_path(out: Path) -> Path:
    """The videos ``out`` has no caption of, and why: ``preds.bad_videos.jsonl`` beside ``preds.jsonl``."""
    return out.with_name(out.stem + ".bad_videos.jsonl")


def caption_settings(
    settings: Settings, task: str, temperature: float | None, top_p: float, seed: int
) -> dict[str, Any]:
    """Everything a caption depends on (not the batch size: batching leaves captions unchanged)."""

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
    return json.loads(json.dumps(record))  # as it reads back from the file


def _differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """The settings of two records that differ, each with both values (prompts by name only)."""
    out = []
    for key in sorted(old.keys() | new.keys()):
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
    return "unset" if value is None else str(value)


def start_or_resume(out: Path, record: dict[str, Any], overwrite: bool) -> None:
    """Begin ``out`` afresh (none yet, or ``overwrite``) with its settings record, or resume it when
    the record says its captions were made with these settings (the task may differ: its rows have
    other keys); refuse otherwise. Rows without a record (an older vs2) are resumed, with a note."""
    sidecar = settings_path(out)
    bad_path = bad_videos_path(out)
    if overwrite:
        for path in (out, sidecar, bad_path):
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


def caption_videos(
    settings: Settings,
    videos: Path,
    out: Path,
    *,
    task: str = "global",
    batch_size: int = 4,
    temperature: float | None = None,
    top_p: float = 0.9,
    seed: int = 42,
    progress: bool = True,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Caption every job of ``videos`` missing from ``out``; returns counts and the bad videos.
    ``out`` resumes only when its settings record (:func:`settings_path`) matches these settings (``overwrite``:
    start afresh)."""
    from tqdm import tqdm

    from vs2_plugin.pipeline.generation import CaptionGenerator, Decoding, PromptGroup

    out, videos = Path(out), Path(videos)
    check_options(out, batch_size, temperature, top_p)
    if out.resolve() == videos.resolve():
        raise ConfigError(f"--out {out} is the video list itself; write the predictions to another file")
    check_model(settings)
    jobs, bad = read_jobs(videos, task, settings)
    start_or_resume(out, caption_settings(settings, task, temperature, top_p, seed), overwrite)
    log = JsonlLog(out)
    kept = log.rows()
    stale = stale_rows(kept, jobs)
    if stale:  # the list changed since: its rows are made again, for what it gives now
        ids = sorted({j.id for j in stale.values()})
        console.warn(
            f"{out}: recaptioning {len(stale)} row(s) whose video, label or prompt differ from {videos} now"
            f" (id {', '.join(map(repr, ids[:10]))}{' ...' if len(ids) > 10 else ''})"
        )
        write_jsonl_atomic(out, [r for r in kept if r.get("key") not in stale])
    done = log.by_key()
    todo = [j for j in jobs if j.key not in done]
    if todo:
        by_key = {j.key: j for j in todo}
        generator = CaptionGenerator(settings.model, settings.adapters, settings.infer, settings.max_new_tokens)
        decoding = Decoding(greedy=temperature is None, temperature=temperature or 1.0, top_p=top_p, seed=seed)
        bar = tqdm(total=len(todo), desc=f"captioning {out.name}", unit="caption", disable=not progress)
        failed: dict[str, dict[str, Any]] = {}

        def write(captions) -> None:
            for c in captions:
                job = by_key[c.key]
                if c.error is not None:
                    failed.setdefault(job.id, {"line": job.line, "id": job.id, "video": job.video, "error": c.error})
                else:
                    log.append(output_row(job, c))
            bar.update(len(captions))

        groups = [PromptGroup(j.video, j.prompt, [j.key]) for j in todo]
        with console.step(f"caption {out.name}", console.JsonlProgress([out], [j.key for j in todo]), unit="caption"):
            generator.generate(groups, decoding, batch_size=batch_size, on_batch=write)
        bar.close()
        bad.extend(failed.values())
    bad_path = bad_videos_path(out)
    if bad:
        write_jsonl_atomic(bad_path, bad)
    elif bad_path.is_file():
        bad_path.unlink()  # every video of this list is captioned now
    rows = log.by_key()
    return {
        "rows": sum(1 for j in jobs if j.key in rows),
        "new": len(todo) - sum(1 for j in todo if j.key not in rows),
        "bad_videos": bad,
        "bad_videos_file": str(bad_path) if bad else None,
        "out": str(out),
    }
