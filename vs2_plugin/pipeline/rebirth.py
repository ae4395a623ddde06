"""Rebirth tuning (paper sec. 3.4); ``vs2 rebirth`` (:mod:`vs2_plugin.commands.rebirth`) runs it.

1. Label a (large) video set with the final mrDPO model (backbone + all merged LoRA proxies):
   a global caption per video and a local caption per interval it lists (every interval, so
   the reborn model is taught local captions of every part of a clip, not only of its first).
2. Drop captions with unnatural patterns (and empty or truncated ones).
3. Write the kept captions as a LLaMA-Factory SFT dataset.
4. Train the SFT recipe from the **post-alignment** checkpoint — not from the DPO model — so
   the LLM is "reborn" from teacher forcing on its own best captions.

Besides the trained adapter, ``--out`` holds ``report.md`` / ``report.html`` (every label, kept or
dropped and why, against the video's frames and audio) and ``logs/rebirth.log``. Every step is
resumable: labels are kept per video; the dataset and training rerun only if not finished.
Sampling settings come from the mrDPO config (``--mrdpo-config``), so labelling uses the same
prompts and media settings as the rounds. Bad videos are handled as the rounds handle them (the
config's ``bad_samples``): a bad row of ``--videos`` (unreadable or truncated file, an interval
past the clip's end, ...) or a video that could not be decoded while labelling is left out and
listed in ``--out``/``skipped_videos.jsonl`` (``skip``), or stops the run naming it (``fail``).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Any

from vs2_plugin.data.sharegpt import caption_row, write_caption_dataset
from vs2_plugin.errors import ConfigError, DataError, Vs2Error
from vs2_plugin.files import read_jsonl
from vs2_plugin.gdpo.rounds import atomic_write_text
from vs2_plugin.pipeline.config import MrDPOConfig, load_yaml
from vs2_plugin.pipeline.fingerprint import fingerprints, resume_changes, write_run_record
from vs2_plugin.pipeline.html_report import write_labels_report
from vs2_plugin.pipeline.records import ADAPTER_TUNING, FINAL_MODEL, StepState, finished_model
from vs2_plugin.pipeline.sampling import build_tasks, sample
from vs2_plugin.pipeline.screen import SKIPPED_VIDEOS_FILE, drop_failed, screen_videos, video_limits
from vs2_plugin.pipeline.train import run_training

REBIRTH_DATASET = "vs2_rebirth"


def final_model(run_dir: Path) -> dict[str, Any]:
    """Base and adapters of the finished mrDPO run whose model labels the rebirth data."""
    if not (run_dir / FINAL_MODEL).is_file():
        raise Vs2Error(f"{run_dir / FINAL_MODEL} not found: finish the mrDPO run first (vs2 mrdpo ...)")
    model, adapters = finished_model(run_dir)
    return {"model": model, "adapters": adapters}


def sft_args(recipe: str | Path, post_alignment: str, dataset_dir: Path, output_dir: Path) -> dict[str, Any]:
    path = Path(recipe)
    if not path.is_file():
        raise ConfigError(f"rebirth recipe not found: {path}")
    args = load_yaml(path)
    if args.get("stage", "sft") != "sft":
        raise ConfigError(f"{path}: rebirth tuning is supervised: stage must be 'sft', got {args.get('stage')!r}")
    if args.get("adapter_name_or_path"):
        raise ConfigError(
            f"{path}: rebirth tuning trains from the post-alignment checkpoint; remove adapter_name_or_path "
            f"({args['adapter_name_or_path']!r})"
        )
    args.update(
        {
            "model_name_or_path": post_alignment,
            "dataset": REBIRTH_DATASET,
            "dataset_dir": str(dataset_dir),
            "output_dir": str(output_dir),
        }
    )
    return args


def filter_labels(rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(kept, dropped) labels, each with its ``reasons`` (paper sec. 3.4: captions with unnatural
    patterns are filtered out before rebirth tuning): an empty caption, an unnatural pattern
    (:func:`~vs2_plugin.judge.metrics.unnatural_patterns`), a caption cut off at the token budget."""
    from vs2_plugin.judge.metrics import unnatural_patterns

    kept, dropped = [], []
    for r in rows:
        reasons = unnatural_patterns(r["caption"])
        if not r["caption"].strip():
            reasons = ["empty caption"]
        elif r.get("finish_reason") == "length":
            reasons = reasons + ["cut off at max_new_tokens"]
        (dropped if reasons else kept).append({**r, "reasons": reasons})
    return kept, dropped


#: the settings of the mrDPO config that rebirth uses (the rest are the rounds')
MRDPO_SETTINGS = ("sampling", "infer", "seed", "bad_samples")


def start_out_folder(
    out_dir: Path,
    cfg: MrDPOConfig,
    final: dict[str, Any],
    videos_path: str,
    recipe: str,
    post_alignment: str,
    *,
    greedy: bool,
    overrides: dict[str, Any] | None,
) -> None:
    """Record in ``out_dir/config.json`` what the labels and the tuning are made from (the labelling
    model, videos, recipe and post-alignment checkpoint by their contents; the sampling settings);
    a rerun on labels made from anything else is refused, naming what changed, since it would
    tune on a mix. ``vs2 caption --run out_dir`` reads the prompts and media settings from it."""
    mrdpo = json.loads(json.dumps(asdict(cfg), default=str))
    settings = {key: mrdpo[key] for key in MRDPO_SETTINGS} | {"greedy": greedy, "overrides": overrides or {}}
    inputs = fingerprints(
        {
            "labelling model": final["model"],
            "labelling adapters": final["adapters"],
            "videos": videos_path,
            "recipe": recipe,
            "post-alignment model": post_alignment,
        }
    )
    labels = out_dir / "labels.jsonl"
    changed = resume_changes(out_dir / "config.json", settings, inputs) if labels.is_file() else []
    if changed:
        raise ConfigError(
            f"{out_dir} holds rebirth labels made with other settings: {'; '.join(changed)}. Rerun it with those "
            "of its config.json (paths, workers and timeouts may change), or give another --out"
        )
    write_run_record(out_dir / "config.json", settings, inputs)


