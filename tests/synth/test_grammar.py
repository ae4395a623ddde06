"""The caption grammar of synthetic clips: telling events and reading them back (hand-worked)."""

from __future__ import annotations

import numpy as np
import pytest

from vs2_plugin.synth.grammar import (
    Event,
    atomic_events,
    parse_caption,
    parse_clause,
    split_clauses,
    tell,
    tell_events,
)

EVENTS = [
    Event("appear", colour="red", shape="square", position="top left", time=1.0),
    Event("tone", pitch="high", time=1.0),
    Event("speech", word="apple", time=2.0),
    Event("move", colour="red", shape="square", position="centre", time=3.0),
    Event("noise", time=4.0),
    Event("disappear", colour="red", shape="square", time=5.0),
]


def _strip_time(e: Event) -> Event:
    return Event(e.kind, e.colour, e.shape, e.position, e.pitch, e.word)


def test_canonical_sentences_and_atomic_events():
    assert [tell(e) for e in EVENTS] == [
        "A red square appears at the top left.",
        "A high tone sounds.",
        'A voice says "apple".',
        "The red square moves to the centre.",
        "A burst of noise is heard.",
        "The red square disappears.",
    ]
    # the tone shares the square's time: its atomic event says so, the others do not
    assert atomic_events(EVENTS)[1] == "At the same time, a high tone sounds."
    assert [a.startswith("At the same time") for a in atomic_events(EVENTS)] == [
        False,
        True,
        False,
        False,
        False,
        False,
    ]


def test_canonical_caption_reads_back_to_the_same_events_and_steps():
    parsed = parse_caption(tell_events(EVENTS, intro="The video shows coloured shapes on a dark background."))
    assert [p.event for p in parsed.events] == [_strip_time(e) for e in EVENTS]
    assert [p.rank for p in parsed.events] == [0, 0, 1, 2, 3, 4]
    assert parsed.unparsed == ["The video shows coloured shapes on a dark background."]


@pytest.mark.parametrize("seed", range(20))
def test_every_varied_wording_reads_back(seed):
    rng = np.random.default_rng(seed)
    parsed = parse_caption(tell_events(EVENTS, rng))
    assert [p.event for p in parsed.events] == [_strip_time(e) for e in EVENTS]
    assert [p.rank for p in parsed.events] == [0, 0, 1, 2, 3, 4]


@pytest.mark.parametrize(
    "clause, event, same",
    [
        ("the RED SQUARE pops up in the Upper-Left corner!", Event("appear", "red", "square", "top left"), False),
        ("At the top right, a green disc shows up", Event("appear", "green", "circle", "top right"), False),
        (
            "Then the blue rhombus slides from the centre to the lower right",
            Event("move", "blue", "diamond", "bottom right"),
            False,
        ),
        ("Meanwhile, the white triangle vanishes.", Event("disappear", "white", "triangle"), True),
        ("and then a deep beep is heard", Event("tone", pitch="low"), False),
        ("Simultaneously, a mid-pitched tone plays.", Event("tone", pitch="medium"), True),
        ("a tone sounds", Event("tone"), False),
        ("A crackle of static is heard.", Event("noise"), False),
        ("Someone says \u201cTiger\u201d.", Event("speech", word="tiger"), False),
        ("a voice speaks the word window", Event("speech", word="window"), False),
        ("while a violet box appears in the middle", Event("appear", "purple", "square", "centre"), True),
    ],
)
def test_tolerant_clause_reading(clause, event, same):
    assert parse_clause(clause) == (event, same)


def test_clauses_without_an_event_are_not_events():
    assert parse_clause("The video shows coloured shapes on a dark background.") == (None, False)
    assert parse_clause("Nothing else happens.") == (None, False)


def test_joined_statements_are_split():
    assert split_clauses('A red square appears at the top left and a high tone sounds. Then someone says "seven".') == [
        "A red square appears at the top left",
        "and a high tone sounds.",
        'Then someone says "seven".',
    ]
    parsed = parse_caption(
        "A blue circle appears at the centre while a low tone sounds, and then the blue circle disappears."
    )
    assert [(p.event.kind, p.rank) for p in parsed.events] == [("appear", 0), ("tone", 0), ("disappear", 1)]


def test_event_kind_is_checked():
    with pytest.raises(ValueError, match="'explode'"):
        Event("explode")
