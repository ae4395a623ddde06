"""The events of synthetic clips and the caption grammar that tells them and reads them back.

An :class:`Event` is one atomic fact with a time:

==========  ===========================  ===============================================
kind        attributes                   canonical sentence
==========  ===========================  ===============================================
appear      colour, shape, position      A red square appears at the top left.
move        colour, shape, position      The red square moves to the bottom right.
disappear   colour, shape                The red square disappears.
tone        pitch                        A high tone sounds.
noise       (none)                       A burst of noise is heard.
speech      word                         A voice says "apple".
==========  ===========================  ===============================================

Captions tell events in time order, one clause each; an event at the same time as the one
before it is introduced by a simultaneity phrase ("At the same time, ..."). Captions may use
the synonyms listed in :data:`SYNONYMS` (the generator varies its wording with them).

Reading back (:func:`parse_caption`) is tolerant: case, punctuation, word order inside a clause
and every synonym of the grammar are accepted; a clause with no event verb is not an event
(it is returned as unparsed, e.g. "The video shows coloured shapes on a dark background.").
An attribute the clause does not state is ``None``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

COLOURS = ("red", "green", "blue", "yellow", "purple", "white")
SHAPES = ("square", "circle", "triangle", "diamond")
POSITIONS = ("top left", "top right", "bottom left", "bottom right", "centre")
PITCHES = ("low", "medium", "high")
WORDS = ("apple", "river", "seven", "garden", "window", "candle", "rocket", "pencil", "tiger", "banana")
VISUAL_KINDS = ("appear", "move", "disappear")
AUDIO_KINDS = ("tone", "noise", "speech")
KINDS = VISUAL_KINDS + AUDIO_KINDS
#: attributes that identify each kind of event (compared by the judge)
ATTRIBUTES = {
    "appear": ("colour", "shape", "position"),
    "move": ("colour", "shape", "position"),
    "disappear": ("colour", "shape"),
    "tone": ("pitch",),
    "noise": (),
    "speech": ("word",),
}

#: Wordings the generator may use; the first one is canonical. Keys: kinds, attribute values,
#: and the connectors ("then": next time step, "same": the same time as the previous event).
SYNONYMS: dict[str, tuple[str, ...]] = {
    "appear": ("appears", "shows up", "pops up"),
    "move": ("moves", "slides", "glides"),
    "disappear": ("disappears", "vanishes", "fades away"),
    "tone": ("tone sounds", "beep is heard", "tone plays"),
    "noise": ("A burst of noise is heard", "A short hiss is heard", "A crackle of static is heard"),
    "speech": ("A voice says", "Someone says", "A voice speaks the word"),
    "top left": ("top left", "upper left", "top-left corner"),
    "top right": ("top right", "upper right", "top-right corner"),
    "bottom left": ("bottom left", "lower left", "bottom-left corner"),
    "bottom right": ("bottom right", "lower right", "bottom-right corner"),
    "centre": ("centre", "center", "middle"),
    "circle": ("circle", "disc"),
    "diamond": ("diamond", "rhombus"),
    "square": ("square",),
    "triangle": ("triangle",),
    "low": ("low",),
    "medium": ("medium", "mid-pitched"),
    "high": ("high",),
    "then": ("Then", "Next,", "After that,", "Later,"),
    "same": ("At the same time,", "Simultaneously,", "Meanwhile,"),
    "first": ("First,", "At the start,", "In the beginning,"),
}

# --------------------------------------------------------------------------- reading back

_VERBS = {  # clause keyword (regex) -> kind
    "appear": r"\b(?:appears?|appeared|shows? up|pops? up|emerges?)\b",
    "move": r"\b(?:moves?|moved|moving|slides?|glides?|travels?|drifts?)\b",
    "disappear": r"\b(?:disappears?|disappeared|vanish(?:es)?|fades? away|fades? out)\b",
    "speech": r"\b(?:says?|said|speaks?|spoken|voice|word)\b",
    "noise": r"\b(?:noise|hiss|static|crackle|burst)\b",
    "tone": r"\b(?:tones?|beeps?|pitched|note)\b",
}
_POSITION_PATTERNS = {
    "top left": r"\b(?:top|upper)[ -]left\b",
    "top right": r"\b(?:top|upper)[ -]right\b",
    "bottom left": r"\b(?:bottom|lower)[ -]left\b",
    "bottom right": r"\b(?:bottom|lower)[ -]right\b",
    "centre": r"\b(?:centre|center|middle)\b",
}
_SAME_TIME = re.compile(r"^(?:at the same time|simultaneously|meanwhile|as this happens|at that moment|while|as)\b")
_CONNECTOR = re.compile(
    r"^(?:then|next|after that|afterwards|later|first|at the start|in the beginning|finally|and)\b[\s,]*"
)
# clause boundaries: sentence ends, semicolons, and "and"/"while"/"then" joining two statements
#: where a caption splits into sentences (after . ! ? ; and at line breaks)
SENTENCE_BREAK = re.compile(r"(?<=[.!?;])\s+|\n+")
_JOIN = re.compile(r",?\s+(?=(?:and then|and|while|then|as)\s+(?:a|an|the|someone|at the same time)\b)", re.IGNORECASE)
_QUOTED = re.compile(r"[\"\u201c\u201d']([A-Za-z]+)[\"\u201c\u201d']")


@dataclass(frozen=True)
class Event:
    """One atomic event: ``kind`` and its attributes (``None`` = not stated), at ``time`` seconds."""

    kind: str
    colour: str | None = None
    shape: str | None = None
    position: str | None = None
    pitch: str | None = None
    word: str | None = None
    time: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"event kind must be one of {KINDS}, got {self.kind!r}")

    @property
    def modality(self) -> str:
        return "visual" if self.kind in VISUAL_KINDS else "audio"

    def attrs(self) -> dict[str, str | None]:
        """The attributes that identify this kind of event (see :data:`ATTRIBUTES`)."""
        return {a: getattr(self, a) for a in ATTRIBUTES[self.kind]}

    def to_dict(self) -> dict:
        out = {"kind": self.kind, "time": self.time}
        out.update({k: v for k, v in self.attrs().items()})
        return out

    @classmethod
    def from_dict(cls, row: dict) -> Event:
        keys = ("colour", "shape", "position", "pitch", "word")
        return cls(kind=row["kind"], time=float(row.get("time", 0.0)), **{k: row.get(k) for k in keys})


@dataclass
class ParsedEvent:
    """An event read from a caption clause, with its time step (``rank``) in the caption."""

    event: Event
    rank: int
    clause: str


@dataclass
class ParsedCaption:
    events: list[ParsedEvent] = field(default_factory=list)
    unparsed: list[str] = field(default_factory=list)


def _pick(options: tuple[str, ...], rng) -> str:
    return options[0] if rng is None else options[int(rng.integers(len(options)))]


def tell(event: Event, rng=None) -> str:
    """The event as one sentence (no connector); ``rng`` varies the wording, ``None`` = canonical."""
    if event.kind in ("appear", "move", "disappear"):
        shape = _pick(SYNONYMS[event.shape], rng)
        verb = _pick(SYNONYMS[event.kind], rng)
        article = "A" if event.kind == "appear" else "The"
        text = f"{article} {event.colour} {shape} {verb}"
        if event.kind != "disappear":
            where = _pick(SYNONYMS[event.position], rng)
            text += f" {'at' if event.kind == 'appear' else 'to'} the {where}"
        return text + "."
    if event.kind == "tone":
        pitch = _pick(SYNONYMS[event.pitch], rng)
        return f"A {pitch} {_pick(SYNONYMS['tone'], rng)}."
    if event.kind == "noise":
        return _pick(SYNONYMS["noise"], rng) + "."
    return f'{_pick(SYNONYMS["speech"], rng)} "{event.word}".'


def tell_events(events: list[Event], rng=None, intro: str | None = None) -> str:
    """A caption telling ``events`` (sorted by time) in order, with connectors.

    An event at the same time as the previous one gets a simultaneity phrase, a later one a
    "then" phrase (or none, when ``rng`` says so); ``intro`` is an optional first sentence.
    """
    parts = [intro] if intro else []
    prev_time = None
    for k, ev in enumerate(events):
        sentence = tell(ev, rng)
        if prev_time is not None and ev.time == prev_time:
            connector = _pick(SYNONYMS["same"], rng)
        elif k == 0:
            connector = _pick(SYNONYMS["first"], rng) if rng is not None and rng.random() < 0.5 else ""
        else:
            connector = _pick(SYNONYMS["then"], rng) if rng is None or rng.random() < 0.8 else ""
        if connector:
            sentence = f"{connector} {sentence[0].lower()}{sentence[1:]}"
        parts.append(sentence)
        prev_time = ev.time
    return " ".join(parts)


def atomic_events(events: list[Event]) -> list[str]:
    """Canonical atomic-event strings in time order; an event at the same time as the one
    before it starts with "At the same time," (so the list alone fixes the time order)."""
    out, prev_time = [], None
    for ev in events:
        s = tell(ev)
        if prev_time is not None and ev.time == prev_time:
            s = f"{SYNONYMS['same'][0]} {s[0].lower()}{s[1:]}"
        out.append(s)
        prev_time = ev.time
    return out


def split_clauses(text: str) -> list[str]:
    """Sentences, then statements joined by "and" / "while" / "then" inside a sentence."""
    out = []
    for sentence in SENTENCE_BREAK.split(text or ""):
        for clause in _JOIN.split(sentence):
            clause = clause.strip(" ,")
            if clause:
                out.append(clause)
    return out


def _find(patterns: dict[str, str], text: str) -> list[tuple[int, str]]:
    hits = []
    for value, pattern in patterns.items():
        hits += [(m.start(), value) for m in re.finditer(pattern, text)]
    return sorted(hits)


def _word_pattern(options: tuple[str, ...]) -> str:
    return r"\b(?:" + "|".join(re.escape(o) for o in options) + r")\b"


_COLOUR_PATTERNS = {c: _word_pattern((c,) + (("violet",) if c == "purple" else ())) for c in COLOURS}
_SHAPE_PATTERNS = {
    s: _word_pattern(SYNONYMS[s] + ({"circle": ("disk", "dot"), "square": ("box",)}.get(s, ()))) for s in SHAPES
}
_PITCH_PATTERNS = {"low": r"\b(?:low|deep)\b", "medium": r"\b(?:medium|mid)\b", "high": r"\b(?:high|shrill)\b"}


def parse_clause(clause: str) -> tuple[Event | None, bool]:
    """(event told by the clause or ``None``, whether it says "at the same time as before")."""
    text = clause.lower().strip()
    text = re.sub(r"[\u2018\u2019]", "'", text)
    same = False
    for _ in range(3):  # connectors can stack: "and then", "then, at the same time"
        m = _SAME_TIME.match(text)
        if m:
            same = True
            text = text[m.end() :].lstrip(" ,")
            continue
        m = _CONNECTOR.match(text)
        if m and m.end() > 0:
            text = text[m.end() :]
            continue
        break
    kind = None
    quoted = _QUOTED.search(clause)
    for k, pattern in _VERBS.items():  # order matters: a shape verb wins over "voice"/"tone"
        if re.search(pattern, text):
            kind = k
            break
    if kind == "speech" or (kind is None and quoted):
        word = quoted.group(1).lower() if quoted else next((w for w in WORDS if re.search(rf"\b{w}\b", text)), None)
        return Event("speech", word=word), same
    if kind is None:
        return None, same
    if kind in ("tone", "noise"):
        if kind == "tone":
            pitches = _find(_PITCH_PATTERNS, text)
            return Event("tone", pitch=pitches[0][1] if pitches else None), same
        return Event("noise"), same
    colours = _find(_COLOUR_PATTERNS, text)
    shapes = _find(_SHAPE_PATTERNS, text)
    position = None
    positions = _find(_POSITION_PATTERNS, text)
    if kind == "move":
        to = re.search(r"\b(?:to|towards|toward|into)\b", text)
        after = [p for at, p in positions if to and at > to.start()]
        position = after[0] if after else (positions[-1][1] if positions else None)
    elif kind == "appear" and positions:
        position = positions[0][1]
    return Event(
        kind, colour=colours[0][1] if colours else None, shape=shapes[0][1] if shapes else None, position=position
    ), same


def parse_caption(text: str) -> ParsedCaption:
    """Every event a caption tells, with its time step: a clause that says "at the same time"
    shares the step of the event before it, any other event starts the next step."""
    out = ParsedCaption()
    rank = -1
    for clause in split_clauses(text):
        event, same = parse_clause(clause)
        if event is None:
            out.unparsed.append(clause)
            continue
        if not (same and rank >= 0):
            rank += 1
        out.events.append(ParsedEvent(event, rank, clause))
    return out
