"""The exact judge of synthetic clips: hand-worked verdicts, and its registration as a plugin."""

from __future__ import annotations

from importlib import import_module, metadata

import pytest
import tomllib

from tests.support.paths import REPO
from vs2_plugin import plugins
from vs2_plugin.judge.config import JudgeConfig
from vs2_plugin.judge.runner import extract_events, judge_items
from vs2_plugin.synth import judge as exact
from vs2_plugin.synth.grammar import Event
from vs2_plugin.synth.judge import judge_caption, longest_ordered, wrong_attributes

EVENTS = [  # the atomic events of one clip, in time order (the tone is at the square's time)
    "A red square appears at the top left.",
    "At the same time, a high tone sounds.",
    'A voice says "apple".',
    "The red square moves to the centre.",
    "A burst of noise is heard.",
    "The red square disappears.",
]
REFERENCE = (
    "The video shows coloured shapes on a dark background. A red square pops up at the upper left. "
    'Meanwhile, a high beep is heard. Then someone says "apple". Next, the red square glides to the middle. '
    "A short hiss is heard. After that, the red square vanishes."
)


def _verdict(caption: str, events=EVENTS):
    r = judge_caption(events, caption)
    return r.missed, r.incorrect, r.hallucinated


def test_reference_caption_is_perfect():
    assert _verdict(REFERENCE) == ([], {}, [])


def test_dropped_events_are_missed():
    caption = (
        'A red square appears at the top left. Then someone says "apple". Then the red square moves to the centre.'
    )
    assert _verdict(caption) == ([1, 4, 5], {}, [])


def test_one_wrong_attribute_is_incorrect_not_missed():
    caption = (
        'A blue square appears at the top left. At the same time, a low tone sounds. A voice says "tiger". '
        "The red square moves to the bottom right. A burst of noise is heard. The red square disappears."
    )
    assert _verdict(caption) == ([], {0: ["colour"], 1: ["pitch"], 2: ["word"], 3: ["position"]}, [])


def test_unstated_attribute_counts_as_wrong():
    caption = (
        'A red square appears at the top left. At the same time, a tone sounds. A voice says "apple". '
        "The red square moves to the centre. A burst of noise is heard. The square disappears."
    )
    assert _verdict(caption) == ([], {1: ["pitch"], 5: ["colour"]}, [])


def test_two_wrong_attributes_is_another_event():
    # a blue circle at the top left is not the red square: the square is missed, the circle made up
    caption = (
        'A blue circle appears at the top left. At the same time, a high tone sounds. A voice says "apple". '
        "The red square moves to the centre. A burst of noise is heard. The red square disappears."
    )
    assert _verdict(caption) == ([0], {}, ["A blue circle appears at the top left."])


def test_told_out_of_order_is_incorrect():
    # hand-worked: caption steps speech 0, appear 1, tone 1, move 2, noise 3, disappear 4;
    # reference steps appear 0, tone 0, speech 1, ...: keeping speech would break five other matches
    caption = (
        'A voice says "apple". Then a red square appears at the top left. At the same time, a high tone '
        "sounds. Then the red square moves to the centre. A burst of noise is heard. The red square disappears."
    )
    assert _verdict(caption) == ([], {2: ["order"]}, [])


def test_same_time_events_may_be_told_in_either_order():
    caption = (
        'A high tone sounds. At the same time, a red square appears at the top left. A voice says "apple". '
        "The red square moves to the centre. A burst of noise is heard. The red square disappears."
    )
    assert _verdict(caption) == ([], {}, [])


def test_hallucinated_statements_are_reported_as_told():
    caption = REFERENCE + ' A green circle appears at the bottom right. Someone says "rocket". A low tone sounds.'
    missed, incorrect, hallucinated = _verdict(caption)
    assert (missed, incorrect) == ([], {})
    assert hallucinated == [
        "A green circle appears at the bottom right.",
        'Someone says "rocket".',
        "A low tone sounds.",
    ]


def test_duplicate_events_match_in_order():
    events = ["A high tone sounds.", 'A voice says "seven".', "A high tone sounds."]
    assert _verdict('A high tone sounds. Someone says "seven". A high beep is heard.', events) == ([], {}, [])
    assert _verdict('Someone says "seven". A high tone sounds.', events) == ([0], {}, [])


def test_gibberish_is_neither_event_nor_hallucination():
    r = judge_caption(EVENTS, "the the the square square")
    assert (r.missed, r.incorrect, r.hallucinated) == (list(range(6)), {}, [])
    assert r.unparsed == ["the the the square square"]


