"""The offline judge sees a denied statement and two things told in the wrong order (App. E "incorrect")."""

import doctest
import json
import random
import sys

import numpy as np
import pytest

from tests.support.offline_judging import judge_one
from tests.support.paths import REPO, SHARED
from vs2_plugin.judge import offline, statements
from vs2_plugin.judge.alignment import STOPWORDS, loose_stem
from vs2_plugin.judge.statements import negated, order_contradiction, order_parts, polarity_contradictions
from vs2_plugin.judge.types import JudgeItem

sys.path.insert(0, str(REPO / "benchmarks"))
from detail_swaps import negate_statements, reorder_statements  # noqa: E402

DATA = SHARED / "data" / "captions" / "vs2_testset_dev.jsonl"


def words(text):
    return text.lower().replace(".", "").split()


def test_doctests():
    assert doctest.testmod(statements).failed == 0


def denied(text, sentence=None):
    w = words(text)
    return [x for x, n in zip(w, negated(w, sentence)) if n]


def test_a_negation_denies_the_next_word_that_is_not_a_filler_in_its_statement():
    assert denied("the man does not wear a hat and waves") == ["wear"]
    assert denied("nobody speaks while the dog isn't barking loudly at the door") == ["speaks", "barking"]
    assert denied("it is not a big deal") == ["big"] and denied("she no longer sings") == ["sings"]
    assert denied("no one sings") == ["sings"] and denied("a lack of light") == ["light"]
    assert denied("i don t know") == ["know"] and denied("she dont care") == ["care"]  # apostrophe lost
    assert denied("she not only sings but dances") == [] and denied("not and then sings") == []
    # a sentence that ends after its negation denies nothing in the next one
    assert denied("oh it is not crowd cheers", [0, 0, 0, 0, 1, 1]) == []


def test_polarity_contradiction_needs_the_word_said_the_other_way_everywhere_in_the_region():
    def found(claim, text):
        c, t = words(claim), words(text)
        return polarity_contradictions(c, t, range(len(t)), STOPWORDS, loose_stem)

    assert found("the man smiles", "the man does not smile")[0].found_word == "smile"
    assert found("no music plays", "music plays in the background")[0].claim_word == "music"
    assert found("the dog does not bark", "the dog barks")[0].category == "negation"
    assert found("the man does not smile", "the man does not smile at all") == []
    # said both ways in the region, or not said: no contradiction
    assert found("the man smiles", "the man does not smile then smiles") == []
    assert found("the man smiles", "the man does not wave") == []


@pytest.mark.parametrize("encoder", ["wordllama", "minilm"])
def test_a_denied_event_is_incorrect_and_a_denial_elsewhere_is_not(encoder):
    events = ["A man wears a red hat.", "A dog barks at the door."]
    right = judge_one("A man wears a red hat. A dog barks at the door.", events, encoder=encoder)
    denied = judge_one("A man is not wearing a red hat. A dog barks at the door.", events, encoder=encoder)
    nearby = judge_one(
        "A man wears a red hat and does not smile. The cat is silent, and a dog barks at the door.",
        events,
        encoder=encoder,
    )
    assert right.incorrect == [] and denied.incorrect == [events[0]] and events[0] not in denied.missed
    assert nearby.incorrect == []
    # the event denies, the caption asserts
    assert judge_one("The dog barks loudly.", ["The dog does not bark."], encoder=encoder).incorrect == [
        "The dog does not bark."
    ]


def test_a_denied_statement_against_the_reference_is_one_hallucination():
    reference = "A woman plays the piano on a stage. A black cat sleeps by the window."
    events = ["A black cat sleeps by the window"]
    j = judge_one(
        "The woman does not play the piano on the stage. A black cat sleeps by the window.", events, reference
    )
    assert j.incorrect == [] and len(j.hallucinated) == 1 and "not" in j.hallucinated[0]
    # seen through an event, the denial is incorrect only, not counted twice
    j = judge_one("A black cat does not sleep by the window. A woman plays the piano on a stage.", events, reference)
    assert j.incorrect == events and j.hallucinated == []


