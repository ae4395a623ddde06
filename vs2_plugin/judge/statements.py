"""What a statement says beyond its words: whether it asserts or denies them, and in which order
it tells two things. Both are details a judge must see (paper App. E: an event told with a wrong
detail is "incorrect"), and word-alignment scores miss both: "the man does not smile" shares every
content word with "the man smiles", "Y, then X" with "X, then Y".

* Polarity: a claim contradicts a text region that denies a word the claim asserts, or asserts
  one it denies (:func:`negated`, :func:`polarity`, :func:`polarity_contradictions`).
* Order: a claim that tells two things in an order ("opens the door, then sits down") contradicts
  a text that tells them the other way round (:func:`order_parts`, :func:`order_contradiction`).

Pure functions over lower-cased word lists, like :mod:`vs2_plugin.judge.details`, whose
:class:`~vs2_plugin.judge.details.Contradiction` they return.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from vs2_plugin.judge.details import Contradiction

#: words that deny the word after them: "does not speak", "no music", "without a hat", "a lack of light"
NEGATIONS = frozenset(
    "not no never cannot nobody nothing none neither nor nowhere without lack lacks lacking absence".split()
    + "dont doesnt didnt isnt arent wasnt werent cant couldnt wouldnt shouldnt wont hasnt havent hadnt aint".split()
)
#: what comes before a "t" split off a contraction whose apostrophe was lost ("don t know")
_CONTRACTED = frozenset(
    "don doesn didn isn aren wasn weren can couldn wouldn shouldn won hasn haven hadn ain mustn needn".split()
)
#: words a denial reaches over to the word it denies ("is not a big deal", "no longer visible")
_SCOPE_SKIP = frozenset(
    "a an the be been being to of any so very really even at all quite too longer more one seen shown heard".split()
)
#: the denied word is at most this many words after the negation
_SCOPE_WORDS = 3
#: a denial ends where another statement starts ("does not smile and waves": "waves" is asserted)
SCOPE_BREAKS = frozenset(
    "and but or while then as when because although though which who whom that where whereas yet so after before "
    "until once".split()
)
#: the word after a negation that makes it no denial ("not only")
_NOT_A_DENIAL = frozenset(["only", "just", "merely"])


def is_negation(words: Sequence[str], i: int) -> bool:
    """Whether ``words[i]`` denies what follows ("not", "isn't", "dont", the "t" of "don t")."""
    w = words[i]
    return w in NEGATIONS or w.endswith("n't") or (w == "t" and i > 0 and words[i - 1] in _CONTRACTED)


def negated(
    words: Sequence[str], sentence: Sequence[int] | None = None, quoted: Sequence[bool] | None = None
) -> list[bool]:
    """Which words a negation denies: the first word after it that is not a filler
    (:data:`_SCOPE_SKIP`, or an adverb in "-ly": "not properly replaced"), within
    :data:`_SCOPE_WORDS` words, in the same sentence (``sentence``: the sentence index of each
    word, when known) and before a word that starts another statement. One word: "does not smile
    and waves" denies "smile"; a sentence cut off ("it's not. Crowd cheers") denies nothing after
    it. Quoted words (``quoted``) are what someone says or writes: they neither deny ("'Oh, no. I'll
    get it'") nor are denied.

    >>> negated("the man does not wear a hat and waves".split())
    [False, False, False, False, True, False, False, False, False]
    >>> negated("no longer visible".split()), negated("not only sings".split())
    ([False, False, True], [False, False, False])
    >>> negated("it is not crowd cheers".split(), [0, 0, 0, 1, 1])
    [False, False, False, False, False]
    """
    out = [False] * len(words)
    for i in range(len(words)):
        if not is_negation(words, i) or (i + 1 < len(words) and words[i + 1] in _NOT_A_DENIAL):
            continue
        if quoted is not None and quoted[i]:
            continue
        for j in range(i + 1, min(len(words), i + 1 + _SCOPE_WORDS)):
            if words[j] in SCOPE_BREAKS or (sentence is not None and sentence[j] != sentence[i]):
                break
            if quoted is not None and quoted[j]:
                break
            if words[j] not in _SCOPE_SKIP and not words[j].endswith("ly") and not is_negation(words, j):
                out[j] = True
                break
    return out


def polarity(
    words: Sequence[str], sentence: Sequence[int] | None = None, quoted: Sequence[bool] | None = None
) -> list[int]:
    """Each word's polarity: 1 asserted, -1 denied (:func:`negated`), 0 quoted (no polarity).

    >>> polarity("he does not smile".split())
    [1, 1, 1, -1]
    """
    denied = negated(words, sentence, quoted)
    return [0 if quoted is not None and quoted[i] else (-1 if denied[i] else 1) for i in range(len(words))]


def polarity_contradictions(
    claim_words: Sequence[str],
    text_words: Sequence[str],
    region: Sequence[int],
    stopwords: frozenset[str],
    key: Callable[[str], str],
    text_polarity: Sequence[int] | None = None,
    claim_polarity: Sequence[int] | None = None,
) -> list[Contradiction]:
    """A claim word that the text region says with the opposite polarity, wherever the region has it.

    ``key`` maps a word to what counts as the same word (a stem); the polarities are
    :func:`polarity` of each side, computed here when not given. A claim word the region does not
    have is no contradiction (less said is not the opposite said), nor is one the region has both
    ways, nor a quoted word. At most one contradiction, of category ``negation``: its
    ``found_index`` is the region's occurrence of the claim word.

    >>> stop = frozenset(["the", "does", "a"])
    >>> [c.found_word for c in polarity_contradictions("the man smiles".split(),
    ...     "the man does not smile".split(), range(5), stop, lambda w: w.rstrip("s"))]
    ['smile']
    >>> polarity_contradictions("the man does not smile".split(), "the man does not smile".split(),
    ...     range(5), stop, lambda w: w)
    []
    """
    if claim_polarity is None:
        claim_polarity = polarity(claim_words)
    if text_polarity is None:
        text_polarity = polarity(text_words)
    if min(claim_polarity, default=1) >= 0 and all(text_polarity[j] >= 0 for j in region):
        return []
    for i, word in enumerate(claim_words):
        if word in stopwords or is_negation(claim_words, i) or not claim_polarity[i]:
            continue
        k = key(word)
        found = [j for j in region if text_polarity[j] and key(text_words[j]) == k]
        if found and all(text_polarity[j] != claim_polarity[i] for j in found):
            return [Contradiction("negation", word, text_words[found[0]], found[0])]
    return []


#: words after which a claim tells what happened next ("X, then Y", "X before Y", "X, followed by Y")
FORWARD = frozenset(["then", "afterwards", "afterward", "later", "subsequently", "finally", "followed", "before"])
#: words that tell things out of their order ("Y after X", "before X, Y") or at once ("X while Y"): a
#: claim or a text region with one is not read for order
UNORDERED = frozenset(
    [
        "after",
        "before",
        "while",
        "whilst",
        "as",
        "when",
        "whenever",
        "until",
        "during",
        "meanwhile",
        "simultaneously",
        "same",
        "once",
        "since",
    ]
)


#: how far apart, in words, two things told the other way round still count as told reversed
ORDER_GAP = 30


def order_parts(words: Sequence[str], stopwords: frozenset[str]) -> tuple[list[str], list[str]] | None:
    """A claim's two parts in the order it tells them happened: the words before its one order word
    (:data:`FORWARD`) and the words after it; ``None`` when it has no such word, more than one, or a
    word that tells things out of order (:data:`UNORDERED`), or a part without content words.

    >>> order_parts("the man opens the door and then sits down".split(), frozenset(["the", "and"]))
    (['the', 'man', 'opens', 'the', 'door', 'and'], ['sits', 'down'])
    >>> order_parts("he sits down after opening the door".split(), frozenset(["he", "the"])) is None
    True
    """
    marks = [i for i, w in enumerate(words) if w in FORWARD]
    if len(marks) != 1 or any(w in UNORDERED for i, w in enumerate(words) if i != marks[0]):
        return None
    m = marks[0]
    first, then = list(words[:m]), list(words[m + 1 :])
    if then[:1] == ["by"]:  # "followed by"
        then = then[1:]
    if not any(w not in stopwords for w in first) or not any(w not in stopwords for w in then):
        return None
    return first, then


def _occurrence_spans(positions: list[int], text_words: Sequence[str], key: Callable[[str], str]) -> list[tuple]:
    """(first, last) position of each distinct word among ``positions``."""
    spans: dict[str, tuple[int, int]] = {}
    for j in positions:
        k = key(text_words[j])
        spans[k] = (min(j, spans[k][0]), j) if k in spans else (j, j)
    return list(spans.values())


def order_contradiction(
    first: Sequence[str],
    then: Sequence[str],
    text_words: Sequence[str],
    region: Sequence[int],
    stopwords: frozenset[str],
    key: Callable[[str], str],
) -> Contradiction | None:
    """The region tells ``then`` before ``first``. Each pair of a word only ``first`` has and a word
    only ``then`` has votes: *reversed* when every occurrence of the ``then`` word comes before
    every occurrence of the ``first`` word, at most :data:`ORDER_GAP` words before and with no word
    between them that tells things out of order (:data:`UNORDERED`: "sits down after he opens the
    door"); *in order* when every occurrence of the ``first`` word comes before every one of the
    ``then`` word; nothing when their occurrences interleave (a word told before and after:
    "apple ... candle ... apple" tells "candle, then apple" too). Reversed wins when it has more
    votes; so a subject that only ``first`` names ("the man opens the door, then sits down"
    against "the man sits down, then opens the door") is outvoted by the words that moved. At
    least half of each side's words must be in the region. ``key`` maps a word to what counts as
    the same word.

    >>> order_contradiction(["man", "opens", "door"], ["sits", "down"],
    ...     "the man sits down then opens the door".split(), range(8), frozenset(["the"]), str)
    Contradiction(category='order', claim_word='sits', found_word='sits', found_index=2)
    >>> order_contradiction(["man", "opens", "door"], ["sits", "down"],
    ...     "the man opens the door then sits down".split(), range(8), frozenset(["the"]), str) is None
    True
    """
    own_first = {key(w) for w in first if w not in stopwords and w not in FORWARD}
    own_then = {key(w) for w in then if w not in stopwords and w not in FORWARD}
    own_first, own_then = own_first - own_then, own_then - own_first
    if not own_first or not own_then:
        return None
    at_first = [j for j in region if key(text_words[j]) in own_first]
    at_then = [j for j in region if key(text_words[j]) in own_then]
    seen_first = {key(text_words[j]) for j in at_first}
    seen_then = {key(text_words[j]) for j in at_then}
    if 2 * len(seen_first) < len(own_first) or 2 * len(seen_then) < len(own_then) or not at_first or not at_then:
        return None
    first_spans, then_spans = _occurrence_spans(at_first, text_words, key), _occurrence_spans(at_then, text_words, key)
    unordered = [j for j in region if text_words[j] in UNORDERED]
    reversed_votes = sum(
        t[1] < f[0] <= t[1] + ORDER_GAP and not any(t[1] < j < f[0] for j in unordered)
        for f in first_spans
        for t in then_spans
    )
    in_order_votes = sum(f[1] < t[0] for f in first_spans for t in then_spans)
    if reversed_votes <= in_order_votes:
        return None
    j = at_then[0]
    claim_word = next(w for w in then if key(w) == key(text_words[j]))
    return Contradiction("order", claim_word, text_words[j], j)
