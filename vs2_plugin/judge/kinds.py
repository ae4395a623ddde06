"""Wrong details outside the hand-written lexicon: words that name different things.

:mod:`vs2_plugin.judge.details` knows colours, counts, genders, positions and a few dozen objects
and actions by hand. A caption gets many more details wrong: "his foot" for "his hand", "a fox"
for "a wolf", "the floor is dry" for "the floor is wet", "a spoon" for "a knife". This module reads
such pairs from a table built from WordNet 3.0 (``data/word_kinds.tsv.gz``, built by
``scripts/build_word_kinds.py``, which says how and how its parameters were chosen):

* two nouns or verbs are of one kind (:func:`other_kind`) when a narrow hypernym (a class with
  few synsets below it: "extremity", not "device") lies a few steps above the most frequent sense
  of each; two adjectives when their head adjectives are antonyms;
* two words are different things (:func:`different_things`, weaker) when both are concrete words
  of one part of speech;
* never when they share a sense (synonyms: "mic" / "microphone") or one is a kind of the other
  ("dog" / "poodle", "cut" / "chop", :func:`related`): telling an event in other, more general or
  more specific words is not a wrong detail. Only words whose most used part of speech has a
  concrete most frequent sense are in the table: verbs of speech and thought are paraphrased too
  freely to read.

:func:`kind_contradictions` is the entry point: a claim word that the text does not tell where the
claim is told, and there another thing of its kind next to the claim's words, or another concrete
thing in its very place between the same words.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable, Collection, Sequence
from functools import lru_cache
from pathlib import Path

from vs2_plugin.judge.details import Contradiction

TABLE = Path(__file__).resolve().parent / "data" / "word_kinds.tsv.gz"
CONTEXT = 2  # words on each side that must be the same for a word told in another's place to count
NEAR = 1  # another thing of the kind counts next to a content word of the claim only


@lru_cache(maxsize=1)
def _lines() -> dict[str, str]:
    """word -> its table line, unparsed (``word<TAB>pos<TAB>kinds<TAB>senses<TAB>above``)."""
    with gzip.open(TABLE, "rt", encoding="utf-8") as f:
        lines = f.read().split("\n")[1:]  # after the header
    return {line[: line.index("\t")]: line for line in lines}


@lru_cache(maxsize=1 << 16)
def _entry(word: str) -> dict[str, dict[str, frozenset[int]]] | None:
    """A word's table entry as sets (``{pos: {"k", "s", "a"}}``), parsed when first asked for: a judge
    reads a few hundred words, the table holds 17,620."""
    line = _lines().get(word)
    if line is None:
        return None
    _, pos, *fields = line.split("\t")
    return {pos: {key: frozenset(int(i) for i in f.split(",") if i) for key, f in zip(("k", "s", "a"), fields)}}


def table_header() -> dict:
    """The table's ``source`` and the ``params`` it was built with (``scripts/build_word_kinds.py``)."""
    with gzip.open(TABLE, "rt", encoding="utf-8") as f:
        return json.loads(f.readline()[2:])


def _related(a: dict, b: dict) -> bool:
    """Whether two table entries share a sense or one is the other's kind, in a part of speech of both."""
    return any(
        a[pos]["s"] & b[pos]["s"] or a[pos]["s"] & b[pos]["a"] or b[pos]["s"] & a[pos]["a"] for pos in a if pos in b
    )


