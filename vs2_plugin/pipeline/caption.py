"""Library of ``vs2 caption``: caption a video list with a model (+ adapters) or a finished run, in
batches, appending one row per video and task. Inputs, outputs and resumption are described on
the command, :mod:`vs2_plugin.commands.caption`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vs2_plugin.errors import ConfigError, DataError
from vs2_plugin.pipeline import console
from vs2_plugin.pipeline.config import (
    DEFAULT_GLOBAL_PROMPT,
    DEFAULT_LOCAL_PROMPT,
    SamplingConfig,
)
from vs2_plugin.pipeline.records import JsonlLog, finished_model, write_jsonl_atomic

#: model loading defaults when neither a run's config nor --infer says otherwise: the audio
#: track is part of the input of this model, so it is never dropped by default
DEFAULT_INFER = {"template": "video_salmonn2", "use_audio_in_video": True}


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
    if not run_dir.is_dir():
        raise ConfigError(f"--run {run_dir}: not a directory")
    model, adapters = finished_model(run_dir)
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


def parse_overrides(items: list[str]) -> dict[str, Any]:
    import yaml

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--infer expects KEY=VALUE, got {item!r}")
        out[key.strip()] = yaml.safe_load(value) if value else ""
    return out


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


def read_jobs(path: Path, task: str, settings: Settings) -> tuple[list[Job], list[dict[str, Any]]]:
    """Caption jobs of the video list, and its bad rows (``{line, id, video, error}``)."""
    from vs2_plugin.files import read_jsonl

    if not path.is_file():
        raise DataError(f"--videos {path}: file not found")
    jobs, bad, seen = [], [], set()
    for n, row in enumerate(read_jsonl(path), 1):
        vid, video = str(row.get("id") or ""), row.get("video")
        try:
            if not vid or not video:
                raise DataError(f"needs 'id' and 'video' (row keys: {sorted(row)})")
            if vid in seen:
                raise DataError(f"duplicate id {vid!r}")
            seen.add(vid)
            file = Path(video) if Path(video).is_absolute() else path.parent / video
            if not file.is_file():
                raise DataError(f"video file not found: {file}")
            video = str(file.resolve())
            found = []
            if task in ("global", "both"):
                found.append(
                    Job(
                        f"{vid}/global",
                        vid,
                        video,
                        "global",
                        settings.global_prompt,
                        row.get("reference") or row.get("label"),
                        line=n,
                    )
                )
            if task in ("local", "both"):
                for k, iv in enumerate(row.get("local") or []):
                    try:
                        start, end = float(iv["start"]), float(iv["end"])
                    except (KeyError, TypeError, ValueError):
                        raise DataError(f"local[{k}] needs numeric 'start' and 'end'") from None
                    if not 0 <= start < end:
                        raise DataError(f"local[{k}] has start={start} end={end}")
                    found.append(
                        Job(
                            f"{vid}/local/{start:g}-{end:g}",
                            vid,
                            video,
                            "local",
                            settings.local_prompt.format(start=start, end=end),
                            iv.get("reference") or iv.get("label"),
                            start,
                            end,
                            n,
                        )
                    )
            jobs.extend(found)
        except DataError as exc:
            bad.append({"line": n, "id": vid or None, "video": video, "error": str(exc)})
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
) -> dict[str, Any]:
    """Caption every job of ``videos`` missing from ``out``; returns counts and the bad videos."""
    from tqdm import tqdm

    from vs2_plugin.pipeline.generation import CaptionGenerator, Decoding, PromptGroup

    if batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1; got {batch_size}")
    if temperature is not None and temperature <= 0:
        raise ConfigError(f"--temperature must be > 0 (or use --greedy); got {temperature}")
    jobs, bad = read_jobs(videos, task, settings)
    log = JsonlLog(out)
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
    bad_path = out.with_name(out.stem + ".bad_videos.jsonl")
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
