"""Sample captions from the current model (paper sec. 3.3: distinct captions per video).

Three ways, one output format (a :class:`~vs2_plugin.pipeline.records.JsonlLog` keyed by task):

* ``local``, one process: batched generation (:mod:`vs2_plugin.pipeline.generation`) with the
  base model and the adapters so far, loaded as LLaMA-Factory's chat engine loads them:
  ``batch_size`` prompts per ``generate`` call, the ``samples_per_video`` captions of a prompt
  continuing from one shared prefill, each video file decoded once per batch.
* ``local``, ``workers: N``: N processes sample disjoint shards (on a GPU machine, one GPU
  each via ``CUDA_VISIBLE_DEVICES``), then the shards are merged in task order.
* ``openai``: an OpenAI-compatible server that serves the current model (e.g.
  ``llamafactory-cli api`` on each node); requests run concurrently. Before each step the
  ``vs2_reload_sampling_server`` hook is asked to make it serve that step's adapters; the
  mrDPO driver refuses this backend when no plugin implements the hook
  (:func:`require_reload_hook`), since round t+1 must not sample round t's model.

Every finished caption is appended and fsynced as soon as its batch ends, so an interrupted
run resumes with the missing tasks. Each caption is sampled with its own generator, seeded
from the run seed and the task key, so it does not depend on the batch it shares, and a
resumed run produces what an uninterrupted one would.

A video the model's reader cannot decode (``MediaError``) is logged as a row with
``caption: null`` and ``error`` instead of ending the run; the driver leaves such videos out
(see :func:`vs2_plugin.pipeline.screen.drop_failed`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vs2_plugin.errors import Vs2Error
from vs2_plugin.pipeline import console
from vs2_plugin.pipeline.config import SamplingConfig
from vs2_plugin.pipeline.records import JsonlLog, write_jsonl_atomic
from vs2_plugin.pipeline.videos import VideoEntry

if TYPE_CHECKING:
    from vs2_plugin.pipeline.generation import PromptGroup


@dataclass
class SampleTask:
    key: str
    video_id: str
    task: str  #: "global" or "local"
    prompt: str
    video: str
    sample_index: int
    start: float | None = None
    end: float | None = None
    greedy: bool = False


def build_tasks(
    videos: list[VideoEntry],
    cfg: SamplingConfig,
    round_index: int,
    *,
    samples: int | None = None,
    greedy: bool = False,
    tag: str = "train",
    all_intervals: bool = False,
) -> list[SampleTask]:
    """``samples`` captions per video for the global prompt, and for its local intervals.

    Training (the default) takes one local interval per video, rotating with the round so
    that every interval is used over the rounds. ``all_intervals`` (held-out evaluation,
    rebirth labelling) takes every interval: a held-out table that read only each clip's first
    interval would judge half the local events of two-interval clips, always the same half.
    """
    n = samples or cfg.samples_per_video
    tasks = []
    for v in videos:
        for i in range(n):
            tasks.append(
                SampleTask(f"{tag}/{v.id}/global/{i}", v.id, "global", cfg.global_prompt, v.video, i, greedy=greedy)
            )
        if not (cfg.local and v.local):
            continue
        if all_intervals:
            intervals = [(iv, f"{tag}/{v.id}/local/{iv.start:g}-{iv.end:g}") for iv in v.local]
        else:
            intervals = [(v.local[(round_index - 1) % len(v.local)], f"{tag}/{v.id}/local")]
        for iv, key in intervals:
            prompt = cfg.local_prompt.format(start=iv.start, end=iv.end)
            for i in range(n):
                tasks.append(SampleTask(f"{key}/{i}", v.id, "local", prompt, v.video, i, iv.start, iv.end, greedy))
    return tasks


def task_seed(seed: int, key: str) -> int:
    from vs2_plugin.pipeline.generation import seed_for

    return seed_for(seed, key)


def prompt_groups(tasks: list[SampleTask]) -> list[tuple[bool, PromptGroup]]:
    """Sampled tasks with the same video, prompt and decoding as one group (one prefill, n
    captions), in the order of their first task. A greedy task is a group of its own: greedy
    decoding gives one caption per prompt, and one video may be listed under two ids."""
    from vs2_plugin.pipeline.generation import PromptGroup

    groups: dict[tuple, PromptGroup] = {}
    for t in tasks:
        key = (t.video, t.prompt, t.greedy) + ((t.key,) if t.greedy else ())
        groups.setdefault(key, PromptGroup(t.video, t.prompt)).keys.append(t.key)
    return [(key[2], g) for key, g in groups.items()]


def sample_in_process(
    tasks: list[SampleTask],
    out_path: Path,
    *,
    model: str,
    adapters: list[str],
    infer: dict[str, Any],
    cfg: SamplingConfig,
    seed: int,
    progress: bool = True,
) -> None:
    """Batched generation (:mod:`vs2_plugin.pipeline.generation`): ``cfg.batch_size`` prompts per
    batch, the samples of one prompt from one prompt row; each caption appended as its batch ends."""
    from tqdm import tqdm

    from vs2_plugin.pipeline.generation import CaptionGenerator, Decoding

    log = JsonlLog(out_path)
    done = {k: r for k, r in log.by_key().items() if not r.get("error")}  # a rerun retries unreadable videos
    todo = [t for t in tasks if t.key not in done]
    if not todo:
        return
    by_key = {t.key: t for t in todo}
    generator = CaptionGenerator(model, adapters, infer, cfg.max_new_tokens)
    bar = tqdm(total=len(todo), desc=f"sampling {out_path.name}", disable=not progress, unit="caption")

    def write(captions) -> None:
        for c in captions:
            row = {**asdict(by_key[c.key]), "caption": c.text, "finish_reason": c.finish_reason, "time": time.time()}
            if c.error is not None:  # one unreadable video must not end a multi-hour run: record it
                row["error"] = c.error
            log.append(row)
        bar.update(len(captions))

    groups = prompt_groups(todo)
    for greedy in (True, False):
        chosen = [g for is_greedy, g in groups if is_greedy == greedy]
        if chosen:
            decoding = Decoding(greedy=greedy, temperature=cfg.temperature, top_p=cfg.top_p, seed=seed)
            generator.generate(chosen, decoding, batch_size=cfg.batch_size, on_batch=write)
    bar.close()


def sample_parallel(
    tasks: list[SampleTask],
    out_path: Path,
    *,
    model: str,
    adapters: list[str],
    infer: dict[str, Any],
    cfg: SamplingConfig,
    seed: int,
    progress: bool = True,
) -> None:
    """Shard ``tasks`` over ``cfg.workers`` processes, then merge their logs into ``out_path``."""
    done = JsonlLog(out_path).by_key()
    todo = [t for t in tasks if t.key not in done]
    if todo:
        spec = out_path.with_suffix(".spec.json")
        spec.write_text(
            json.dumps(
                {
                    "tasks": [asdict(t) for t in todo],
                    "model": model,
                    "adapters": adapters,
                    "infer": infer,
                    "cfg": asdict(cfg),
                    "seed": seed,
                    "progress": progress,
                }
            )
        )
        gpus = _cuda_count()
        procs = []
        for shard in range(cfg.workers):
            env = dict(os.environ)
            if gpus:
                env["CUDA_VISIBLE_DEVICES"] = str(shard % gpus)
            cmd = [sys.executable, "-m", "vs2_plugin.pipeline.sampling", str(spec), str(shard), str(cfg.workers)]
            procs.append(subprocess.Popen(cmd, env=env))
        codes = [p.wait() for p in procs]
        if any(codes):
            raise Vs2Error(
                f"sampling workers failed with exit codes {codes}; rerun to resume (finished captions are kept)"
            )
    merged = JsonlLog(out_path).by_key()
    for shard in range(cfg.workers):
        merged.update(JsonlLog(_shard_path(out_path, shard)).by_key())
    write_jsonl_atomic(out_path, [merged[t.key] for t in tasks if t.key in merged])


def fold_shards(out_path: Path) -> None:
    """Fold the captions an interrupted sharded run left in its shard logs into ``out_path``, then
    remove those logs: a rerun may use fewer workers (``workers`` may change on resume), whose
    shards would neither read nor merge the others'. Idempotent: a crash before the removal folds
    them again."""
    shards = sorted(out_path.parent.glob(f"{out_path.stem}.shard*.jsonl"))
    if not shards:
        return
    merged = JsonlLog(out_path).by_key()
    for shard in shards:
        merged.update(JsonlLog(shard).by_key())
    write_jsonl_atomic(out_path, list(merged.values()))
    for shard in shards:
        shard.unlink()


def _shard_path(out_path: Path, shard: int) -> Path:
    return out_path.with_name(f"{out_path.stem}.shard{shard}.jsonl")


def _cuda_count() -> int:
    try:
        import torch

        return torch.cuda.device_count()
    except (ImportError, RuntimeError):  # no torch or a broken CUDA setup: sample on the CPU
        return 0


def has_reload_hook(pm=None) -> bool:
    """Whether a plugin implements ``vs2_reload_sampling_server``."""
    from vs2_plugin.plugins import get_plugin_manager

    return bool((pm or get_plugin_manager()).hook.vs2_reload_sampling_server.get_hookimpls())


def require_reload_hook(cfg: SamplingConfig, pm=None) -> None:
    """The ``openai`` backend in a multi-round run needs a way to reload the server each round."""
    if cfg.backend == "openai" and not has_reload_hook(pm):
        raise Vs2Error(
            "sampling.backend: openai samples every round and evaluation from the server at "
            f"{cfg.base_url}, but the model changes after each round and no plugin implements the "
            "vs2_reload_sampling_server hook that makes the server serve the new adapters (see "
            "vs2_plugin/hookspecs.py); implement it, or use sampling.backend: local"
        )


def serving_url(cfg: SamplingConfig, model: str, adapters: list[str], pm=None) -> str:
    """The URL of a server serving ``model`` + ``adapters``: the hook's answer, else ``cfg.base_url``."""
    from vs2_plugin.plugins import call_hook

    answer = call_hook("vs2_reload_sampling_server", pm, base_url=cfg.base_url, model=model, adapters=list(adapters))
    return str(answer) if answer else str(cfg.base_url)