@lru_cache(maxsize=1 << 16)
def other_kind(claim_word: str, text_word: str) -> str | None:
    """The part of speech in which ``text_word`` names another thing of ``claim_word``'s kind, or ``None``.

    ``None`` also when the two are synonyms or one is a kind of the other in any sense, or when
    either word is not in the table.

    >>> other_kind("microphone", "mic") is None, other_kind("dog", "animal") is None
    (True, True)
    >>> other_kind("hand", "foot"), other_kind("wet", "dry"), other_kind("wooden", "wooden")
    ('n', 'a', None)
    """
    if claim_word == text_word:
        return None
    a, b = _entry(claim_word), _entry(text_word)
    if not a or not b or _related(a, b):
        return None
    for pos in a:
        if pos not in b:
            continue
        x, y = a[pos]["k"], b[pos]["k"]
        if pos == "a":
            # an antonym pair id * 2 + side: the same pair, the other side
            if {k // 2 for k in x} & {k // 2 for k in y} and not x & y:
                return pos
        elif x & y:
            return pos
    return None


@lru_cache(maxsize=1 << 16)
def different_things(claim_word: str, text_word: str) -> str | None:
    """The part of speech in which two concrete words name different things, or ``None``.

    Weaker than :func:`other_kind`: both words are in the table in one part of speech and neither
    is a synonym nor a kind of the other, whatever their kinds ("knife" / "spoon", which share no
    narrow class). Read only where the words around the two are the same (:func:`kind_contradictions`).

    >>> different_things("knife", "spoon"), other_kind("knife", "spoon")
    ('n', None)
    >>> different_things("sofa", "couch"), different_things("candle", "lamp"), different_things("explains", "says")
    (None, None, None)
    """
    a, b = _entry(claim_word), _entry(text_word)
    if claim_word == text_word or not a or not b or _related(a, b):
        return None
    return next((pos for pos in a if pos in b), None)


def _same_context(claim_words: Sequence[str], i: int, text_words: Sequence[str], p: int) -> bool:
    """Whether the :data:`CONTEXT` words on each side of claim word ``i`` are those around text word ``p``
    (at least ``CONTEXT + 1`` of them: a claim's first or last word has one side only)."""
    left, right = claim_words[max(0, i - CONTEXT) : i], claim_words[i + 1 : i + 1 + CONTEXT]
    if len(left) + len(right) < CONTEXT + 1:
        return False
    return list(text_words[max(0, p - len(left)) : p]) == list(left) and list(
        text_words[p + 1 : p + 1 + len(right)]
    ) == list(right)


@lru_cache(maxsize=1 << 16)
def related(a: str, b: str) -> bool:
    """Whether two words of the table share a sense or one is the other's kind ("centre" / "center",
    "animal" / "dog"): the one told in the other's words."""
    x, y = _entry(a), _entry(b)
    return bool(x and y and _related(x, y))


def kind_contradictions(
    claim_words: Sequence[str],
    text_words: Sequence[str],
    region: Sequence[int],
    stem: Callable[[str], str],
    skip: Collection[str] = (),
    function_words: Collection[str] = (),
) -> list[Contradiction]:
    """Claim words told as another thing inside ``region`` (indices into ``text_words``).

    A claim word counts when the region has no word with its stem nor one :func:`related` to it,
    and has either a word of another thing of its kind (:func:`other_kind`) next to a content word
    of the claim (:data:`NEAR`; a region is wider than its claim: a neighbouring statement's words
    are not the claim's), or, in the claim word's place between the same words
    (:func:`_same_context`: "raises his *foot* to wave" for "raises his *hand* to wave"), a word of
    another concrete thing (:func:`different_things`). The substitute shares its stem with no claim
    word (a word the claim itself explains is none). ``skip``: words not read (stopwords, words the
    detail lexicon already reads); ``function_words``: words that do not place the claim (stopwords).
    One contradiction per claim word, at the first such word.

    >>> stem = lambda w: w.rstrip("s")
    >>> [(c.claim_word, c.found_word) for c in kind_contradictions(
    ...     ["man", "raises", "hand"], ["man", "raises", "foot"], range(3), stem)]
    [('hand', 'foot')]
    >>> kind_contradictions(["man", "holds", "microphone"], ["man", "holds", "mic"], range(3), stem)
    []
    """
    claim_stems = {stem(w) for w in claim_words}
    content_stems = {stem(w) for w in claim_words if w not in function_words}
    free = [i for i in region if text_words[i] not in skip and stem(text_words[i]) not in claim_stems]
    # nearness in content words: "sleeps on the carpet" is one step, "the middle, later a blue" two
    content = [i for i in region if text_words[i] not in function_words]
    rank = {i: r for r, i in enumerate(content)}
    anchored = [rank[i] for i in content if stem(text_words[i]) in content_stems]
    near = [i for i in free if i in rank and any(abs(rank[i] - r) <= NEAR for r in anchored)]
    region_words = {text_words[i] for i in region}
    region_stems = {stem(w) for w in region_words}
    out, seen = [], set()
    for k, w in enumerate(claim_words):
        if w in skip or w in seen or stem(w) in region_stems or any(related(w, t) for t in region_words):
            continue
        found = next(
            (Contradiction(f"kind:{pos}", w, text_words[i], i) for i in near if (pos := other_kind(w, text_words[i]))),
            None,
        ) or next(
            (
                Contradiction(f"substitute:{pos}", w, text_words[i], i)
                for i in free
                if _same_context(claim_words, k, text_words, i) and (pos := different_things(w, text_words[i]))
            ),
            None,
        )
        if found:
            seen.add(w)
            out.append(found)
    return out
