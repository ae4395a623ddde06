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
    agreement = out["pairwise_agreement_held_out_events"]
    assert agreement["n_pairs"] > 0 and 0.5 < agreement["agreement"] <= 1.0
