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


@lru_cache(maxsize=1)
def _table() -> dict[str, dict[str, dict[str, frozenset[int]]]]:
    with gzip.open(TABLE, "rt", encoding="utf-8") as f:
        raw = json.load(f)["words"]
    return {w: {pos: {k: frozenset(v) for k, v in e.items()} for pos, e in entry.items()} for w, entry in raw.items()}


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
    if not a or not b:
        return None
    shared = [pos for pos in a if pos in b]
    for pos in shared:  # related in any sense: never a contradiction
        x, y = a[pos], b[pos]
        if x["s"] & y["s"] or x["s"] & y["a"] or y["s"] & x["a"]:
            return None
    for pos in shared:
        x, y = a[pos]["k"], b[pos]["k"]
        if pos == "a":
            # an antonym pair id * 2 + side: the same pair, the other side
            if {k // 2 for k in x} & {k // 2 for k in y} and not x & y:
                return pos
        elif x & y:
            return pos
    return None


def kind_contradictions(
    claim_words: Sequence[str],
    text_words: Sequence[str],
    region: Sequence[int],
    stem: Callable[[str], str],
    skip: Collection[str] = (),
) -> list[Contradiction]:
    """Claim words told as another thing of their kind inside ``region`` (indices into ``text_words``).

    A claim word counts when the region has no word with its stem, and has a word of another
    thing of its kind (:func:`other_kind`) that shares its stem with no claim word (a word the
    claim itself explains is not a substitute). ``skip``: words not read (stopwords, words the
    detail lexicon already reads). One contradiction per claim word, at the first such word.

    >>> stem = lambda w: w.rstrip("s")
    >>> [(c.claim_word, c.found_word) for c in kind_contradictions(
    ...     ["man", "raises", "hand"], ["man", "raises", "foot"], range(3), stem)]
    [('hand', 'foot')]
    >>> kind_contradictions(["man", "holds", "microphone"], ["man", "holds", "mic"], range(3), stem)
    []
    """
    region_stems = {stem(text_words[i]) for i in region}
    claim_stems = {stem(w) for w in claim_words}
    free = [i for i in region if text_words[i] not in skip and stem(text_words[i]) not in claim_stems]
    out = []
    for w in dict.fromkeys(claim_words):
        if w in skip or stem(w) in region_stems:
            continue
        for i in free:
            pos = other_kind(w, text_words[i])
            if pos:
                out.append(Contradiction(f"kind:{pos}", w, text_words[i], i))
                break
    return out