def sample_openai(
    tasks: list[SampleTask],
    out_path: Path,
    *,
    cfg: SamplingConfig,
    seed: int,
    progress: bool = True,
    base_url: str | None = None,
) -> None:
    """Sample through an OpenAI-compatible server (video passed as a server-side path)."""
    from concurrent.futures import ThreadPoolExecutor

    from openai import OpenAI
    from tqdm import tqdm

    log = JsonlLog(out_path)
    done = log.by_key()
    todo = [t for t in tasks if t.key not in done]
    if not todo:
        return
    # a local ``llamafactory-cli api`` needs no key (unless started with API_KEY): do not demand one
    client = OpenAI(
        base_url=base_url or cfg.base_url,
        api_key=os.environ.get("OPENAI_API_KEY") or "EMPTY",
        timeout=cfg.timeout_s,
        max_retries=5,
    )

    def one(task: SampleTask) -> None:
        content = [{"type": "video_url", "video_url": {"url": task.video}}, {"type": "text", "text": task.prompt}]
        extra = {"temperature": 0.0} if task.greedy else {"temperature": cfg.temperature, "top_p": cfg.top_p}
        reply = client.chat.completions.create(
            model=cfg.model or "default",
            messages=[{"role": "user", "content": content}],
            max_tokens=cfg.max_new_tokens,
            seed=task_seed(seed, task.key),
            **extra,
        )
        choice = reply.choices[0]
        log.append(
            {
                **asdict(task),
                "caption": choice.message.content or "",
                "finish_reason": choice.finish_reason,
                "time": time.time(),
            }
        )

    with ThreadPoolExecutor(max_workers=cfg.concurrency) as pool:
        list(tqdm(pool.map(one, todo), total=len(todo), desc=f"sampling {out_path.name}", disable=not progress))


