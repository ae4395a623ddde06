"""Library of ``vs2 caption``: caption a video list with a model (+ adapters) or a finished run, in
batches, appending one row per video and task. Inputs, outputs and resumption are described on
the command, :mod:`vs2_plugin.commands.caption`; the predictions file and the files beside it in
:mod:`vs2_plugin.pipeline.predictions`.

A rerun into the same ``--out preds.jsonl`` knows its inputs by their contents, not their paths
(:mod:`vs2_plugin.pipeline.fingerprint`), so that moving files resumes and replacing them does not:

- ``preds.settings.json`` (:func:`~vs2_plugin.pipeline.predictions.settings_path`) records the model and adapter paths, for people
  to read, and their fingerprints (``input_fingerprints``), which are what a rerun compares: a
  moved model folder resumes, a model retrained at the same path is refused, naming it.
- each row records its video's fingerprint (``video_fingerprint``); a kept row is of its video
  when the file the list names now has the same contents, wherever the data folder lies (the row
  then names the new path). A replaced file, or a list naming a file of other contents, is
  captioned again.
- ``preds.jsonl`` holds the rows of the ids the list has now: rows of ids it no longer has are
  moved to ``preds.unlisted.jsonl`` (:func:`~vs2_plugin.pipeline.predictions.unlisted_path`), with a warning, so that ``vs2 eval``
  judges only the list's videos and no caption is lost (``--overwrite`` deletes it with the rest).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vs2_plugin.errors import ConfigError, DataError, MediaError
from vs2_plugin.judge.types import event_list
from vs2_plugin.pipeline import console
from vs2_plugin.pipeline.config import (
    DEFAULT_GLOBAL_PROMPT,
    DEFAULT_LOCAL_PROMPT,
    SamplingConfig,
)
from vs2_plugin.pipeline.fingerprint import fingerprint
from vs2_plugin.pipeline.predictions import (
    bad_videos_path,
    caption_settings,
    check_out_file,
    set_aside_unlisted,
    start_or_resume,
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
    fingerprint: str = ""  #: of the video file's contents (:func:`video_fingerprint`)
    #: the list's atomic events for this caption, passed on to the predictions for ``vs2 eval``
    events: tuple[str, ...] = ()


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
    if all(problem for _, _, problem in out):  # not JSON lines at all (a JSON array, a CSV): said once, before loading
        raise DataError(f"--videos {path}: no line is a JSON object (line {out[0][0]}: {out[0][2]})")
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


def video_fingerprint(file: Path) -> str:
    """The contents of a video file (:func:`~vs2_plugin.pipeline.fingerprint.fingerprint`): kept rows
    are matched by it rather than by the path, which changes when the data folder moves."""
    try:
        return fingerprint(str(file))
    except OSError as exc:
        raise DataError(f"video file cannot be read: {file} ({exc.strerror})") from None


def _intervals(
    row: dict[str, Any], file: Path
) -> tuple[list[tuple[float, float, Any, tuple[str, ...]]], list[tuple[int | None, str]]]:
    """The usable ``local`` intervals (start, end, reference, events) of a row, and (index, problem) of the
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
        try:
            events = tuple(event_list(iv.get("events"), f"local[{k}]"))
        except DataError as exc:
            problems.append((k, str(exc)))
            continue
        good.append((start, end, iv.get("reference") or iv.get("label"), events))
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
            contents = video_fingerprint(file)
            intervals, problems = _intervals(row, file) if task in ("local", "both") else ([], [])
            if task in ("global", "both"):
                label = row.get("reference") or row.get("label")
                prompt, events = settings.global_prompt, tuple(event_list(row.get("events"), "events"))
                jobs.append(Job(f"{vid}/global", vid, video, "global", prompt, label, None, None, n, contents, events))
            for start, end, label, events in intervals:
                prompt = settings.local_prompt.format(start=start, end=end)
                key = f"{vid}/local/{start:g}-{end:g}"
                jobs.append(Job(key, vid, video, "local", prompt, label, start, end, n, contents, events))
            for k, problem in problems:
                bad.append({"line": n, "id": vid, "video": video, "local": k, "error": problem})
        except DataError as exc:
            bad.append({"line": n, "id": vid or None, "video": video, "error": str(exc)})
        except MediaError as exc:
            bad.append({"line": n, "id": vid, "video": video, "error": exc.problem})
    if task == "local" and not jobs and not bad:
        raise DataError(f"--task local: no video of {path} has 'local' intervals ({{start, end}})")
    return jobs, bad


