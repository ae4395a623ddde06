"""The exact judge of synthetic clips (``synth_exact``): a caption read back into events and
compared with the clip's atomic events, so Miss / Incorrect / Hallucination are exact.

Registered through the judge hooks exactly like a third-party judge (module
``vs2_plugin.synth.judge``, entry point ``synth_exact`` of the ``vs2`` group); ``vs2 eval
--judge synth_exact`` and ``judge: {judge: synth_exact}`` of an mrDPO config use it.

Rules (paper App. E counts, on the grammar of :mod:`vs2_plugin.synth.grammar`):

* The reference events are the clip's atomic-event strings in time order (an event at the
  same time as the one before starts with "At the same time,"); a caption is read into events
  with :func:`~vs2_plugin.synth.grammar.parse_caption`.
* A caption event and a reference event **match exactly** when kind and every attribute agree;
  they match as **incorrect** when the kind agrees and at most one attribute is wrong (an
  attribute the caption does not state counts as wrong). Matching maximises exact matches,
  then incorrect ones (an assignment problem, solved exactly), then keeps matched duplicates in
  caption order.
* **Time order**: matched events must be told in the reference's order (events at the same
  time in any order). The largest order-consistent set of matches is kept (a longest
  non-decreasing subsequence); every other matched event is incorrect for its order.
* Unmatched reference events are **missed**; unmatched caption events are **hallucinated**
  (the clause is reported). Clauses that tell no event (e.g. "The video shows shapes on a
  dark background.") are neither; they are listed as ``unparsed`` in the judgment's details.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field

import numpy as np

from vs2_plugin import hookimpl
from vs2_plugin.judge.registry import Judge
from vs2_plugin.synth.grammar import (
    Event,
    ParsedEvent,
    atomic_events,
    parse_caption,
    parse_clause,
)

NAME = "synth_exact"
EXACT_WEIGHT = 1000.0
INCORRECT_WEIGHT = 100.0


@dataclass
class ExactResult:
    """Indices into the reference events; ``incorrect`` maps an index to what is wrong
    (attribute names and/or ``"order"``); ``hallucinated`` are caption clauses."""

    n_events: int
    missed: list[int] = field(default_factory=list)
    incorrect: dict[int, list[str]] = field(default_factory=dict)
    hallucinated: list[str] = field(default_factory=list)
    matched: dict[int, int] = field(default_factory=dict)  # reference index -> caption event index
    unparsed: list[str] = field(default_factory=list)


def wrong_attributes(reference: Event, told: Event) -> list[str] | None:
    """Attributes ``told`` gets wrong, or ``None`` when it is not the same event at all
    (another kind, or more than one wrong attribute)."""
    if reference.kind != told.kind:
        return None
    wrong = [a for a, v in reference.attrs().items() if getattr(told, a) != v]
    return wrong if len(wrong) <= 1 else None


def parse_reference(events: list[str]) -> list[ParsedEvent]:
    """The reference's atomic-event strings as events with time steps; ValueError names the
    first string that is not an event of the grammar or leaves one of its attributes out."""
    out, rank = [], -1
    for text in events:
        event, same = parse_clause(text)
        if event is None:
            raise ValueError(f"reference event {text!r} is not an event of the synthetic-clip grammar")
        missing = [a for a, v in event.attrs().items() if v is None]
        if missing:  # a right caption would be judged incorrect against an attribute left out
            raise ValueError(f"reference event {text!r} does not state the {' or '.join(missing)}")
        if not (same and rank >= 0):
            rank += 1
        out.append(ParsedEvent(event, rank, text))
    return out


def longest_ordered(pairs: list[tuple[int, int]]) -> set[int]:
    """Positions (in ``pairs``) of the largest subset with no order violation.

    ``pairs`` are (reference step, caption step), sorted by reference step then caption step;
    a subset is ordered when a later reference step never has an earlier caption step, i.e.
    its caption steps are non-decreasing. Among equally large subsets, the one whose caption
    steps stay smallest is kept (patience sorting), so which of two swapped events is the
    out-of-order one is fixed, not arbitrary.

    >>> sorted(longest_ordered([(0, 1), (1, 0), (2, 2)]))
    [1, 2]
    """
    tails: list[int] = []  # tails[k]: smallest caption step ending an ordered run of length k+1
    tail_pos: list[int] = []
    parent = [-1] * len(pairs)
    for i, (_, c) in enumerate(pairs):
        k = bisect_right(tails, c)
        if k == len(tails):
            tails.append(c)
            tail_pos.append(i)
        else:
            tails[k] = c
            tail_pos[k] = i
        parent[i] = tail_pos[k - 1] if k > 0 else -1
    keep, i = set(), (tail_pos[-1] if tail_pos else -1)
    while i >= 0:
        keep.add(i)
        i = parent[i]
    return keep


def judge_events(
    reference: list[ParsedEvent], told: list[ParsedEvent], unparsed: list[str] | None = None
) -> ExactResult:
    """Compare the events a caption tells with the reference events (rules in the module doc)."""
    from scipy.optimize import linear_sum_assignment

    result = ExactResult(n_events=len(reference), unparsed=list(unparsed or []))
    n, m = len(reference), len(told)
    wrong: dict[tuple[int, int], list[str]] = {}
    if n and m:
        gain = np.zeros((n, m))
        ref_span, cap_span = max(r.rank for r in reference) or 1, max(t.rank for t in told) or 1
        for i, r in enumerate(reference):
            for j, t in enumerate(told):
                w = wrong_attributes(r.event, t.event)
                if w is None:
                    continue
                wrong[i, j] = w
                agree = len(r.event.attrs()) - len(w)
                # a small bonus for similar relative time keeps duplicates (two high tones) in order
                closeness = 1.0 - abs(r.rank / ref_span - t.rank / cap_span) / 2
                gain[i, j] = (EXACT_WEIGHT if not w else INCORRECT_WEIGHT + agree) + closeness
        rows, cols = linear_sum_assignment(gain, maximize=True)
        result.matched = {int(i): int(j) for i, j in zip(rows, cols) if (i, j) in wrong}
    pairs = sorted((reference[i].rank, told[j].rank, i) for i, j in result.matched.items())
    ordered = longest_ordered([(r, c) for r, c, _ in pairs])
    for pos, (_, _, i) in enumerate(pairs):
        reasons = list(wrong[i, result.matched[i]])
        if pos not in ordered:
            reasons.append("order")
        if reasons:
            result.incorrect[i] = reasons
    result.missed = [i for i in range(n) if i not in result.matched]
    used = set(result.matched.values())
    result.hallucinated = [told[j].clause for j in range(m) if j not in used]
    return result


def judge_caption(events: list[str], caption: str) -> ExactResult:
    """:func:`judge_events` of a caption against atomic-event strings."""
    parsed = parse_caption(caption)
    return judge_events(parse_reference(events), parsed.events, parsed.unparsed)


def extract_events(reference: str) -> list[str]:
    """The canonical atomic events a reference caption tells (its time steps kept). ValueError
    names a clause that leaves an attribute out ("The circle disappears."): an answer key states
    every attribute, and a guessed one would judge right captions wrong."""
    parsed = parse_caption(reference)
    for p in parsed.events:
        missing = [a for a, v in p.event.attrs().items() if v is None]
        if missing:
            raise ValueError(f"the reference's clause {p.clause!r} does not state the {' or '.join(missing)}")
    return atomic_events(
        [
            Event(
                p.event.kind,
                p.event.colour,
                p.event.shape,
                p.event.position,
                p.event.pitch,
                p.event.word,
                float(p.rank),
            )
            for p in parsed.events
        ]
    )


def judge(items) -> list:
    """One :class:`~vs2_plugin.judge.types.Judgment` per :class:`JudgeItem`; an item whose
    events are not of the grammar fails with a message naming the event."""
    from vs2_plugin.judge.types import Judgment

    out = []
    for item in items:
        if not item.events:
            out.append(Judgment.failed(item.id, NAME, "item has no events"))
            continue
        try:
            res = judge_caption(item.events, item.caption)
        except ValueError as exc:
            out.append(Judgment.failed(item.id, NAME, f"item {item.id!r}: {exc}"))
            continue
        scores = [0.0 if i in res.missed else (0.5 if i in res.incorrect else 1.0) for i in range(res.n_events)]
        details = {
            "incorrect": [{"event": item.events[i], "wrong": w} for i, w in sorted(res.incorrect.items())],
            "unparsed": res.unparsed,
        }
        out.append(
            Judgment(
                id=item.id,
                judge=NAME,
                n_events=res.n_events,
                event_scores=scores,
                missed=[item.events[i] for i in res.missed],
                incorrect=[item.events[i] for i in sorted(res.incorrect)],
                hallucinated=res.hallucinated,
                passes=[details],
            )
        )
    return out


# ------------------------------------------------------------------------------ hooks


@dataclass
class SynthExactOptions:
    """The exact judge has no settings: the generator's grammar is the whole answer key."""


def _judge_captions(items, options, config):
    return judge(items)


#: why a reference gives no events: this judge reads only the generator's grammar
NO_EVENTS = "the reference tells no event of the synthetic-clip grammar (is it a vs2 synth caption?)"


def _extract_events(references, options, config):
    from vs2_plugin.judge.types import Extraction

    out = []
    for r in references:
        try:
            events = extract_events(r or "")
        except ValueError as exc:
            out.append(Extraction(None, str(exc)))
            continue
        out.append(Extraction(events) if events else Extraction(None, NO_EVENTS))
    return out


@hookimpl
def vs2_register_judges(register):
    register(
        Judge(
            NAME,
            "exact judge of vs2 synth clips: reads captions back with the generator's grammar",
            SynthExactOptions,
            _judge_captions,
            _extract_events,
        )
    )
