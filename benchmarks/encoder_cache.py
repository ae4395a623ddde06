"""Tiny SFT with and without the frozen-encoder cache, and with a data-loader process.

The same SFT (``recipes/tiny/av_sft.yaml`` as the learning benchmark runs it: full fine-tuning,
batch 2, one thread) on the same synthetic clips and the same weights, three ways:

  off           ``audio_encoder_cache_mb: 0``, the batch decoded in the training process
  cache         the tiny model's cache (:mod:`vs2_plugin.modeling.frozen_cache`)
  cache_loader  the cache and ``dataloader_num_workers: 1`` (decoding on a second core)

Each run is a fresh ``llamafactory-cli train`` process timed whole (start-up, data preparation,
model load, every step, the cache's first-epoch misses); the order of the three rotates from
one repeat to the next, so load on a shared machine hits all of them. The final training loss
of each run is recorded: the work is the same on every side (the cache returns the states the
same encoder computed, equal up to float rounding).

Writes benchmarks/results/encoder_cache.json and prints the speed-ups against ``off`` (medians
over --repeats, spread = min / max of the per-repeat ratios).

Run:  OMP_NUM_THREADS=1 .venv/bin/python benchmarks/encoder_cache.py [--steps 300 --clips 48 --repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SIDES = ("off", "cache", "cache_loader")


def prepare(out: Path, clips: int) -> tuple[Path, dict[str, Path]]:
    """Synthetic clips and the tiny model twice: cache on (as built) and off (config edited)."""
    import shutil

    from vs2_plugin.modeling.tiny import build_tiny_model
    from vs2_plugin.synth.generate import SynthConfig, generate

    data = out / "data"
    if not (data / "manifest.json").exists():
        generate(
            SynthConfig(
                out=str(data), seed=0, n_train=clips, n_heldout=1, min_seconds=4.0, max_seconds=6.0, vary_wording=False
            )
        )
    on, off = out / "model_cache", out / "model_off"
    if not (on / "model.safetensors").exists():
        build_tiny_model(on, seed=0)
    if not (off / "model.safetensors").exists():
        shutil.copytree(on, off, dirs_exist_ok=True)
        config = json.loads((off / "config.json").read_text())
        config["audio_encoder_cache_mb"] = 0
        (off / "config.json").write_text(json.dumps(config, indent=2))
    return data, {"off": off, "cache": on, "cache_loader": on}


def train_args(side: str, model: Path, data: Path, out: Path, steps: int) -> dict:
    from vs2_plugin.pipeline.plan import DEMO_PLAN, FULL_SFT, sft_recipe

    loader = 1 if side == "cache_loader" else 0
    return sft_recipe(DEMO_PLAN, model, data, out, **FULL_SFT, max_steps=steps, dataloader_num_workers=loader)


def timed_train(run: Path, args: dict) -> dict:
    """One fresh ``llamafactory-cli train`` process on ``args`` (a recipe written to ``run``), timed
    whole; its wall time, training-loop time and final loss."""
    from vs2_plugin.pipeline.train import llamafactory_cli

    run.mkdir(parents=True, exist_ok=True)
    recipe = run / "train.yaml"
    recipe.write_text(yaml.safe_dump(args))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    start = time.perf_counter()
    with (run / "train.log").open("w") as log:
        subprocess.run([llamafactory_cli(), "train", str(recipe)], check=True, stdout=log, stderr=log, env=env)
    wall = time.perf_counter() - start
    results = json.loads((Path(args["output_dir"]) / "all_results.json").read_text())
    return {"wall_s": wall, "train_runtime_s": results["train_runtime"], "train_loss": results["train_loss"]}


def run_side(side: str, model: Path, data: Path, work: Path, steps: int) -> dict:
    return timed_train(work / side, train_args(side, model, data, work / side / "out", steps))


def bench_arguments(description: str, name: str, steps: int, steps_help: str) -> argparse.ArgumentParser:
    """The options of a timed tiny-SFT comparison (work folder, clips, steps, repeats, results)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--out", default=f"outputs/bench_{name}", help="work folder")
    parser.add_argument("--clips", type=int, default=48, help="synthetic train clips (3 captions each)")
    parser.add_argument("--steps", type=int, default=steps, help=steps_help)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--results", default=str(REPO / "benchmarks" / "results" / f"{name}.json"))
    return parser


def rotated_runs(sides: tuple[str, ...], repeats: int, run_one: Callable[[str, int], dict]) -> dict[str, list[dict]]:
    """``run_one(side, repeat)`` for every side, ``repeats`` times, the order rotating from one
    repeat to the next so that load on a shared machine hits every side."""
    runs: dict[str, list[dict]] = {side: [] for side in sides}
    for repeat in range(repeats):
        for side in sides[repeat % len(sides) :] + sides[: repeat % len(sides)]:
            runs[side].append(run_one(side, repeat))
            print(f"repeat {repeat} {side}: {runs[side][-1]}", flush=True)
    return runs


def timing_payload(args: argparse.Namespace, runs: dict[str, list[dict]], load_before: float) -> dict:
    """What every timed tiny-SFT comparison records: its settings, the median wall time of each
    side, every run and the machine's load before and after."""
    return {
        "what": "tiny SFT (learning benchmark settings) through llamafactory-cli train, whole process timed",
        "steps": args.steps,
        "clips": args.clips,
        "repeats": args.repeats,
        "cores": os.cpu_count(),
        "medians_wall_s": {side: statistics.median(r["wall_s"] for r in side_runs) for side, side_runs in runs.items()},
        "runs": runs,
        "load_average_1min_before": round(load_before, 2),
        "load_average_1min_after": round(os.getloadavg()[0], 2),
    }


def speedups(baseline: list[dict], side: list[dict], prefix: str = "") -> dict:
    """Median and spread (min, max) of the per-repeat ratios baseline / side, of the whole run's
    wall time (``speedup``) and of the training loop's (``train_speedup``)."""
    out = {}
    for key, name in (("wall_s", "speedup"), ("train_runtime_s", "train_speedup")):
        values = [a[key] / b[key] for a, b in zip(baseline, side)]
        out[f"{prefix}{name}"] = round(statistics.median(values), 3)
        out[f"{prefix}{name}_spread"] = [round(min(values), 3), round(max(values), 3)]
    return out


def write_results(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"wrote {path}")


def main(argv: list[str] | None = None) -> int:
    parser = bench_arguments(__doc__.split("\n")[0], "encoder_cache", 300, "SFT steps of each run (batch 2)")
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    out = Path(args.out).resolve()
    data, models = prepare(out, args.clips)
    load_before = os.getloadavg()[0]
    runs = rotated_runs(
        SIDES, args.repeats, lambda side, r: run_side(side, models[side], data, out / f"repeat-{r}", args.steps)
    )

    payload = {
        **timing_payload(args, runs, load_before),
        "epochs": round(args.steps * 2 / (3 * args.clips), 2),
        "train_loss": {side: [r["train_loss"] for r in runs[side]] for side in SIDES},
    }
    for side in SIDES[1:]:
        payload.update(speedups(runs["off"], runs[side], prefix=f"{side}_"))
    for side in SIDES[1:]:
        print(
            f"{side}: {payload[f'{side}_speedup']}x whole run (spread {payload[f'{side}_speedup_spread']}), "
            f"{payload[f'{side}_train_speedup']}x training loop"
        )
    write_results(Path(args.results), payload)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
