"""benchmarks/gradient_checkpointing.py runs both sides and they end with the same weights."""

from __future__ import annotations

import json

import yaml

from tests.support.scripts import load_script


def test_gradient_checkpointing_benchmark_compares_the_same_training(tmp_path):
    bench = load_script("benchmarks/gradient_checkpointing.py")
    out = tmp_path / "gradient_checkpointing.json"
    argv = ["--out", str(tmp_path / "work"), "--clips", "2", "--steps", "4", "--repeats", "1", "--results", str(out)]
    assert bench.main(argv) == 0
    result = json.loads(out.read_text())
    for side, off in (("checkpointing", False), ("no_checkpointing", True)):
        recipe = yaml.safe_load((tmp_path / "work" / "repeat-0" / side / "train.yaml").read_text())
        assert recipe["disable_gradient_checkpointing"] is off and recipe["max_steps"] == 4
    digests = {side: runs[0]["weights_digest"] for side, runs in result["runs"].items()}
    assert len(digests) == 2 and len(set(digests.values())) == 1
    assert result["identical_weights"] is True
    assert result["speedup"] > 0 and result["train_speedup"] > 0
