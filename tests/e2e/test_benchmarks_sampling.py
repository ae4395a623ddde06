"""benchmarks/sampling.py runs end to end and writes what the README reports (no timing asserted)."""

from __future__ import annotations

import json

from tests.support.scripts import load_script


def test_sampling_benchmark_writes_its_ratio_and_both_sides_agree_when_greedy(tiny_model_dir, tmp_path, repo_root):
    bench = load_script("benchmarks/sampling.py")
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
