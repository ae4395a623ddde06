"""benchmarks/offline_judge_auc.py: the held-out-events split and the figures it reports."""

from __future__ import annotations

import json

import pytest

from tests.support.scripts import load_script


def _load():
    return load_script("benchmarks/offline_judge_auc.py")


def test_both_captioners_of_an_event_land_in_one_half():
    bench = _load()
    rows = [{"id": "a/event_1"}, {"id": "b/event_1"}, {"id": "a/event_2"}, {"id": "b/event_12"}]
    assert bench.event_halves(rows).tolist() == [1, 1, 0, 0]


def test_auc_interval_by_hand():
    bench = _load()
    labels = [1, 0, 1, 0, 1, 0]
    groups = ["e1", "e1", "e2", "e2", "e3", "e3"]
    # scores that order every positive above every negative: AUC 1 in every draw
    assert bench.auc_interval(labels, [0.9, 0.1, 0.8, 0.2, 0.7, 0.3], groups) == [1.0, 1.0]
    # e3 is ordered wrong (0.15 < 0.18) but above e1's negative: AUC 7/9; draws spread around it
    scores = [0.9, 0.1, 0.8, 0.2, 0.15, 0.18]
    assert abs(bench.roc_auc(labels, scores) - 7 / 9) < 1e-12
    low, high = bench.auc_interval(labels, scores, groups)
    assert low < 7 / 9 < high and high == 1.0


def test_miss_gap_interval_by_hand():
    bench = _load()
    groups = ["e1", "e1", "e2", "e2"]
    # the judge misses exactly what the labels miss (label 0 <-> score < 0): gap 0 in every draw
    assert bench.miss_gap_interval([0, 1, 0, 1], [-1.0, 1.0, -2.0, 2.0], groups) == [0.0, 0.0]
    # event e1: the judge misses both triples, the labels one -> +50 points; e2 agrees -> 0
    low, high = bench.miss_gap_interval([0, 1, 0, 1], [-1.0, -1.0, -2.0, 2.0], groups)
    assert (low, high) == (0.0, 50.0)


def test_reports_held_out_events_beside_leave_one_captioner_out(shared_dir):
    data = shared_dir / "data" / "captions" / "capability_event_labels_dev.jsonl"
    if not data.exists():
        pytest.skip(f"labelled dev triples not found at {data}")
    rows = [json.loads(line) for line in data.read_text(encoding="utf-8").splitlines() if line.strip()]
    keep = {f"event_{n}" for n in range(1, 151)}
    rows = [r for r in rows if r["id"].split("/")[-1] in keep]  # both captioners' triples of 150 events
    out = _load().evaluate("wordllama", rows, fit=False)
    assert set(out["auc_held_out_events"]) == {"half_0", "half_1"}
    assert 0.6 < out["auc_held_out_events_mean"] <= 1.0  # real signal on events never fitted
    assert set(out["auc_leave_one_captioner_out"]) == {"gpt-4o-0806", "qwen2vl_7b"}
    for point, (low, high) in [
        *((out["auc_held_out_events"][h], out["auc_held_out_events_ci95"][h]) for h in ("half_0", "half_1")),
        *(
            (out["auc_leave_one_captioner_out"][c], out["auc_leave_one_captioner_out_ci95"][c])
            for c in ("gpt-4o-0806", "qwen2vl_7b")
        ),
    ]:
        assert low < point < high  # each AUC with the spread of its 75-150 events
    for fold, key in (("gpt-4o-0806", "leave_one_captioner_out"), ("half_0", "held_out_half")):
        gap = out[f"miss_calibration_{key}"][fold]
        low, high = out[f"miss_gap_points_{key}_ci95"][fold]
        assert low <= 100 * (gap["judge_miss"] - gap["label_miss"]) <= high
    agreement = out["pairwise_agreement_held_out_events"]
    assert agreement["n_pairs"] > 0 and 0.5 < agreement["agreement"] <= 1.0