def test_order_parts_split_a_claim_at_its_one_order_word():
    assert order_parts(words("a clang is heard followed by a male voice"), STOPWORDS) == (
        ["a", "clang", "is", "heard"],
        ["a", "male", "voice"],
    )
    assert order_parts(words("he sits down then stands then leaves"), STOPWORDS) is None  # two order words
    assert order_parts(words("she waves while he then sings"), STOPWORDS) is None  # "while": at once
    assert order_parts(words("then he sits"), STOPWORDS) is None  # nothing before the order word


def test_order_contradiction_reads_where_each_part_is_told():
    def found(first, then, text):
        t = words(text)
        return order_contradiction(words(first), words(then), t, range(len(t)), STOPWORDS, loose_stem)

    assert found("the man opens the door", "sits down", "the man sits down then opens the door").category == "order"
    assert found("the man opens the door", "sits down", "the man opens the door and sits down") is None
    # told on both sides of it, or in a region that tells things out of order: not read as reversed
    assert found("a dog barks", "a man shouts", "a man walks in a dog barks then the man shouts") is None
    assert found("a voice says candle", "a voice says apple", "a voice says apple then candle then apple") is None
    assert found("the man opens the door", "sits down", "the man sits down after he opens the door") is None


@pytest.mark.parametrize("encoder", ["wordllama", "minilm"])
def test_an_event_told_in_the_wrong_order_is_incorrect(encoder):
    event = ["The man opens the door, then sits down on the sofa."]
    right = judge_one("The man opens the door and then sits down on the sofa.", event, encoder=encoder)
    wrong = judge_one("The man sits down on the sofa, then opens the door.", event, encoder=encoder)
    assert right.incorrect == [] and right.missed == [] and wrong.incorrect == event
    # quoted speech is what someone says, not an order of events
    quoted = ["He says 'open the door, then sit down'."]
    assert judge_one("He says 'sit down, then open the door'.", quoted, encoder=encoder).incorrect == []


def test_caption_statements_in_the_wrong_order_are_a_hallucination():
    reference = "A woman picks up a red guitar, then plays a slow song. A dog sleeps on the rug."
    events = ["A woman picks up a red guitar.", "She plays a slow song.", "A dog sleeps on the rug."]
    right = judge_one(reference, events, reference)
    wrong = judge_one(
        "A woman plays a slow song. Then she picks up a red guitar. A dog sleeps on the rug.", events, reference
    )
    assert right.hallucinated == [] and right.incorrect == []
    assert wrong.missed == [] and len(wrong.hallucinated) == 1 and "guitar" in wrong.hallucinated[0]


def test_probe_generators_deny_and_reorder_statements():
    text = "The man is wearing a hat near the door. Two dogs are running on the grass. She waves, then smiles."
    out, denied = negate_statements(text, 2, random.Random(0))
    assert len(denied) == 2 and out.count(" not ") == 2 and out.replace("not ", "") == text
    out, changed = reorder_statements(text, 2, random.Random(0))
    assert changed == ["Smiles, then she waves."] and out.endswith(" Smiles, then she waves.")
    assert reorder_statements('He says "go, then stop".', 1, random.Random(0))[1] == []


@pytest.mark.parametrize("probe", ["negated", "reordered"])
def test_denied_and_reordered_statements_raise_hall_on_most_test_set_references(probe):
    if not DATA.exists():
        pytest.skip(f"{DATA} not available")
    rows = [json.loads(line) for line in DATA.read_text().splitlines() if line.strip()]
    rng = random.Random(2)
    make = negate_statements if probe == "negated" else reorder_statements
    own_items, probe_items = [], []
    for v in rows[7::5]:  # the first 12 references that have statements to change
        text, changes = make(v["reference"], 2, rng)
        if changes and len(probe_items) < 12:
            own_items.append(
                JudgeItem(id=v["id"], caption=v["reference"], events=v["events"], reference=v["reference"])
            )
            probe_items.append(JudgeItem(id=v["id"], caption=text, events=v["events"], reference=v["reference"]))
    assert len(probe_items) == 12
    own = [j.rates() for j in offline.judge(own_items, encoder_name="wordllama")]
    changed = [j.rates() for j in offline.judge(probe_items, encoder_name="wordllama")]
    rises = [c["hall_rate"] > o["hall_rate"] for c, o in zip(changed, own)]
    assert np.mean(rises) >= 0.75, rises
