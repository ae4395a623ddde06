"""benchmarks/encoder_cache.py runs its three sides and they train alike (no timing asserted)."""

from __future__ import annotations

import json

import pytest

from tests.support.scripts import run_timed_sft_benchmark


def test_encoder_cache_benchmark_runs_every_side_to_the_same_loss(tmp_path):
    result = run_timed_sft_benchmark("encoder_cache", tmp_path, clips=2, steps=6)
    config = json.loads((tmp_path / "work" / "model_off" / "config.json").read_text())
    assert config["audio_encoder_cache_mb"] == 0
    assert json.loads((tmp_path / "work" / "model_cache" / "config.json").read_text())["audio_encoder_cache_mb"] > 0
    recipe = (tmp_path / "work" / "repeat-0" / "cache_loader" / "train.yaml").read_text()
    assert "dataloader_num_workers: 1" in recipe
    losses = {side: result["train_loss"][side][0] for side in ("off", "cache", "cache_loader")}
    # 6 steps of batch 2 over 6 captions of 2 clips: the cache serves the second epoch, and the
    # loss is the one the uncached run reaches (equal up to the float rounding of another batch)
    assert losses["cache"] == pytest.approx(losses["off"], rel=1e-4)
    assert losses["cache_loader"] == pytest.approx(losses["off"], rel=1e-4)
    for key in ("cache_speedup", "cache_loader_speedup", "cache_train_speedup"):
        assert result[key] > 0
    assert result["epochs"] == 2.0
