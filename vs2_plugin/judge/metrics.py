"""Caption metrics as pure functions: event rates (App. E), repetition rate (App. B),
unnatural patterns (Table 2) and the median of K judging passes.

Reading of Appendix B used here (the appendix leaves it open): the text is split into
phrases at punctuation; a phrase is normalised (lower case, inner whitespace collapsed,
surrounding quotes dropped); for a phrase that occurs k > 1 times, the words of its 2nd..k-th
occurrences are "recurring phrase words" -- the first occurrence is not counted, so a text
with no repeated phrase scores 0 and a text that is one phrase said twice scores 0.5.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

#: Phrase boundaries for the repetition rate: sentence and clause punctuation (ASCII and CJK).
_PHRASE_SPLIT = re.compile(r"[.,;:!?\n\r\u3002\uff0c\uff1b\uff1a\uff01\uff1f\u3001]+")
_WORD = re.compile(r"[^\W_]+(?:['\u2019-][^\W_]+)*", re.UNICODE)


def words(text: str) -> list[str]:
    """Words of ``text`` (letters/digits, inner apostrophes and hyphens kept)."""
    return _WORD.findall(text)


def phrases(text: str) -> list[str]:
    """Normalised phrases of ``text`` split at punctuation (App. B step 1); empty ones dropped."""
    out = []
    for raw in _PHRASE_SPLIT.split(text):
        phrase = " ".join(w.lower() for w in words(raw))
        if phrase:
            out.append(phrase)
    return out


def repetition_rate(text: str) -> float:
    """App. B repetition rate: words of repeated phrase occurrences (first one not counted) / words.

    >>> repetition_rate("A dog runs. A dog runs. A cat sits.")
    0.3333333333333333
    """
    counts = Counter(phrases(text))
    total_words = repeated = 0
    for phrase, k in counts.items():
        n = phrase.count(" ") + 1  # phrases are words joined by single spaces
        total_words += k * n
        if k > 1:
            repeated += (k - 1) * n
    return repeated / total_words if total_words else 0.0


def event_rates(n_events: int, n_missed: int, n_incorrect: int, n_hallucinated: int) -> dict[str, float]:
    """Miss / Incorrect / Hallucination / Hall / Total as fractions of the reference events.

    Paper App. E and Table 1: each count is divided by the number of reference events,
    Hall = Incorrect + Hallucination, Total = Miss + Hall. Counts are clamped so that
    missed + incorrect <= events (an event is missed or wrong, not both) and Hall <= 1, keeping
    every reported rate in [0, 1]; Total can reach 2. An item with no events has no rates.
    """
    if n_events <= 0:
        raise ValueError(f"event rates need at least one reference event, got n_events={n_events}")
    missed = min(max(n_missed, 0), n_events)
    incorrect = min(max(n_incorrect, 0), n_events - missed)
    hallucinated = min(max(n_hallucinated, 0), n_events - incorrect)
    miss = missed / n_events
    hall = (incorrect + hallucinated) / n_events
    return {
        "miss_rate": miss,
        "incorrect_rate": incorrect / n_events,
        "hallucination_rate": hallucinated / n_events,
        "hall_rate": hall,
        "total_rate": miss + hall,
    }


def median_pass_index(totals: Sequence[float]) -> int:
    """Index of the pass whose total error is the median (App. E: 7 passes, median reported).

    For an even number of passes the lower median is taken; ties keep the earliest pass.
    """
    if not totals:
        raise ValueError("median of zero passes")
    order = sorted(range(len(totals)), key=lambda i: (totals[i], i))
    return order[(len(order) - 1) // 2]


# ---------------------------------------------------------------- unnatural patterns (Table 2)

#: Section headers a caption should not contain ("Video Description:", "#Audio:", "## Visual").
_HEADER = re.compile(
    r"(?im)^[ \t]*(?:#{1,6}[ \t]*\S.*|\*\*[^*\n]{1,60}\*\*:?[ \t]*$"
    r"|(?:video|visual|audio|speech|scene|sound)(?:[ \t]+(?:description|content|caption|details?|track))?[ \t]*(?:#\d+)?[ \t]*:)"
)
_SPECIAL_TOKEN = re.compile(r"<\|[^|>]{1,40}\|>|<(?:video|audio|image)>|</?s>|\[(?:PAD|UNK|CLS|SEP)\]")
#: Scripts that should not appear in an English caption outside quoted speech.
_FOREIGN_SCRIPTS = ("CJK", "HIRAGANA", "KATAKANA", "HANGUL", "CYRILLIC", "ARABIC", "HEBREW", "THAI", "DEVANAGARI")
#: Latin words in a row that, beside foreign letters, make a caption one that switches script
SWITCH_LATIN_WORDS = 3
_LATIN_PHRASE = re.compile(r"[A-Za-z]+(?:[^\w]{1,3}[A-Za-z]+){%d}" % (SWITCH_LATIN_WORDS - 1))
#: A quotation: "...", “...”, ‘...’ or '...' (an apostrophe between letters inside it, as in
#: 'I don't know', is not its end; one after a letter cannot open it: the dog's bowl). The one
#: pattern of the judges for quoted speech and on-screen text.
QUOTE = re.compile(
    r"\"[^\"\n]*\"|\u201c[^\u201d\n]*\u201d|\u2018[^\u2019\n]*\u2019"
    r"|(?<![A-Za-z])'(?:[^'\n]|(?<=[A-Za-z])'(?=[A-Za-z]))*'(?![A-Za-z])"
)
_REPEATED_TOKEN = re.compile(r"(?i)\b(\w+)(?:\W+\1\b){3,}")
_REPEATED_NGRAM = re.compile(r"(?i)((?:\b\w+\W+){2,8}?)\1{2,}")
_ASCII_WORD = re.compile(r"\w+", re.ASCII)


def _foreign_characters(text: str) -> list[str]:
    found = []
    for ch in QUOTE.sub(" ", text):
        if ord(ch) < 0x0370:
            continue
        name = unicodedata.name(ch, "")
        if any(name.startswith(s) or f" {s}" in name for s in _FOREIGN_SCRIPTS):
            found.append(ch)
    return found


def _switches_script(text: str) -> bool:
    """Whether ``text`` switches between Latin words and another script outside quoted speech:
    foreign letters beside a phrase of :data:`SWITCH_LATIN_WORDS` Latin words in a row (a caption
    wholly in another language is not a switch, nor one that names "iPhone" or "Big Ben")."""
    return bool(_foreign_characters(text)) and _LATIN_PHRASE.search(QUOTE.sub(" ", text)) is not None


def is_mostly_latin(text: str) -> bool:
    """Whether at least 80 % of the letters of ``text`` are ASCII (False for a text without letters)."""
    letters = [ch for ch in text if ch.isalpha()]
    return bool(letters) and sum(ch.isascii() for ch in letters) / len(letters) >= 0.8


def _may_repeat_ngram(text: str) -> bool:
    """False only when ``_REPEATED_NGRAM`` cannot match ``text`` (a cheap pre-check for ASCII).

    A match is a run of 2-8 whole words said 3+ times in a row, so the text's word sequence
    holds some t[i] == t[i+L] == t[i+2L] with 2 <= L <= 8 (ASCII: case-insensitive = lower case).
    """
    if not text.isascii():
        return True
    t = _ASCII_WORD.findall(text.lower())
    return any(a == b == c for n in range(2, 9) for a, b, c in zip(t, t[n:], t[2 * n :]))


def unnatural_patterns(text: str, rep_rate: float | None = None) -> list[str]:
    """Names of the unnatural patterns found in a caption (paper Table 2, App. I).

    ``header``: markdown/section headers ("Video Description:", "#Audio:", "## ...");
    ``special_token``: leaked template tokens; ``foreign_script``: a caption that switches
    between Latin letters and CJK/Cyrillic/... ones outside quoted speech (a few foreign
    characters in an English caption, or an English start going on in Chinese; a caption wholly
    in one script is not flagged); ``repeated_token``: one word 4+ times in a
    row; ``repeated_ngram``: a 2-8 word run repeated 3+ times in a row; ``replacement_char``:
    U+FFFD from broken decoding; ``high_repetition``: App. B repetition rate above 0.3
    (``rep_rate``, when the caller already has :func:`repetition_rate` of ``text``).
    """
    found = []
    if _HEADER.search(text):
        found.append("header")
    if _SPECIAL_TOKEN.search(text):
        found.append("special_token")
    # an all-ASCII text has no foreign-script character (they are all >= U+0370)
    if not text.isascii() and _switches_script(text):
        found.append("foreign_script")
    unquoted = QUOTE.sub(" ", text)  # quoted speech may legitimately repeat ("no, no, no, no")
    if _REPEATED_TOKEN.search(unquoted):
        found.append("repeated_token")
    if _may_repeat_ngram(unquoted) and _REPEATED_NGRAM.search(unquoted):
        found.append("repeated_ngram")
    if "\ufffd" in text:
        found.append("replacement_char")
    if (repetition_rate(text) if rep_rate is None else rep_rate) > 0.3:
        found.append("high_repetition")
    return found


def is_unnatural(text: str) -> bool:
    """True when :func:`unnatural_patterns` finds anything."""
    return bool(unnatural_patterns(text))


def unnatural_rate(texts: Iterable[str]) -> float:
    """Fraction of captions with at least one unnatural pattern (Table 2 "% Unnatural Rate")."""
    texts = list(texts)
    return sum(is_unnatural(t) for t in texts) / len(texts) if texts else 0.0


def summarize(rows: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Mean rates over judged items (failed items are counted apart, never as zero errors).

    ``rows`` are :meth:`Judgment.to_dict` outputs. Returns percentages-free fractions plus
    ``n_items``, ``n_ok``, ``n_failed`` and ``unnatural_rate``. A rate is the mean over every judged
    item or None (not measured): a judge that measures a count on some items only would otherwise
    give each column the mean of other items (a Total below its Miss); ``partly_measured`` then
    says on how many items each such rate was measured.
    """
    rows = list(rows)
    ok = [r for r in rows if r.get("status") == "ok"]
    keys = ("miss_rate", "incorrect_rate", "hallucination_rate", "hall_rate", "total_rate", "rep_rate")
    out: dict[str, Any] = {"n_items": len(rows), "n_ok": len(ok), "n_failed": len(rows) - len(ok)}
    for key in keys:
        values = [r[key] for r in ok if r.get(key) is not None]
        out[key] = sum(values) / len(values) if values and len(values) == len(ok) else None
        if values and len(values) < len(ok):
            out.setdefault("partly_measured", {})[key] = len(values)
    out["unnatural_rate"] = sum(bool(r.get("unnatural")) for r in ok) / len(ok) if ok else None
    return out
