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

import hashlib
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from encoder_cache import bench_arguments, prepare, rotated_runs, speedups, timed_train, timing_payload, write_results  # noqa: E402

SIDES = ("checkpointing", "no_checkpointing")


def weights_digest(folder: Path) -> str:
    """Digest of every tensor a run saved (names, dtypes, shapes and bytes), in name order."""
    import torch
    from safetensors.torch import load_file

    paths = sorted(folder.glob("*.safetensors"))
    if not paths:
        raise FileNotFoundError(f"no weights (*.safetensors) in {folder}")
    digest = hashlib.blake2b(digest_size=16)
    for path in paths:
        tensors = load_file(str(path))
        for name in sorted(tensors):
            t = tensors[name].contiguous()
            digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
            digest.update(t.view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def run_side(side: str, model: Path, data: Path, work: Path, steps: int) -> dict:
    from vs2_plugin.pipeline.plan import DEMO_PLAN, FULL_SFT, sft_recipe

    out = work / side / "out"
    args = sft_recipe(
        DEMO_PLAN,
        model,
        data,
        out,
        **FULL_SFT,
        max_steps=steps,
        dataloader_num_workers=1,
        disable_gradient_checkpointing=side == "no_checkpointing",
    )
    return {**timed_train(work / side, args), "weights_digest": weights_digest(out)}


def main(argv: list[str] | None = None) -> int:
    parser = bench_arguments(
        __doc__.split("\n")[0], "gradient_checkpointing", 1440, "SFT steps of each run (batch 2; 1440 = 20 passes)"
    )
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    out = Path(args.out).resolve()
    data, models = prepare(out, args.clips)
    model = models["cache"]
    load_before = os.getloadavg()[0]
    runs = rotated_runs(
        SIDES, args.repeats, lambda side, r: run_side(side, model, data, out / f"repeat-{r}", args.steps)
    )

    payload: dict = {
        **timing_payload(args, runs, load_before),
        "identical_weights": len({r["weights_digest"] for side in SIDES for r in runs[side]}) == 1,
    }
    payload.update(speedups(runs["checkpointing"], runs["no_checkpointing"]))
    print(
        f"no_checkpointing: {payload['speedup']}x whole run (spread {payload['speedup_spread']}), "
        f"{payload['train_speedup']}x training loop; identical weights: {payload['identical_weights']}"
    )
    write_results(Path(args.results), payload)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
