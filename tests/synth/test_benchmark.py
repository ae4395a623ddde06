"""benchmarks/synth_judges.py on a few clips: the exact judge equals the construction's truth,
and both judges' numbers are reported beside it."""

from __future__ import annotations

import json

import numpy as np

from tests.support.scripts import load_script
from vs2_plugin.synth.grammar import Event


def _load():
    return load_script("benchmarks/synth_judges.py")


def test_swap_never_makes_another_event_of_the_clip():
    bench = _load()
    events = [Event("tone", pitch="high"), Event("tone", pitch="low")]
    rng = np.random.default_rng(0)
    for _ in range(20):
        assert bench.swap_one(events[0], rng, events) == Event("tone", pitch="medium")
    assert bench.swap_one(Event("noise"), rng, events) is None


def test_variants_carry_their_truth():
    bench = _load()
    events = [
        Event("appear", "red", "square", "top left", time=1.0),
        Event("speech", word="apple", time=2.0),
        Event("disappear", "red", "square", time=3.0),
    ]
    out = bench.variants(events, 2, np.random.default_rng(1), None)
    assert out["dropped"][1]["missed"] == 2 and out["swapped"][1]["incorrect"] == 2
    assert out["dropped"][0].count(".") == 1  # one event left told


def test_benchmark_writes_both_judges_beside_the_truth(tmp_path):
    bench = _load()
    out = tmp_path / "synth_judges.json"
    assert bench.main(["--n-clips", "3", "--k", "1", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["failed_items"] == {"synth_exact": 0, "offline": 0}
    conditions = result["conditions"]
    assert set(conditions) == {"reference", "dropped", "swapped", "other_clip"}
    for condition in ("reference", "dropped", "swapped"):
        for task in ("global", "local"):
            entry = conditions[condition][task]
            assert entry["exact_equals_truth"] == 1.0
            assert entry["synth_exact"]["miss_rate"] == entry["truth"]["miss_rate"]
            assert set(entry["offline"]) >= {"miss_rate", "hall_rate", "total_rate"}
    assert conditions["reference"]["global"]["synth_exact"]["total_rate"] == 0.0
    assert conditions["dropped"]["global"]["truth"]["miss_rate"] > 0
    assert conditions["swapped"]["global"]["truth"]["incorrect_rate"] > 0
    assert conditions["other_clip"]["global"]["synth_exact"]["miss_rate"] > 0.3
