"""benchmarks/gradient_checkpointing.py runs both sides and they end with the same weights."""

from __future__ import annotations

import yaml

from tests.support.scripts import run_timed_sft_benchmark


def test_gradient_checkpointing_benchmark_compares_the_same_training(tmp_path):
    result = run_timed_sft_benchmark("gradient_checkpointing", tmp_path, clips=2, steps=4)
    for side, off in (("checkpointing", False), ("no_checkpointing", True)):
        recipe = yaml.safe_load((tmp_path / "work" / "repeat-0" / side / "train.yaml").read_text())
        assert recipe["disable_gradient_checkpointing"] is off and recipe["max_steps"] == 4
    digests = {side: runs[0]["weights_digest"] for side, runs in result["runs"].items()}
    assert len(digests) == 2 and len(set(digests.values())) == 1
    assert result["identical_weights"] is True
    assert result["speedup"] > 0 and result["train_speedup"] > 0
