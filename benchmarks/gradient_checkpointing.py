"""Tiny SFT with and without gradient checkpointing: the same weights, at what cost.

LLaMA-Factory checkpoints activations by default (``disable_gradient_checkpointing: false``):
each decoder layer's forward pass runs again during the backward pass, to save memory. A tiny
model on a CPU has no memory to save, so the tiny recipes (``recipes/tiny/*.yaml``) turn it off.
This measures what that buys, like for like: the SFT of the learning benchmark (full
fine-tuning, batch 2, one thread, the frozen-encoder cache and one data-loader process) on the
same synthetic clips from the same weights, two ways:

  checkpointing     ``disable_gradient_checkpointing: false`` (LLaMA-Factory's default)
  no_checkpointing  ``disable_gradient_checkpointing: true`` (the tiny recipes)

Each run is a fresh ``llamafactory-cli train`` process timed whole (start-up, data preparation,
model load, every step, the cache's first-epoch misses); the order alternates from one repeat to
the next. The useful work is the same on both sides, and checked: every run's saved weights are
digested, and ``identical_weights`` says whether all runs of both sides end with the same bytes
(recomputing a forward pass on a CPU repeats the same operations, so the gradients are equal).

Writes benchmarks/results/gradient_checkpointing.json and prints the speed-up against
``checkpointing`` (medians over --repeats, spread = min / max of the per-repeat ratios).

Default: 20 passes over the 144 captions of 48 clips, as many passes as the learning benchmark's SFT.

Run:  OMP_NUM_THREADS=1 .venv/bin/python benchmarks/gradient_checkpointing.py [--steps 1440 --clips 48 --repeats 3]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from encoder_cache import prepare  # noqa: E402

SIDES = ("checkpointing", "no_checkpointing")


def weights_digest(folder: Path) -> str:
    """Digest of every tensor a run saved (names, dtypes, shapes and bytes), in name order."""
    import torch
    from safetensors.torch import load_file

    digest = hashlib.blake2b(digest_size=16)
    for path in sorted(folder.glob("*.safetensors")):
        tensors = load_file(str(path))
        for name in sorted(tensors):
            t = tensors[name].contiguous()
            digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
            digest.update(t.view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def run_side(side: str, model: Path, data: Path, work: Path, steps: int) -> dict:
    from vs2_plugin.pipeline.demo import DEMO_PLAN, FULL_SFT, sft_recipe
    from vs2_plugin.pipeline.train import llamafactory_cli

    run = work / side
    run.mkdir(parents=True, exist_ok=True)
    recipe = run / "train.yaml"
    args = sft_recipe(
        DEMO_PLAN,
        model,
        data,
        run / "out",
        **FULL_SFT,
        max_steps=steps,
        dataloader_num_workers=1,
        disable_gradient_checkpointing=side == "no_checkpointing",
    )
    recipe.write_text(yaml.safe_dump(args))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    start = time.perf_counter()
    with (run / "train.log").open("w") as log:
        subprocess.run([llamafactory_cli(), "train", str(recipe)], check=True, stdout=log, stderr=log, env=env)
    wall = time.perf_counter() - start
    results = json.loads((run / "out" / "all_results.json").read_text())
    return {
        "wall_s": wall,
        "train_runtime_s": results["train_runtime"],
        "train_loss": results["train_loss"],
        "weights_digest": weights_digest(run / "out"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="outputs/bench_gradient_checkpointing", help="work folder")
    parser.add_argument("--clips", type=int, default=48, help="synthetic train clips (3 captions each)")
    parser.add_argument("--steps", type=int, default=1440, help="SFT steps of each run (batch 2; 1440 = 20 passes)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--results", default=str(REPO / "benchmarks" / "results" / "gradient_checkpointing.json"))
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    out = Path(args.out).resolve()
    data, models = prepare(out, args.clips)
    model = models["cache"]
    runs: dict[str, list[dict]] = {side: [] for side in SIDES}
    load_before = os.getloadavg()[0]
    for repeat in range(args.repeats):
        for side in SIDES if repeat % 2 == 0 else SIDES[::-1]:
            runs[side].append(run_side(side, model, data, out / f"repeat-{repeat}", args.steps))
            print(f"repeat {repeat} {side}: {runs[side][-1]}", flush=True)

    payload: dict = {
        "what": "tiny SFT (learning benchmark settings) through llamafactory-cli train, whole process timed",
        "steps": args.steps,
        "clips": args.clips,
        "repeats": args.repeats,
        "cores": os.cpu_count(),
        "medians_wall_s": {side: statistics.median(r["wall_s"] for r in runs[side]) for side in SIDES},
        "identical_weights": len({r["weights_digest"] for side in SIDES for r in runs[side]}) == 1,
        "runs": runs,
        "load_average_1min_before": round(load_before, 2),
        "load_average_1min_after": round(os.getloadavg()[0], 2),
    }
    for key, name in (("wall_s", "speedup"), ("train_runtime_s", "train_speedup")):
        values = [a[key] / b[key] for a, b in zip(runs["checkpointing"], runs["no_checkpointing"])]
        payload[name] = round(statistics.median(values), 3)
        payload[f"{name}_spread"] = [round(min(values), 3), round(max(values), 3)]
    Path(args.results).parent.mkdir(parents=True, exist_ok=True)
    Path(args.results).write_text(json.dumps(payload, indent=2) + "\n")
    print(
        f"no_checkpointing: {payload['speedup']}x whole run (spread {payload['speedup_spread']}), "
        f"{payload['train_speedup']}x training loop; identical weights: {payload['identical_weights']}"
    )
    print(f"wrote {args.results}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
