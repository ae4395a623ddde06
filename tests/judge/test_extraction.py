"""Offline event extraction: one fact per event, quoted speech kept whole, human granularity."""

import json
import sys

import pytest

from tests.support.paths import REPO, SHARED
from vs2_plugin.judge.offline import extract_events

sys.path.insert(0, str(REPO / "benchmarks"))
from offline_event_extraction import matched, score  # noqa: E402

DATA = SHARED / "data" / "captions" / "vs2_testset_dev.jsonl"


def test_quoted_speech_is_never_split():
    ref = 'A man walks in. He says, "Stop. Right now, please; I mean it." A dog barks, while a cat sleeps.'
    assert extract_events(ref) == [
        "A man walks in.",
        'He says, "Stop. Right now, please; I mean it."',
        "A dog barks",
        "while a cat sleeps.",
    ]


def test_a_single_quoted_utterance_may_hold_apostrophes():
    # the apostrophes of don't / what's do not end the quote; one after a letter does not open one
    ref = "She says, 'I don't know. What's that?' The dog's bowl is empty."
    assert extract_events(ref) == ["She says, 'I don't know. What's that?'", "The dog's bowl is empty."]


def test_matching_is_one_to_one():
    assert matched(["A dog barks loudly", "A dog barks"], ["The dog barks loudly"]) == 1
    assert matched(["A red car drives"], ["A pianist plays"]) == 0


def test_extraction_matches_human_event_granularity():
    if not DATA.exists():
        pytest.skip(f"{DATA} not available")
    rows = [json.loads(line) for line in DATA.read_text().splitlines() if line.strip()][::10]
    s = score(rows, extract_events)
    assert 0.8 <= s["count_ratio_median"] <= 1.2
    assert s["f1"] >= 0.65 and s["videos_with_a_quote_split"] == 0


def test_a_colon_that_introduces_a_quote_keeps_the_speaker_with_it():
    events = extract_events('A girl\'s voice says: "Hello! Take a look at what I am drawing!" Then she draws a cat.')
    assert events == ['A girl\'s voice says "Hello! Take a look at what I am drawing!"', "Then she draws a cat."]
    # a colon before anything else still cuts
    assert extract_events("The man speaks: the weather is nice today.") == [
        "The man speaks",
        "the weather is nice today.",
    ]