def test_wrong_attributes_and_longest_ordered_by_hand():
    red_sq = Event("appear", "red", "square", "top left")
    assert wrong_attributes(red_sq, Event("appear", "red", "square", "centre")) == ["position"]
    assert wrong_attributes(red_sq, Event("appear", "blue", "circle", "top left")) is None
    assert wrong_attributes(red_sq, Event("move", "red", "square", "top left")) is None
    assert wrong_attributes(Event("noise"), Event("noise")) == []
    assert sorted(longest_ordered([(0, 0), (0, 2), (1, 1), (2, 3)])) == [0, 2, 3]
    assert sorted(longest_ordered([(0, 0), (1, 0), (2, 0)])) == [0, 1, 2]
    assert longest_ordered([]) == set()


# ------------------------------------------------------------------------------ as a plugin


@pytest.fixture()
def pm():
    manager = plugins.build_plugin_manager(entry_points=[])
    manager.register(exact, name="synth_exact")
    return manager


def test_registered_and_judged_through_the_hooks(pm):
    assert "synth_exact" in plugins.registered_judges(pm)
    config = JudgeConfig(judge="synth_exact", cache_path=None, show_progress=False)
    dropped = "A red square appears at the top left. A green circle appears at the centre."
    items = [
        {"id": "ref", "caption": REFERENCE, "events": EVENTS},
        {"id": "dropped", "caption": dropped, "events": EVENTS, "task": "local"},
        {"id": "bad", "caption": "x", "events": ["The sky is blue."]},
    ]
    ref, drop, bad = judge_items(items, config, pm=pm)
    assert ref.rates()["total_rate"] == 0.0 and ref.judge == "synth_exact"
    assert drop.missed == EVENTS[1:] and drop.hallucinated == ["A green circle appears at the centre."]
    assert drop.rates()["miss_rate"] == pytest.approx(5 / 6) and drop.rates()["hall_rate"] == pytest.approx(1 / 6)
    assert drop.event_scores == [1.0, 0, 0, 0, 0, 0]
    assert not bad.ok and "'The sky is blue.'" in bad.error
    # the offline judge still answers its own name on the same manager
    assert "offline" in plugins.registered_judges(pm)


def test_events_extracted_from_a_reference(pm):
    config = JudgeConfig(judge="synth_exact", cache_path=None, show_progress=False)
    assert extract_events([REFERENCE], config, pm=pm) == [EVENTS]
    judged = judge_items([{"id": "v", "caption": REFERENCE, "reference": REFERENCE}], config, pm=pm)
    assert judged[0].n_events == 6 and judged[0].rates()["total_rate"] == 0.0


def test_a_reference_outside_the_grammar_fails_saying_why(pm):
    config = JudgeConfig(judge="synth_exact", cache_path=None, show_progress=False)
    (judged,) = judge_items([{"id": "v", "caption": "A dog barks.", "reference": "A dog barks."}], config, pm=pm)
    assert not judged.ok and "no event of the synthetic-clip grammar" in judged.error


@pytest.mark.parametrize(
    "reference, missing",
    [("A red square appears.", "position"), ("The circle disappears.", "colour"), ("Someone speaks.", "word")],
)
def test_a_reference_event_without_an_attribute_fails_naming_it(pm, reference, missing):
    # never a traceback, nor an event told with "None" for what the reference leaves out
    config = JudgeConfig(judge="synth_exact", cache_path=None, show_progress=False)
    (judged,) = judge_items([{"id": "v", "caption": reference, "reference": reference}], config, pm=pm)
    assert not judged.ok and f"does not state the {missing}" in judged.error
    # the same for events given as they are
    (judged,) = judge_items([{"id": "v", "caption": reference, "events": [reference]}], config, pm=pm)
    assert not judged.ok and f"does not state the {missing}" in judged.error


def test_declared_as_an_entry_point_of_the_vs2_group():
    eps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["entry-points"][plugins.ENTRY_POINT_GROUP]
    assert eps["synth_exact"] == "vs2_plugin.synth.judge"
    ep = metadata.EntryPoint(name="synth_exact", value=eps["synth_exact"], group=plugins.ENTRY_POINT_GROUP)
    assert import_module(ep.value) is exact
    manager = plugins.build_plugin_manager(entry_points=[ep])
    assert manager.has_plugin("synth_exact") and "synth_exact" in plugins.registered_judges(manager)


def test_doctests():
    import doctest

    from vs2_plugin.synth import generate

    assert doctest.testmod(exact).failed == 0 and doctest.testmod(generate).failed == 0
