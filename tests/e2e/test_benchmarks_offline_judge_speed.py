"""benchmarks/offline_judge_speed.py: its items are shaped like a model's captions."""

from __future__ import annotations

import json

import pytest

from tests.support.scripts import load_script
from vs2_plugin.judge.encoders import split_sentences


def _load():
    return load_script("benchmarks/offline_judge_speed.py")


def test_no_caption_sentence_is_a_reference_sentence_or_an_event(shared_dir):
    data = shared_dir / "data" / "captions" / "vs2_testset_dev.jsonl"
    if not data.exists():
        pytest.skip(f"test-set dev rows not found at {data}")
    rows = [json.loads(line) for line in data.read_text(encoding="utf-8").splitlines() if line.strip()]
    items = _load().speed_items(rows, 24)
    by_id = {r["id"]: r for r in rows}
    assert len(items) == 24 and len({i["id"] for i in items}) == 24
    known = set()
    for item in items:
        assert item["events"] == by_id[item["id"]]["events"] and item["reference"] == by_id[item["id"]]["reference"]
        known |= set(split_sentences(item["reference"])) | {e.strip() for e in item["events"]}
    caption_sentences = [s for item in items for s in split_sentences(item["caption"])]
    assert len(caption_sentences) > 24 * 10  # long captions, like the references
    # a shared sentence is encoded once for both sides and flatters the speed; a caption made from
    # the item's own reference shares about 90 % of them. Only chance coincidences may remain
    # ("Yes." said in two videos), as between a model's caption and a reference
    shared = [s for s in caption_sentences if s in known]
    assert len(shared) <= len(caption_sentences) // 100 and all(len(s.split()) <= 3 for s in shared)


def test_too_few_rows_is_an_error_not_a_shared_caption():
    rows = [{"id": str(k), "reference": f"Sentence {k}.", "events": [f"Event {k}."]} for k in range(5)]
    with pytest.raises(SystemExit, match="6 test-set rows"):
        _load().speed_items(rows, 3)