def run_rebirth(
    cfg: MrDPOConfig,
    videos_path: str,
    recipe: str,
    out: str,
    *,
    mrdpo_run: str | None = None,
    greedy: bool = True,
    progress: bool = True,
    overrides: dict[str, Any] | None = None,
    post_alignment: str | None = None,
) -> dict[str, Any]:
    """Rebirth tuning (paper sec. 3.4) into ``out``: the finished mrDPO model (``mrdpo_run``, else
    ``cfg.run_dir``) labels ``videos_path`` (greedy by default: a global caption and one per local
    interval), labels with unnatural patterns are dropped (:func:`filter_labels`), and the
    ``recipe``'s SFT trains on the rest from the post-alignment checkpoint (``post_alignment``, else
    the mrDPO base), with ``overrides`` on top. Each step is recorded once done; a rerun resumes.
    Returns the label counts, the trained folder and the finished model."""
    out_dir = Path(out).resolve()
    final = final_model(Path(mrdpo_run or cfg.run_dir).resolve())
    # the post-alignment checkpoint: the mrDPO base unless SFT was full fine-tuning (then given)
    post_alignment = post_alignment or cfg.model_name_or_path
    post_alignment = str(Path(post_alignment).resolve()) if Path(post_alignment).exists() else post_alignment
    # the recipe's errors before labelling, which takes hours on a large model
    sft_args(recipe, post_alignment, out_dir / "data", out_dir / "sft")
    start_out_folder(out_dir, cfg, final, videos_path, recipe, post_alignment, greedy=greedy, overrides=overrides)
    # bad rows left out and listed (bad_samples: skip) or refused (fail), as mrDPO screens its lists;
    # rebirth labels the videos itself, so a reference caption is optional
    videos, _ = screen_videos(
        videos_path, out_dir, policy=cfg.bad_samples, limits=video_limits(cfg), require_reference=False, tag="rebirth"
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    state = StepState(out_dir)

    tasks = build_tasks(videos, cfg.sampling, 1, samples=1, greedy=greedy, tag="rebirth", all_intervals=True)
    rows = sample(
        tasks,
        out_dir / "labels.jsonl",
        model=final["model"],
        adapters=final["adapters"],
        infer=cfg.infer,
        cfg=cfg.sampling,
        seed=cfg.seed,
        progress=progress,
    )
    # videos the model could not decode while labelling: left out and listed (a rerun retries them)
    rows, failed = drop_failed(rows, out_dir, "rebirth labelling", cfg.bad_samples)
    if failed and not rows:
        raise DataError(
            f"rebirth: none of the {len(failed)} video(s) in {videos_path} could be read while labelling "
            f"(listed in {out_dir / SKIPPED_VIDEOS_FILE})"
        )
    if failed:
        videos = [v for v in videos if v.id not in failed]

    if not state.done(0, "filter"):
        kept, dropped = filter_labels(rows)
        data = [caption_row("<video>" + r["prompt"], r["caption"], "videos", r["video"]) for r in kept]
        write_caption_dataset(out_dir / "data", REBIRTH_DATASET, data)
        atomic_write_text(out_dir / "dropped.jsonl", "".join(json.dumps(d, ensure_ascii=False) + "\n" for d in dropped))
        state.mark(0, "filter", {"labelled": len(rows), "kept": len(kept), "dropped": len(dropped)})
    if not (out_dir / "report.html").is_file():
        write_labels_report(out_dir, rows, read_jsonl(out_dir / "dropped.jsonl", allow_empty=True), videos)
    counts = state.result(0, "filter")
    if counts["kept"] == 0:
        dropped = read_jsonl(out_dir / "dropped.jsonl", allow_empty=True)
        why = Counter(reason for d in dropped for reason in d.get("reasons") or ["unknown"])
        raise Vs2Error(
            f"rebirth: all {counts['labelled']} labels were dropped ({', '.join(f'{r}: {n}' for r, n in why.most_common())};"
            f" see {out_dir / 'dropped.jsonl'}), so there is nothing to tune on. The labels are kept in "
            f"{out_dir / 'labels.jsonl'} and a rerun reuses them: to label again (e.g. with a larger "
            "sampling.max_new_tokens, or from a model that has learnt more), give another --out"
        )

    if not state.done(0, "train"):
        args = {**sft_args(recipe, post_alignment, out_dir / "data", out_dir / "sft"), **(overrides or {})}
        run_training(args, out_dir / "train.yaml", out_dir / "train.log")
        # the finished model vs2 caption / vs2 export use: the post-alignment model + the trained adapter,
        # or (full or freeze tuning) the trained folder alone, a complete model
        tuning = str(args.get("finetuning_type") or "lora")
        trained = {"model": post_alignment, "adapter": str(out_dir / "sft")}
        if tuning not in ADAPTER_TUNING:
            trained = {"model": str(out_dir / "sft"), "post_alignment": post_alignment}
        state.mark(0, "train", {**trained, "finetuning_type": tuning, "run_dir": str(out_dir)})
    model, adapters = finished_model(out_dir)
    return {
        **counts,
        "adapter": str(out_dir / "sft"),  # the trained folder (a complete model after full tuning)
        "model": model,
        "adapters": adapters,
        "post_alignment_model": post_alignment,
        "out": str(out_dir),
    }
