"""Wrong details outside the hand-written lexicon: two words that name different things of one kind.

:mod:`vs2_plugin.judge.details` knows colours, counts, genders, positions and a few dozen objects
and actions by hand. A caption gets many more details wrong: "holds a keyboard" for "holds a
microphone", "his foot" for "his hand", "a metal table" for "a wooden table", "the floor is wet"
for "the floor is dry". This module reads such pairs from a table built from WordNet 3.0
(``data/word_kinds.json.gz``, built by ``scripts/build_word_kinds.py``, which says how):

* two nouns or verbs are of one kind when a hypernym of one of their most frequent senses is
  at most two steps above both, and deep enough in its hierarchy not to be a generic class
  ("entity", "object", "act"); two adjectives when their head adjectives are antonyms;
* they are *different* things of that kind unless they share a sense (synonyms: "mic" /
  "microphone") or one is a kind of the other ("dog" / "poodle", "cut" / "chop"): telling an
  event in more general or more specific words is not a wrong detail.

:func:`kind_contradictions` is the entry point: a claim word that the text does not have where the
claim is told, and a word there that is another thing of its kind and that no claim word explains.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable, Collection, Sequence
from functools import lru_cache
from pathlib import Path

from vs2_plugin.judge.details import Contradiction

TABLE = Path(__file__).resolve().parent / "data" / "word_kinds.json.gz"
CONTEXT = 2  # words on each side that must be the same for a word told in another's place to count
NEAR = 1  # another thing of the kind counts next to a content word of the claim only


@lru_cache(maxsize=1)
def _table() -> dict[str, dict[str, dict[str, frozenset[int]]]]:
    with gzip.open(TABLE, "rt", encoding="utf-8") as f:
        raw = json.load(f)["words"]
    return {w: {pos: {k: frozenset(v) for k, v in e.items()} for pos, e in entry.items()} for w, entry in raw.items()}


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
    table = _table()
    a, b = table.get(claim_word), table.get(text_word)
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
    table = _table()
    a, b = table.get(claim_word), table.get(text_word)
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


def related(a: str, b: str) -> bool:
    """Whether two words of the table share a sense or one is the other's kind ("centre" / "center",
    "animal" / "dog"): the one told in the other's words."""
    table = _table()
    x, y = table.get(a), table.get(b)
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
