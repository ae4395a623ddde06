"""Speed of the offline judge on test-set-shaped items (about 35 events, 600-word captions).

Each measurement runs in a fresh process (nothing cached: model loaded, then items it has never
seen judged, the model load not timed). Items (:func:`speed_items`): vs2 test set (dev split)
videos, events = the video's human events, support = its reference, caption = the reference of
another dev video that no item uses, with 2-3 details swapped -- so, as with a model's caption,
no caption sentence is also a sentence of a reference or an event, and the judge encodes all of
them (a caption made from the item's own reference shares most sentences with it, which the
judge encodes once: about 20 % more events/s for MiniLM than a real caption allows). Encoders
``minilm`` and ``wordllama``, measured in the same run, one thread and all cores, alternated
repeats, medians.

    .venv/bin/python benchmarks/offline_judge_speed.py [--items 24] [--repeats 3]

Writes benchmarks/results/offline_judge_speed.json. ``events_per_s_1thread`` and
``events_per_s_all_cores`` are those of the encoder ``vs2 eval --judge offline`` uses by default
(``encoder``: ``auto``, MiniLM where its wheel is installed); ``encoders`` holds each encoder's.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from detail_swaps import swap_details  # noqa: E402

from vs2_plugin.judge.encoders import resolve_encoder_name  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "captions" / "vs2_testset_dev.jsonl"
RESULTS = ROOT / "benchmarks" / "results" / "offline_judge_speed.json"
ENCODERS = ("wordllama", "minilm")

_CHILD = r"""
import json, sys, time
sys.path.insert(0, sys.argv[4])
import torch
torch.set_num_threads(int(sys.argv[3]))
from vs2_plugin.judge import offline
from vs2_plugin.judge.encoders import get_encoder
from vs2_plugin.judge.types import JudgeItem
from offline_judge_speed import speed_items
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
items = [JudgeItem(**item) for item in speed_items(rows, int(sys.argv[5]))]
get_encoder(sys.argv[2])
t0 = time.perf_counter()
offline.judge(items, encoder_name=sys.argv[2])
dt = time.perf_counter() - t0
print(json.dumps({"seconds": dt, "events": sum(len(i.events) for i in items), "items": len(items)}))
"""


def speed_items(rows: list[dict], n: int, seed: int = 0) -> list[dict]:
    """``n`` judge items from test-set rows (``id``, ``reference``, ``events``), spread over the
    file; each caption is the reference of a row that no item uses, with 3 details swapped."""
    step = max(1, len(rows) // n)
    videos = rows[::step][:n]
    if len(videos) < n or step < 2:
        raise SystemExit(f"{n} items need at least {2 * n} test-set rows (captions come from rows no item uses)")
    others = rows[1::step][:n]  # the row after each item's: never an item itself
    rng = random.Random(seed)
    return [
        {
            "id": v["id"],
            "caption": swap_details(o["reference"], 3, rng)[0],
            "events": v["events"],
            "reference": v["reference"],
        }
        for v, o in zip(videos, others)
    ]


def measure(data: Path, encoder: str, threads: int, n_items: int) -> dict:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "OMP_NUM_THREADS": str(threads),
        "MKL_NUM_THREADS": str(threads),
        "OPENBLAS_NUM_THREADS": str(threads),
        "TOKENIZERS_PARALLELISM": "false",
    }
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, str(data), encoder, str(threads), str(ROOT / "benchmarks"), str(n_items)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--items", type=int, default=24, help="items judged per measurement (wordllama)")
    parser.add_argument("--minilm-items", type=int, default=6, help="items per measurement for the slower minilm")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    load_before = os.getloadavg()[0]  # a busy machine slows every setting; the JSON says how busy
    runs: dict[str, list[float]] = {}
    shape = {}
    for _ in range(args.repeats):  # alternated so that a busy spell on the machine hits every setting
        for encoder in ENCODERS:
            n = args.minilm_items if encoder == "minilm" else args.items
            for threads in sorted({1, cores}):
                r = measure(args.data, encoder, threads, n)
                runs.setdefault(f"{encoder}@{threads}", []).append(r["events"] / r["seconds"])
                shape[encoder] = {"items": r["items"], "events_per_item": r["events"] / r["items"]}
    med = {k: statistics.median(v) for k, v in runs.items()}
    default = resolve_encoder_name("auto")  # what a user's `vs2 eval --judge offline` runs
    result = {
        "encoder": default,
        "events_per_s_1thread": med[f"{default}@1"],
        "events_per_s_all_cores": med[f"{default}@{cores}"],
        "cores": cores,
        "encoders": {
            name: {"events_per_s_1thread": med[f"{name}@1"], "events_per_s_all_cores": med[f"{name}@{cores}"]}
            for name in ENCODERS
        },
        "speedup_wordllama_vs_minilm_1thread": med["wordllama@1"] / med["minilm@1"],
        "medians_events_per_s": med,
        "spread_events_per_s": {k: [min(v), max(v)] for k, v in runs.items()},
        "repeats": args.repeats,
        "item_shape": shape,
        "load_average_1min_before": round(load_before, 2),
        "load_average_1min_after": round(os.getloadavg()[0], 2),
        "note": "fresh process per measurement, model load not timed, no text cached",
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