def listed_row(job: Job) -> dict[str, Any]:
    """The fields of ``job``'s predictions row that the video list and settings give, i.e. all but
    the caption (``predict``, ``finish_reason``), as they read back from the file: what a kept row
    is compared with on a rerun (:func:`stale_rows`)."""
    row = {
        "key": job.key,
        "id": job.id,
        "video": job.video,
        "video_fingerprint": job.fingerprint,
        "task": job.task,
        "prompt": "<video>" + job.prompt,
    }
    if job.label:
        row["label"] = job.label
    if job.events:
        row["events"] = list(job.events)
    if job.task == "local":
        row.update(start=job.start, end=job.end)
    return json.loads(json.dumps(row))


def output_row(job: Job, caption) -> dict[str, Any]:
    return {**listed_row(job), "predict": caption.text, "finish_reason": caption.finish_reason}


def made_for(row: dict[str, Any], listed: dict[str, Any]) -> bool:
    """Whether a kept row was made for what ``listed`` (:func:`listed_row`) gives now. Its video is
    the same by contents, not by path: a moved data folder keeps its rows, a replaced file does
    not. A row of an older vs2 has no ``video_fingerprint``; its path is compared instead, as then.
    The events are not compared: a caption does not depend on them (a kept row takes the list's)."""
    ignored = ("predict", "finish_reason", "events", "video" if "video_fingerprint" in row else "video_fingerprint")
    return {k: v for k, v in row.items() if k not in ignored} == {k: v for k, v in listed.items() if k not in ignored}


def stale_rows(rows: list[dict[str, Any]], jobs: list[Job]) -> dict[str, Job]:
    """The jobs whose kept row (same key) was made for another video, label or prompt than the list
    now gives (:func:`made_for`; its row is replaced), by key."""
    by_key = {j.key: j for j in jobs}
    return {
        job.key: job
        for row in rows
        if (job := by_key.get(row.get("key"))) is not None and not made_for(row, listed_row(job))
    }


def current_rows(rows: list[dict[str, Any]], jobs: list[Job], stale: dict[str, Job]) -> list[dict[str, Any]]:
    """The kept rows that are not ``stale``, each row of a job with the job's video path,
    fingerprint and events (the data folder moved; a row of an older vs2 gets its fingerprint; the
    list's events changed)."""
    by_key = {j.key: j for j in jobs}
    out = []
    for row in rows:
        if row.get("key") in stale:
            continue
        job = by_key.get(row.get("key"))
        out.append(row if job is None else {**{k: v for k, v in row.items() if k != "events"}, **listed_row(job)})
    return out


def listed_ids(path: Path) -> set[str]:
    """The ids the video list names, those of bad rows and of videos without a job of this task
    included: their rows are kept (a bad video is retried, another task's rows stay)."""
    ids = {row.get("id") for _, row, problem in video_rows(path) if not problem}
    return {str(i) for i in ids if i not in (None, "") and not isinstance(i, bool)}


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
    from vs2_plugin.integrations.llamafactory import model_template_problem

    if problem := model_template_problem(settings.model, settings.infer.get("template"), "--infer: "):
        raise ConfigError(problem)
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
    ``out`` resumes only when its settings record (:func:`~vs2_plugin.pipeline.predictions.settings_path`) matches these settings (``overwrite``:
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
    resumed = set_aside_unlisted(out, kept, listed_ids(videos), videos)
    stale = stale_rows(resumed, jobs)
    if stale:  # the list changed since: its rows are made again, for what it gives now
        ids = sorted({j.id for j in stale.values()})
        console.warn(
            f"{out}: recaptioning {len(stale)} row(s) whose video, label or prompt differ from {videos} now"
            f" (id {', '.join(map(repr, ids[:10]))}{' ...' if len(ids) > 10 else ''})"
        )
    resumed = current_rows(resumed, jobs, stale)
    if resumed != kept:
        write_jsonl_atomic(out, resumed)
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
