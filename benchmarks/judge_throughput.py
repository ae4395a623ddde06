"""Throughput of the OpenAI-compatible judge against a local server with fixed latency.

483 items x 7 passes (the benchmark's size, App. E) against tests/support/fake_openai_server.py on
127.0.0.1 answering every request after 100 ms. Measured in the same run:

* wall_vs_limit_ratio: concurrent wall time / (calls x latency / concurrency), the floor set by
  the concurrency limit (goal <= 1.25),
* speedup_vs_sequential: a sequential run (concurrency 1) on a subset, scaled per call, over the
  concurrent wall time,
* cached_speedup / cached_requests: the same 3,381 calls again from the SQLite cache (median of
  ``--cached-repeats`` reruns over the concurrent wall time; every rerun must make 0 requests).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/judge_throughput.py [--concurrency 16]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.fake_openai_server import FakeOpenAIServer  # noqa: E402
from vs2_plugin.judge.config import JudgeConfig  # noqa: E402
from vs2_plugin.judge.runner import judge_items  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "judge_throughput.json"
N_ITEMS, PASSES, LATENCY = 483, 7, 0.1
ANSWER = json.dumps({"missed": [1], "incorrect": [], "hallucinated": []})


def synthetic_items(n: int) -> list[dict]:
    subjects = ["a man", "a woman", "a child", "a dog", "a drummer", "a chef", "a cyclist", "a crowd"]
    actions = [
        "walks along a beach",
        "plays a red guitar",
        "cooks pasta",
        "laughs loudly",
        "waves at the camera",
        "rides past a bus",
    ]
    items = []
    for i in range(n):
        events = [
            f"{subjects[(i + k) % len(subjects)].capitalize()} {actions[(i * 3 + k) % len(actions)]} (clip {i}, event {k})"
            for k in range(8)
        ]
        items.append({"id": f"item{i:04d}", "caption": " ".join(e + "." for e in events[::2]), "events": events})
    return items


def _verdict(judgment) -> tuple:
    return judgment.status, judgment.missed, judgment.incorrect, judgment.hallucinated, judgment.event_scores


def timed(items, config) -> tuple[float, list]:
    start = time.perf_counter()
    judgments = judge_items(items, config)
    return time.perf_counter() - start, judgments


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument(
        "--cached-repeats", type=int, default=5, help="cached reruns; their median wall time is reported"
    )
    parser.add_argument("--sequential-items", type=int, default=15, help="items of the sequential baseline (x7 calls)")
    args = parser.parse_args()

    items = synthetic_items(N_ITEMS)
    calls = N_ITEMS * PASSES
    with (
        tempfile.TemporaryDirectory() as tmp,
        FakeOpenAIServer(responder=lambda body: ANSWER, latency_s=LATENCY) as server,
    ):
        os.environ["OPENAI_BASE_URL"] = server.base_url
        os.environ.setdefault("OPENAI_API_KEY", "sk-local-benchmark-key")
        common = dict(model="fake-judge", passes=PASSES, max_retries=2, timeout_s=30.0)

        seq_config = JudgeConfig(
            judge="openai",
            show_progress=False,
            cache_path=str(Path(tmp) / "seq.sqlite"),
            options=dict(concurrency=1, **common),
        )
        seq_wall, _ = timed(items[: args.sequential_items], seq_config)
        seq_calls = server.count
        seq_per_call = seq_wall / seq_calls

        config = JudgeConfig(
            judge="openai",
            show_progress=False,
            cache_path=str(Path(tmp) / "cache.sqlite"),
            options=dict(concurrency=args.concurrency, **common),
        )
        server.reset_counts()
        wall, judgments = timed(items, config)
        requests = server.count
        failed = sum(not j.ok for j in judgments)

        server.reset_counts()
        cached_walls, same = [], True
        for _ in range(args.cached_repeats):
            cached_wall, cached = timed(items, config)
            cached_walls.append(cached_wall)
            same = same and [_verdict(j) for j in cached] == [_verdict(j) for j in judgments]
        cached_requests = server.count
        cached_wall = statistics.median(cached_walls)

    limit = calls * LATENCY / args.concurrency
    result = {
        "items": N_ITEMS,
        "passes": PASSES,
        "calls": calls,
        "latency_s": LATENCY,
        "concurrency": args.concurrency,
        "wall_s": wall,
        "limit_s": limit,
        "wall_vs_limit_ratio": wall / limit,
        "sequential_calls_measured": seq_calls,
        "sequential_s_per_call": seq_per_call,
        "sequential_wall_s_estimated": seq_per_call * calls,
        "speedup_vs_sequential": seq_per_call * calls / wall,
        "requests": requests,
        "failed_items": failed,
        "cached_wall_s": cached_wall,
        "cached_wall_s_all": cached_walls,
        "cached_speedup": wall / cached_wall,
        "cached_requests": cached_requests,
        "cached_measurement": f"median wall time of {args.cached_repeats} reruns of all {calls} calls from the cache "
        "(cached_requests counts the requests of all of them)",
        "cached_results_identical": same,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
