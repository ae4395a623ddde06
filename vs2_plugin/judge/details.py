"""Contradicting details: a claim and the text it is aligned to name different values of one attribute.

Embeddings rate "red"/"blue" or "man"/"woman" as near neighbours, so an alignment score cannot
tell a wrong detail from a right one. This module holds a lexicon of detail categories
(gender, colour, count, position, camera framing, size, age, light, speed, posture/action, objects...);
each category lists VALUES, and each value is a set of interchangeable words. A claim
contradicts a text region when the claim names a value, the region names no word of that
value, and the region names another value of the same category (paper App. E: an event
described with a wrong detail is "incorrect", not covered).

Pure functions over lower-cased word lists; :func:`contradictions` is the entry point. What a
statement asserts or denies, and in which order it tells things, is read by
:mod:`vs2_plugin.judge.statements`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

# category -> values; each value: words that mean the same for this purpose (plural forms included)
_LEXICON: dict[str, list[str]] = {
    "gender": [
        "woman women girl girls lady ladies female females mother mothers daughter daughters sister sisters wife "
        "queen princess actress grandmother grandma mom mum aunt niece bride waitress businesswoman policewoman "
        "girlfriend",
        "man men boy boys gentleman gentlemen male males father fathers son sons brother brothers husband king "
        "prince actor grandfather grandpa dad uncle nephew groom waiter businessman policeman guy guys boyfriend",
    ],
    "colour": [
        "red reddish crimson scarlet maroon",
        "blue bluish navy turquoise teal cyan",
        "green greenish olive lime",
        "yellow yellowish",
        "orange",
        "purple violet lavender lilac",
        "pink pinkish",
        "black blackish",
        "white whitish",
        "gray grey greyish grayish silver",
        "brown brownish beige tan",
        "gold golden",
    ],
    "count": [
        "one single alone lone solo",
        "two both pair couple twin twins",
        "three trio",
        "four",
        "five",
        "six",
        "seven",
        "eight",
        "nine",
        "ten",
        "several multiple many numerous",
    ],
    "side": ["left leftmost", "right rightmost"],
    "vertical": [
        "top upper above atop overhead upward upwards",
        "bottom lower below beneath underneath downward downwards",
    ],
    "depth": ["front foreground", "behind rear background"],
    "inout": ["inside indoor indoors interior", "outside outdoor outdoors exterior"],
    "size": ["big large huge giant enormous massive", "small little tiny miniature"],
    "height": ["tall", "short"],
    "age": [
        "young younger youthful child children kid kids baby babies toddler teenage teenager",
        "old older elderly aged senior",
    ],
    # the camera's framing ("wide" is left out: "a wide smile" is no wide shot)
    "shot": ["close-up close-ups closeup", "wide-angle aerial panoramic"],
    "light": ["day daytime daylight sunny", "night nighttime nocturnal"],
    "brightness": ["bright brightly", "dark dim dimly"],
    "speed": ["slow slowly", "fast quickly quick rapidly rapid swiftly"],
    "posture": [
        "sit sits sitting sat seated",
        "stand stands standing stood",
        "lie lies lying lay",
        "kneel kneels kneeling knelt",
    ],
    "gait": ["walk walks walking walked", "run runs running ran jog jogs jogging"],
    "door": ["open opens opening opened", "close closes closing closed shut shuts"],
    "motion": ["enter enters entering entered", "exit exits exiting exited leave leaves leaving"],
    "mood": [
        "smile smiles smiling smiled laugh laughs laughing laughed happy cheerful",
        "cry cries crying cried sad frown frowns frowning upset",
    ],
    "push": ["push pushes pushing pushed", "pull pulls pulling pulled"],
    "exchange": ["give gives giving gave handing handed", "take takes taking took receive receives receiving received"],
    "raise": [
        "raise raises raising raised lift lifts lifting lifted",
        "lower lowers lowering lowered drop drops dropping dropped",
    ],
    "begin": [
        "start starts starting started begin begins beginning began",
        "stop stops stopping stopped end ends ending ended",
    ],
    "loudness": ["loud loudly", "quiet quietly soft softly"],
    # how someone uses their voice ("says" left out: text and signs say things too)
    "voice": [
        "speak speaks speaking spoke talk talks talking talked",
        "sing sings singing sang sung",
        "whisper whispers whispering whispered",
        "shout shouts shouting shouted yell yells yelling yelled scream screams screaming screamed",
    ],
    "animal": [
        "dog dogs puppy puppies",
        "cat cats kitten kittens",
        "horse horses pony",
        "bird birds",
        "fish",
        "cow cows cattle",
        "sheep",
        "pig pigs",
        "lion lions",
        "tiger tigers",
        "bear bears",
        "monkey monkeys",
        "rabbit rabbits",
        "duck ducks",
        "chicken chickens hen hens",
        "elephant elephants",
    ],
    "vehicle": [
        "car cars",
        "truck trucks",
        "bus buses",
        "bicycle bicycles bike bikes",
        "motorcycle motorcycles motorbike",
        "boat boats ship ships",
        "airplane airplanes plane planes",
        "train trains",
        "helicopter",
    ],
    "instrument": ["guitar guitars", "piano pianos", "drum drums", "violin violins", "flute", "trumpet", "saxophone"],
    "garment": [
        "shirt shirts t-shirt blouse",
        "jacket jackets coat coats",
        "dress dresses gown",
        "hat hats cap caps",
        "pants trousers jeans",
        "skirt skirts",
        "shorts",
        "sweater hoodie",
        "suit suits",
    ],
    "footwear": ["shoes shoe sneakers", "boots boot", "sandals slippers"],
    "furniture": ["table tables desk desks", "chair chairs stool", "bed beds", "sofa couch"],
    "device": [
        "phone phones smartphone cellphone",
        "laptop laptops computer computers",
        "camera cameras",
        "television tv",
    ],
    "container": ["cup cups mug mugs", "bottle bottles", "bowl bowls", "plate plates", "box boxes"],
    "food": ["apple apples", "banana bananas", "bread", "cake", "pizza", "rice", "noodles pasta"],
    "ball": ["ball balls", "book books", "bag bags", "umbrella"],
    "opening": ["door doors", "window windows"],
    "terrain": ["beach", "forest woods", "street road", "field", "kitchen", "bedroom", "office", "classroom", "stage"],
    "weather": ["rain raining rainy", "snow snowing snowy", "sunny sunshine"],
}

# Words that name a value of a category only where no word of the lexicon names one, values in the
# lexicon's order. A pronoun tells a person's gender ("she picks up the cup" for "a man picks up the
# cup"), but a text that names "the woman" and says "he" of someone else is about a woman, and so is a
# caption that calls the one who "raises his hand" a woman.
_PRONOUNS: dict[str, list[str]] = {"gender": ["she her hers herself", "he him his himself"]}


def _word_table(categories: dict[str, list[str]]) -> dict[str, tuple[str, int]]:
    table: dict[str, tuple[str, int]] = {}
    for category, values in categories.items():
        for k, value in enumerate(values):
            for word in value.split():
                table.setdefault(word, (category, k))
    return table


@lru_cache(maxsize=1)
def lexicon() -> dict[str, tuple[str, int]]:
    """word -> (category, value index). Built once; a word belongs to one value of one category."""
    return _word_table(_LEXICON)


# A count in digits ("2 men") is the count's word; a digit not before a word ("at 1:30", "step 2 of 10",
# "$5 or 6") is no count.
_DIGITS = dict(zip("1 2 3 4 5 6 7 8 9 10".split(), "one two three four five six seven eight nine ten".split()))
_NOT_COUNTED = frozenset("and or of to the for per out off".split())


def as_count(words: Sequence[str], i: int) -> str:
    """``words[i]``, or its number word where it is a digit 1-10 set before a word ("2 men" -> "two")."""
    w = words[i]
    if w in _DIGITS and i + 1 < len(words) and len(words[i + 1]) > 2 and words[i + 1].isalpha():
        return w if words[i + 1] in _NOT_COUNTED else _DIGITS[w]
    return w


# Categories whose values are read inside a hyphenated word too ("red-scarfed", "black-and-white"); not
# the others, whose words inside compounds name something else ("push-ups", "high-five", "top-down").
_READ_IN_COMPOUNDS = frozenset({"colour"})


@lru_cache(maxsize=1 << 14)
def _compound_values(word: str) -> tuple[tuple[str, int], ...]:
    """The values of :data:`_READ_IN_COMPOUNDS` that the parts of a hyphenated word name."""
    table = lexicon()
    return tuple(table[part] for part in word.split("-") if part in table and table[part][0] in _READ_IN_COMPOUNDS)


@lru_cache(maxsize=1)
def _pronoun_table() -> dict[str, tuple[str, int]]:
    return _word_table(_PRONOUNS)


@lru_cache(maxsize=1)
def _words_and_pronouns() -> dict[str, tuple[str, int, bool]]:
    """word -> (category, value index, whether a pronoun): one lookup per word of a text."""
    return {w: (*v, False) for w, v in lexicon().items()} | {w: (*v, True) for w, v in _pronoun_table().items()}


def named_values(
    words: Sequence[str], indices: Sequence[int], polarity: Sequence[int] | None = None
) -> tuple[dict[str, dict[int, int]], dict[str, dict[int, int]]]:
    """The values that ``words[i]``, i in ``indices``, name, as category -> {value index: first
    position}: those named by lexicon words, and those named by pronouns. A pronoun of polarity 0
    (quoted, :func:`vs2_plugin.judge.statements.polarity`) is not read: what someone says names no one
    in the video.

    >>> named_values(["she", "waves", "a", "red", "flag"], range(5))
    ({'colour': {0: 3}}, {'gender': {0: 0}})
    """
    by_word: dict[str, dict[int, int]] = {}
    by_pronoun: dict[str, dict[int, int]] = {}
    table = _words_and_pronouns()
    for i in indices:
        if (entry := table.get(as_count(words, i))) is not None:
            category, value, is_pronoun = entry
            if not is_pronoun:
                by_word.setdefault(category, {}).setdefault(value, i)
            elif polarity is None or polarity[i] != 0:
                by_pronoun.setdefault(category, {}).setdefault(value, i)
        elif "-" in words[i]:
            for category, value in _compound_values(words[i]):
                by_word.setdefault(category, {}).setdefault(value, i)
    return by_word, by_pronoun


@dataclass(frozen=True)
class Contradiction:
    """``claim_word`` (value of ``category``) against ``found_word`` at ``found_index`` in the text."""

    category: str
    claim_word: str
    found_word: str
    found_index: int


def locate(
    anchors: Sequence[str], positions: dict[str, np.ndarray], n: int, width: int, min_anchors: int = 2
) -> tuple[int, int] | None:
    """Where in a text of ``n`` words a claim is told: the ``width``-word span with most distinct anchors.

    ``anchors`` are the claim's content-word stems; ``positions`` maps a stem to the positions of the text's
    words with that stem. Returns ``(start, stop)`` or ``None`` when fewer than
    ``min_anchors`` anchors (and fewer than half of them) meet in any span: the claim is not
    told anywhere in particular. The first of :func:`locate_all`'s spans.

    >>> import numpy as np
    >>> locate(["play", "guitar"], {"play": np.array([2]), "guitar": np.array([4]), "dog": np.array([7])}, 9, 4)
    (2, 6)
    """
    spans = locate_all(anchors, positions, n, width, min_anchors)
    return spans[0] if spans else None


def locate_all(
    anchors: Sequence[str], positions: dict[str, np.ndarray], n: int, width: int, min_anchors: int = 2
) -> list[tuple[int, int]]:
    """Every place a claim is told as fully as anywhere (:func:`locate`): the ``width``-word spans
    with the most distinct anchors, in text order, each starting past the one before (two people
    doing the same thing: "he holds a racket in his hand ... she holds a racket in her hand").

    >>> import numpy as np
    >>> locate_all(["hold", "racket"], {"hold": np.array([1, 11]), "racket": np.array([3, 13])}, 16, 4)
    [(1, 5), (11, 15)]
    """
    anchors = [a for a in dict.fromkeys(anchors)]
    found = [positions[a] for a in anchors if a in positions]
    if not anchors or n == 0 or len(found) < min(min_anchors, len(anchors)) or 2 * len(found) < len(anchors):
        return []
    width = min(width, n)
    # an optimal span can always start at an anchor occurrence: slide over the sorted occurrences
    occ = sorted((int(p), k) for k, pos in enumerate(found) for p in pos)
    counts: dict[int, int] = {}
    best_count, best_starts, j = 0, [], 0
    for i, (start, _) in enumerate(occ):
        while j < len(occ) and occ[j][0] < start + width:
            counts[occ[j][1]] = counts.get(occ[j][1], 0) + 1
            j += 1
        if len(counts) > best_count:
            best_count, best_starts = len(counts), [start]
        elif len(counts) == best_count and start >= best_starts[-1] + width:
            best_starts.append(start)
        k = occ[i][1]
        counts[k] -= 1
        if not counts[k]:
            del counts[k]
    if best_count < min(min_anchors, len(anchors)) or best_count * 2 < len(anchors):
        return []
    starts = dict.fromkeys(min(start, n - width) for start in best_starts)  # the last may end the text
    return [(start, start + width) for start in starts]


def contradictions(
    claim_words: Sequence[str],
    text_words: Sequence[str],
    region: Sequence[int],
    claim_polarity: Sequence[int] | None = None,
    text_polarity: Sequence[int] | None = None,
) -> list[Contradiction]:
    """Details of the claim contradicted inside ``region`` (indices into ``text_words``).

    For each claim word with a lexicon value: if the region holds no word of that value but a
    word of another value of the same category, one the claim does not name, that is a
    contradiction. A claim that names two values of a category ("a man and a woman", "blue and
    silver armor") is contradicted where one of them is missing and a third is told ("white and
    silver armor"), not where the region tells both.

    >>> [c.found_word for c in contradictions(["man", "in", "red", "shirt"], ["woman", "in", "blue", "shirt"], range(4))]
    ['woman', 'blue']
    >>> contradictions(["man", "in", "red"], ["man", "in", "red", "and", "a", "blue", "car"], range(7))
    []
    >>> [c.found_word for c in contradictions(["blue", "and", "silver"], ["white", "and", "silver"], range(3))]
    ['white']
    >>> contradictions(["blue", "and", "silver"], ["silver", "and", "blue"], range(3))
    []

    Pronouns count where no lexicon word names a gender, quoted ones not at all (:func:`named_values`;
    the polarities are :func:`vs2_plugin.judge.statements.polarity`'s, 0 for a quoted word):

    >>> [c.found_word for c in contradictions(["woman", "picks", "up", "cup"], ["he", "picks", "up", "cup"], range(4))]
    ['he']
    >>> contradictions(["woman", "picks", "up", "cup"], ["woman", "picks", "up", "his", "cup"], range(5))
    []
    """
    claim_words_values, claim_pronoun_values = named_values(claim_words, range(len(claim_words)), claim_polarity)
    if not claim_words_values and not claim_pronoun_values:
        return []
    region_words_values, region_pronoun_values = named_values(text_words, region, text_polarity)
    found = []  # (claim position, contradiction)
    for category in claim_words_values.keys() | claim_pronoun_values.keys():
        if category in claim_words_values:  # the region's pronouns count where it names the category by no word
            values = claim_words_values[category]
            told = region_words_values.get(category) or region_pronoun_values.get(category, {})
        else:  # a claim told in pronouns: the region's pronouns count beside its words
            values = claim_pronoun_values[category]
            told = region_pronoun_values.get(category, {}) | region_words_values.get(category, {})
        missing = [position for value, position in values.items() if value not in told]
        others = [i for value, i in told.items() if value not in values]
        if missing and others:
            k, j = min(missing), min(others)
            found.append((k, Contradiction(category, claim_words[k], text_words[j], j)))
    if not any(c.category == "gender" for _, c in found):
        found += pronouns_in_place(claim_words, text_words, region, claim_polarity, text_polarity)
    return [c for _, c in sorted(found, key=lambda f: f[0])]


def _between(words: Sequence[str], i: int) -> tuple[str, str] | None:
    """The words on either side of ``words[i]``, or ``None`` at either end."""
    return (words[i - 1], words[i + 1]) if 0 < i < len(words) - 1 else None


def pronouns_in_place(
    claim_words: Sequence[str],
    text_words: Sequence[str],
    region: Sequence[int],
    claim_polarity: Sequence[int] | None = None,
    text_polarity: Sequence[int] | None = None,
) -> list[tuple[int, Contradiction]]:
    """A gendered pronoun of the claim told as one of the other gender in its very place: between
    the same two words, in the region, where the region does not also tell the claim's pronoun there.

    Read whatever words name the person ("the man raises *her* hand" for "the man raises *his*
    hand"): between the same words it is the same role, so the text tells another gender for it,
    while elsewhere a pronoun may be someone else's. Quoted pronouns (polarity 0) are not read.
    Returns ``(claim position, contradiction)``, at most one.

    >>> [(k, c.found_word) for k, c in pronouns_in_place(["man", "raises", "his", "hand"], ["man", "raises", "her", "hand"], range(4))]
    [(2, 'her')]
    >>> pronouns_in_place(["man", "raises", "his", "hand"], ["she", "raises", "her", "hand", "he", "raises", "his", "hand"], range(8))
    []
    """
    table = _pronoun_table()

    def read(words: Sequence[str], polarity: Sequence[int] | None, i: int) -> bool:
        return words[i] in table and (polarity is None or polarity[i] != 0)

    for k, w in enumerate(claim_words):
        if not read(claim_words, claim_polarity, k) or (around := _between(claim_words, k)) is None:
            continue
        same_place = [i for i in region if read(text_words, text_polarity, i) and _between(text_words, i) == around]
        if same_place and all(table[text_words[i]][1] != table[w][1] for i in same_place):
            return [(k, Contradiction("gender", w, text_words[same_place[0]], same_place[0]))]
    return []