def sample(
    tasks: list[SampleTask],
    out_path: Path,
    *,
    model: str,
    adapters: list[str],
    infer: dict[str, Any],
    cfg: SamplingConfig,
    seed: int,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Sample every task (skipping those already in ``out_path``); returns rows in task order."""
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fold_shards(out_path)
    watched = console.JsonlProgress(
        [out_path, *(_shard_path(out_path, k) for k in range(cfg.workers))], [t.key for t in tasks]
    )
    with console.step(f"sample {out_path.name}", watched, unit="caption"):
        if cfg.backend == "openai":
            done = JsonlLog(out_path).by_key()
            url = (
                serving_url(cfg, model, adapters) if any(t.key not in done for t in tasks) else cfg.base_url
            )  # reload only when there is work
            sample_openai(tasks, out_path, cfg=cfg, seed=seed, progress=progress, base_url=url)
        elif cfg.workers > 1:
            sample_parallel(
                tasks, out_path, model=model, adapters=adapters, infer=infer, cfg=cfg, seed=seed, progress=progress
            )
        else:
            sample_in_process(
                tasks, out_path, model=model, adapters=adapters, infer=infer, cfg=cfg, seed=seed, progress=progress
            )
    rows = JsonlLog(out_path).by_key()
    missing = [t.key for t in tasks if t.key not in rows]
    if missing:
        raise Vs2Error(f"{out_path}: {len(missing)} captions missing after sampling (first: {missing[0]})")
    return [rows[t.key] for t in tasks]


def _worker(spec_path: str, shard: int, num_shards: int) -> int:
    spec = json.loads(Path(spec_path).read_text())
    tasks = [SampleTask(**t) for t in spec["tasks"]]
    order = {v: i for i, v in enumerate(dict.fromkeys(t.video for t in tasks))}
    tasks = [t for t in tasks if order[t.video] % num_shards == shard]  # by video: its samples share a prefill
    cfg = SamplingConfig(**spec["cfg"])
    out = _shard_path(Path(spec_path).with_suffix("").with_suffix(".jsonl"), shard)
    sample_in_process(
        tasks,
        out,
        model=spec["model"],
        adapters=spec["adapters"],
        infer=spec["infer"],
        cfg=cfg,
        seed=spec["seed"],
        progress=shard == 0 and spec.get("progress", True),  # one bar, the first worker's
    )
    return 0


if __name__ == "__main__":
    sys.exit(_worker(*sys.argv[1:2], int(sys.argv[2]), int(sys.argv[3])))
