"""benchmarks/sampling.py runs end to end and writes what the README reports (no timing asserted)."""

from __future__ import annotations

import importlib.util
import json
import sys


def test_sampling_benchmark_writes_its_ratio_and_both_sides_agree_when_greedy(tiny_model_dir, tmp_path, repo_root):
    spec = importlib.util.spec_from_file_location("bench_sampling", repo_root / "benchmarks" / "sampling.py")
    bench = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = bench
    spec.loader.exec_module(bench)
    out = tmp_path / "sampling.json"
    assert (
        bench.main(["--repeats", "2", "--max-new-tokens", "3", "--model-dir", str(tiny_model_dir), "--out", str(out)])
        == 0
    )
    result = json.loads(out.read_text())
    assert result["captions"] == 16 and result["videos"] == 4 and result["prompts"] == 8
    assert len(result["chat_seconds"]["all"]) == len(result["batched_seconds"]["all"]) == 2
    assert result["batched_vs_chat_speedup"] == result["chat_seconds"]["median"] / result["batched_seconds"]["median"]
    assert result["greedy_outputs_equal"] is True
