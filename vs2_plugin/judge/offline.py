"""The offline judge (built-in default plugin): deterministic, CPU only, no network.

Coverage of an event (paper App. E "missed"): five features of how the event's words align with the
caption's (:mod:`vs2_plugin.judge.alignment`) give the event score in [0, 1]; an event scoring below
``options.miss_threshold`` is missed.

Incorrect (App. E): an event that the caption tells (located by the event's non-detail
words) with a contradicting detail there (another colour, count, gender, position, posture,
object... see :mod:`vs2_plugin.judge.details`; or, for a word that lexicon lacks, another thing of
its kind by WordNet, "his foot" for "his hand", :mod:`vs2_plugin.judge.kinds`), with the opposite polarity ("the man does not
smile" for "the man smiles"; quoted words carry none, :func:`polarity_of`), or, for an event that
tells two things in an order ("opens the door, then sits down"), in the other order, is
``incorrect`` rather than missed or covered; so is a told event of speech or on-screen text whose
quoted words the caption mostly lacks (:func:`quote_share`: "says 'banana'" told as "says 'garden'").

Hallucination: the caption is cut into clauses (statements); each clause with at least three
content words is scored like an event against the reference caption (or, without one, the
joined event list). A clause is hallucinated when its support is below
``options.support_threshold`` or when it contradicts the reference on a detail or a polarity
that no incorrect event already accounts for; a statement that tells two things in the other
order than the reference ("Y, then X"; "Y. Then X.", :func:`clause_order_parts`) is one more,
short ones included. One unsupported clause counts once, so Hall =
(incorrect + hallucinated) / events is capped at 1 by :func:`metrics.event_rates`.

Memory is bounded: items are judged in chunks of :data:`CHUNK`; every text of a chunk is
encoded once (clauses reuse the caption's word vectors) and dropped after the chunk.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from vs2_plugin import hookimpl
from vs2_plugin.errors import ConfigError
from vs2_plugin.judge.alignment import (
    STOPWORDS,
    batch_features,
    loose_stem,
    score_features,
    stem,
    stem_positions,
    stem_set,
)
from vs2_plugin.judge.details import Contradiction, as_count, contradictions, lexicon, locate_all
from vs2_plugin.judge.encoders import (
    WORD,
    Encoded,
    get_encoder,
    normal_word,
    resolve_encoder_name,
    split_sentences,
    words_of,
)
from vs2_plugin.judge.kinds import kind_contradictions
from vs2_plugin.judge.metrics import QUOTE, is_mostly_latin
from vs2_plugin.judge.registry import Judge
from vs2_plugin.judge.statements import (
    FORWARD,
    NEGATIONS,
    is_negation,
    order_contradiction,
    order_parts,
    polarity,
    polarity_contradictions,
)
from vs2_plugin.judge.types import JudgeItem, Judgment

NAME = "offline"
MIN_CLAUSE_CONTENT_WORDS = 3
SPAN_MARGIN = 3  # words read on each side of where a claim is located, for its details
MIN_QUOTE_SHARE = 0.5  # a told event whose quoted words the caption has less than this of is incorrect
CHUNK = 16  # items encoded together; bounds memory whatever the number of items
MISS_THRESHOLD = 0.5  # an event scored below it is missed
SUPPORT_THRESHOLD = 0.5  # a caption statement supported below it is hallucinated

# Clause boundaries inside a sentence: ; : and a comma before a linking word.
_CLAUSE_SPLIT = re.compile(
    r"\s*[;:]\s+|,\s+(?=(?:and|while|as|but|then|before|after|which|where|when|followed|with|whereas|"
    r"although|though|creating|showing|indicating|suggesting|adding)\b)",
    re.IGNORECASE,
)


def quoted_words(text: str) -> list[str]:
    """Content words inside the quotes of ``text`` (quoted speech, on-screen text)."""
    return [w for quote in QUOTE.findall(text) for w in words_of(quote) if w not in STOPWORDS]


def quote_share(event: str, caption_stems: frozenset[str]) -> float:
    """Share of an event's quoted content words that the caption has (by stem); 1 for an event
    that quotes nothing.

    Quoted words are a detail of an event of speech or on-screen text: a caption in which "a man
    says 'Where did you get a vacuum?'" becomes "he says 'I made coffee'" tells the event with a
    wrong detail (incorrect, as a wrong colour is), however close the rest of the wording; one that
    reports the words without quotes ("he asks where she got the vacuum") keeps most of them.
    """
    quoted = quoted_words(event)
    if not quoted:
        return 1.0
    return sum(stem(w) in caption_stems for w in quoted) / len(quoted)


def split_clauses(text: str) -> list[str]:
    """Clauses of a caption: sentences cut at ; : and at commas before linking words."""
    clauses = []
    for sentence in split_sentences(text):
        clauses.extend(c.strip(" ,;:") for c in _CLAUSE_SPLIT.split(sentence))
    return [c for c in clauses if c]


def _content_word_count(text: str) -> int:
    return sum(1 for w in words_of(text) if w not in STOPWORDS)


def clause_spans(encoded: Encoded) -> list[tuple[int, int]]:
    """Word ranges of the clauses of an encoded caption (clauses reuse its word vectors)."""
    spans = []
    starts = np.flatnonzero(np.r_[True, encoded.sent[1:] != encoded.sent[:-1]]) if len(encoded.sent) else []
    for start in starts:
        sentence = encoded.sentences[int(encoded.sent[start])]
        stop = start + int((encoded.sent == encoded.sent[start]).sum())
        pos = int(start)
        for clause in _CLAUSE_SPLIT.split(sentence):
            n = len(words_of(clause))
            end = min(pos + n, stop)
            if end > pos:
                spans.append((pos, end))
            pos = end
    return spans


def claim_regions(claim_words: list[str], text_words: list[str], text_stems: dict[str, np.ndarray]) -> list[range]:
    """Where in the text a claim is told, located by its anchor words: every place that holds as
    many of them as any (empty: nowhere in particular).

    Anchors are the claim's content words (stems, matched verbatim); a swapped detail is one
    anchor that does not match, so the span is still found when at least half of them meet.
    The span is a bit wider than the claim, which lets word order change.
    """
    table = lexicon()
    anchors = [
        stem(as_count(claim_words, i))
        for i, w in enumerate(claim_words)
        if w not in STOPWORDS and not is_negation(claim_words, i)
    ]
    # a claim whose only other content word is one anchor ("a man waves") is located by that word
    plain = {stem(w) for w in claim_words if w not in STOPWORDS and w not in table}
    spans = locate_all(
        anchors,
        text_stems,
        len(text_words),
        width=max(8, 3 * len(claim_words) // 2),
        min_anchors=2 if len(plain) >= 2 else 1,
    )
    # the span starts at an anchor; a detail often comes just before it ("a white cat")
    return [range(max(0, a - SPAN_MARGIN), min(len(text_words), b + SPAN_MARGIN)) for a, b in spans]


@lru_cache(maxsize=1)
def _never_read_by_kind() -> frozenset[str]:
    """Words :func:`kinds.kind_contradictions` never reads: stopwords and negations (polarity's)."""
    return STOPWORDS | NEGATIONS


def _lexicon_words_decided(claim_words: list[str], text_words: list[str], region: range) -> set[str]:
    """The claim's lexicon words whose detail category the region names too: the lexicon reads those
    (it knows that "lady" tells "girl"), not the word kinds. A lexicon word whose category the region
    does not name is left to the kinds: "a piano" for "a dog" is no value of a category of the dog's."""
    table = lexicon()
    named = {table[text_words[i]][0] for i in region if text_words[i] in table}
    return {w for w in claim_words if w in table and table[w][0] in named}


def detail_contradictions(
    claim_words: list[str],
    text_words: list[str],
    text_stems: dict[str, np.ndarray],
    text_polarity: list[int],
    claim_polarity: list[int],
) -> list[Contradiction]:
    """Wrong details of a claim where the text tells it (:func:`claim_regions`; none where one of
    the places it is told has none). Three kinds: another
    value of a detail of the lexicon (:func:`details.contradictions`), another thing of the kind of a
    word the lexicon lacks (:func:`kinds.kind_contradictions`) and the opposite polarity
    (:func:`statements.polarity_contradictions`; the polarities are :func:`polarity_of` of each
    side, computed once per text).
    """
    found: list[Contradiction] = []
    for k, region in enumerate(claim_regions(claim_words, text_words, text_stems)):
        here = _region_contradictions(claim_words, text_words, region, text_polarity, claim_polarity)
        if not here:  # told rightly somewhere: one who tells it wrongly elsewhere is someone else
            return []
        found = found if k else here
    return found


def _region_contradictions(
    claim_words: list[str], text_words: list[str], region: range, text_polarity: list[int], claim_polarity: list[int]
) -> list[Contradiction]:
    skip = _never_read_by_kind()
    found = contradictions(claim_words, text_words, region, claim_polarity, text_polarity)
    table = lexicon()
    if any(w in table for w in claim_words) and (decided := _lexicon_words_decided(claim_words, text_words, region)):
        skip = skip | decided
    found += kind_contradictions(claim_words, text_words, region, stem, skip, STOPWORDS)
    if min(text_polarity, default=1) >= 0 and min(claim_polarity, default=1) >= 0:
        return found
    return found + polarity_contradictions(
        claim_words, text_words, region, STOPWORDS, loose_stem, text_polarity, claim_polarity
    )


def quoted_mask(text: str) -> list[bool]:
    """For each word of ``text`` (:func:`words_of`), whether it stands inside quotes (:data:`QUOTE`)."""
    mask, pos = [], 0
    for m in QUOTE.finditer(text):
        mask += [False] * len(words_of(text[pos : m.start()])) + [True] * len(words_of(m.group(0)))
        pos = m.end()
    return mask + [False] * len(words_of(text[pos:]))


_OPENING, _CLOSING = "\"'`\u201c\u2018(", "\"'`\u201d\u2019)"


def statement_texts(text: str, encoded: Encoded, spans: list[tuple[int, int]]) -> list[str]:
    """Words ``start:stop`` of ``encoded`` for each span, as ``text`` writes them (case, inner
    punctuation, a quote that opens or closes them), so that a report quotes the caption.

    Where the encoder's words are not those of ``text`` (a sentence cut at the encoder's length),
    the words are joined with spaces.

    >>> text = 'A dog runs. Then a cat, at 3:30 pm, sleeps. "Hi," says Bo.'
    >>> statement_texts(text, Encoded(words_of(text), None, None, None, []), [(3, 11), (11, 14)])
    ['Then a cat, at 3:30 pm, sleeps', '"Hi," says Bo']
    """
    found = list(WORD.finditer(text))
    if [normal_word(m.group(0)) for m in found] != encoded.tokens:
        return [" ".join(encoded.tokens[a:b]) for a, b in spans]
    out = []
    for a, b in spans:
        start, end = found[a].start(), found[b - 1].end()
        if start > 0 and text[start - 1] in _OPENING:
            start -= 1
        if end < len(text) and text[end] in _CLOSING:
            end += 1
        out.append(text[start:end])
    return out


def polarity_of(text: str, encoded: Encoded) -> list[int]:
    """:func:`statements.polarity` of an encoded text, with its sentences and its quoted words."""
    quoted = quoted_mask(text)
    if len(quoted) != len(encoded.tokens):  # the encoder cut the words otherwise: read no quotes
        quoted = [False] * len(encoded.tokens)
    return polarity(encoded.tokens, encoded.sent, quoted)


def order_contradictions(
    first: list[str], then: list[str], text_words: list[str], text_stems: dict[str, np.ndarray]
) -> list[Contradiction]:
    """A claim telling ``first`` then ``then``, which the text tells (:func:`claim_regions`) the other way
    round. The order is read over the whole text, not only where the claim was located: a claim
    told word for word in one place and partly in another must not be read from the other."""
    if not claim_regions(first + then, text_words, text_stems):
        return []
    found = order_contradiction(first, then, text_words, range(len(text_words)), STOPWORDS, loose_stem)
    return [found] if found else []


def _lead_length(words: list[str]) -> int:
    """How many words of a clause open it with an order word ("then", "and then", "followed by")."""
    i = 1 if words[:1] == ["and"] else 0
    if i >= len(words) or words[i] not in FORWARD or words[i] == "before":
        return 0
    return i + 2 if words[i] == "followed" and words[i + 1 : i + 2] == ["by"] else i + 1


def clause_order_parts(
    tokens: list[str], spans: list[tuple[int, int]], k: int
) -> tuple[list[str], list[str], int] | None:
    """What caption clause ``k`` tells in order: its own "X, then Y", or, when it opens with an order
    word ("Then Y", "followed by Y"), the clause before it and itself; with the caption position
    where that claim starts. ``None`` when it tells no order."""
    a, b = spans[k]
    words = tokens[a:b]
    lead = _lead_length(words)
    if not lead:
        parts = order_parts(words, STOPWORDS)
        return (*parts, a) if parts else None
    if k == 0:
        return None
    pa, pb = spans[k - 1]
    before = tokens[pa:pb]
    before = before[_lead_length(before) :]
    parts = order_parts([*before, "then", *words[lead:]], STOPWORDS)
    return (*parts, pa) if parts else None


def score_events(captions: list[str], events: list[list[str]], encoder_name: str = "auto") -> list[np.ndarray]:
    """Coverage score in [0, 1] of each event of each caption."""
    items = [JudgeItem(id=str(k), caption=c, events=list(e)) for k, (c, e) in enumerate(zip(captions, events))]
    return [np.asarray(j.event_scores) for j in judge(items, encoder_name=encoder_name)]


def _judge_chunk(items: list[JudgeItem], encoder, miss_threshold: float, support_threshold: float) -> list[Judgment]:
    supports = [it.reference if it.reference else "\n".join(it.events) for it in items]
    # every distinct text of the chunk encoded once: captions and supports split into sentences
    texts = list(dict.fromkeys([it.caption for it in items] + supports))
    encoded_texts = dict(zip(texts, encoder.encode(texts)))
    flat_events = list(dict.fromkeys(e for it in items for e in it.events))
    encoded_events = dict(zip(flat_events, encoder.encode(flat_events, split=False)))
    out = []
    for item, support in zip(items, supports):
        cap = encoded_texts[item.caption]
        cap_stems = stem_positions(cap)
        cap_polarity = polarity_of(item.caption, cap)
        scores = score_features(batch_features([encoded_events[e] for e in item.events], cap), encoder.name)
        missed, incorrect, claimed = [], [], set()
        for e, s in zip(item.events, scores):
            # told with a wrong detail: incorrect, whatever the coverage score (it is told)
            event = encoded_events[e]
            found = detail_contradictions(event.tokens, cap.tokens, cap_stems, cap_polarity, polarity_of(e, event))
            parts = None if found or QUOTE.search(e) else order_parts(event.tokens, STOPWORDS)
            if parts:  # an event that tells two things in an order (quoted speech is not read)
                found = order_contradictions(*parts, cap.tokens, cap_stems)
            if found:
                incorrect.append(e)
                claimed.update(c.found_index for c in found)
            elif s < miss_threshold:
                missed.append(e)
            elif quote_share(e, stem_set(cap)) < MIN_QUOTE_SHARE:
                incorrect.append(e)  # told, with other words quoted: a wrong detail
        ref = encoded_texts[support]
        ref_stems = stem_positions(ref)
        ref_polarity = polarity_of(support, ref)
        hallucinated: list[tuple[int, int]] = []  # word spans of the caption
        all_spans = clause_spans(cap)
        spans = [
            (k, a, b)
            for k, (a, b) in enumerate(all_spans)
            if sum(w not in STOPWORDS for w in cap.tokens[a:b]) >= MIN_CLAUSE_CONTENT_WORDS
        ]
        clauses = [cap.span(a, b) for _, a, b in spans]
        clause_support = score_features(batch_features(clauses, ref), encoder.name) if clauses else np.zeros(0)
        told_wrong = set()
        for (k, start, stop), clause, sup in zip(spans, clauses, clause_support):
            unsupported = sup < support_threshold
            if not unsupported:
                found = detail_contradictions(
                    clause.tokens, ref.tokens, ref_stems, ref_polarity, cap_polarity[start:stop]
                )
                # the clause word that contradicts is where an incorrect event already points
                own = {start + i for i, w in enumerate(clause.tokens) if any(c.claim_word == w for c in found)}
                unsupported = bool(found) and not (own & claimed)
            if unsupported:
                hallucinated.append((start, stop))
                told_wrong.add(k)
        # statements told in the other order than the reference, short ones too ("then she leaves"):
        # one each, unless counted above or an incorrect event already points there
        for k, (_, stop) in enumerate(all_spans):
            order = None if k in told_wrong else clause_order_parts(cap.tokens, all_spans, k)
            if order and not claimed & set(range(order[2], stop)):
                if order_contradictions(order[0], order[1], ref.tokens, ref_stems):
                    hallucinated.append((order[2], stop))
        out.append(
            Judgment(
                id=item.id,
                judge=NAME,
                n_events=len(item.events),
                event_scores=[float(s) for s in scores],
                missed=missed,
                incorrect=incorrect,
                hallucinated=statement_texts(item.caption, cap, hallucinated),
            )
        )
    return out


def in_another_script(events: list[str]) -> bool:
    """Whether ``events`` are written mostly in letters other than Latin ones, read outside their
    quotes (quoted speech or on-screen text may be in any script); False without any letter."""
    written = " ".join(QUOTE.sub(" ", e) for e in events)
    return any(ch.isalpha() for ch in written) and not is_mostly_latin(written)


def _foreign_part(item: JudgeItem) -> str | None:
    """Which of ``item``'s texts the judge cannot read (:func:`in_another_script`), as a message says it."""
    if in_another_script(item.events):
        return "events are"
    return "reference is" if in_another_script([item.reference or ""]) else None


def judge(
    items: list[JudgeItem],
    miss_threshold: float = MISS_THRESHOLD,
    support_threshold: float = SUPPORT_THRESHOLD,
    encoder_name: str = "auto",
    progress: bool = False,
) -> list[Judgment]:
    """Judge items offline, :data:`CHUNK` at a time (``progress``: a bar on stderr). Items without
    events, or with events or a reference :func:`in_another_script` (its stopwords, detail lexicon and word kinds
    are English ones; "一只鸟在唱歌" would be scored by what its characters share with the
    caption's), get a failed Judgment."""
    from tqdm import tqdm

    encoder = get_encoder(encoder_name)
    results: list[Judgment | None] = [None] * len(items)
    todo = []
    for i, item in enumerate(items):
        if not item.events:
            results[i] = Judgment.failed(item.id, NAME, "item has no events (and none could be extracted)")
        elif what := _foreign_part(item):
            results[i] = Judgment.failed(
                item.id, NAME, f"the offline judge reads English, and this item's {what} not in Latin letters"
            )
        else:
            todo.append(i)
    with tqdm(total=len(todo), desc="offline judge", unit="item", disable=not progress) as bar:
        for start in range(0, len(todo), CHUNK):
            idx = todo[start : start + CHUNK]
            for i, j in zip(idx, _judge_chunk([items[i] for i in idx], encoder, miss_threshold, support_threshold)):
                results[i] = j
            bar.update(len(idx))
    return results  # type: ignore[return-value]


def extract_events(reference: str) -> list[str]:
    """Offline event extraction: the reference's clauses with at least two content words.

    Quoted speech is one fact with whoever says it ("He says, 'Stop. Now.'" and "A voice says:
    'Hi.'" are one event each): quotes are set aside before cutting sentences and clauses and put
    back after. A clause too short to be a fact
    of its own (fewer than two content words) is dropped.
    """
    quotes: list[str] = []

    def park(m: re.Match) -> str:
        quotes.append(m.group(0))
        # a quote that ends its sentence ('... it."') still ends it once parked
        return f"QUOTE{len(quotes) - 1}X" + ("." if re.search(r"[.!?]\W*$", m.group(0)) else "")

    masked = QUOTE.sub(park, reference or "")
    # 'A girl's voice says: "Hello!"' is one fact: the colon that introduces a quote splits nothing
    masked = re.sub(r":\s+(?=QUOTE\d+X)", " ", masked)
    events = []
    for clause in split_clauses(masked):
        if _content_word_count(clause) >= 2 or "QUOTE" in clause:
            events.append(
                re.sub(
                    r"QUOTE(\d+)X\.?",
                    lambda m: (
                        quotes[int(m.group(1))]
                        + (
                            m.group(0)[-1]
                            if m.group(0)[-1] == "." and not re.search(r"[.!?]\W*$", quotes[int(m.group(1))])
                            else ""
                        )
                    ),
                    clause,
                )
            )
    return events


# ------------------------------------------------------------------------------ registration


ENCODERS = ("auto", "minilm", "wordllama")


@dataclass
class OfflineOptions:
    """Options of the offline judge (``judge.options`` / ``--judge-option``).

    encoder: ``auto`` (MiniLM if installed, else WordLlama), ``minilm`` or ``wordllama``.
    miss_threshold: an event whose score is below this is missed.
    support_threshold: a caption clause whose support by the reference is below this is
        counted as hallucinated.
    """

    encoder: str = "auto"
    miss_threshold: float = MISS_THRESHOLD
    support_threshold: float = SUPPORT_THRESHOLD

    def __post_init__(self) -> None:
        if self.encoder not in ENCODERS:
            raise ConfigError(f"offline judge: encoder must be one of {list(ENCODERS)}, got {self.encoder!r}")
        for name in ("miss_threshold", "support_threshold"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0.0 <= value <= 1.0:
                raise ConfigError(f"offline judge: {name} must be a number in [0, 1], got {value!r}")

    @property
    def model(self) -> str:
        """The encoder ``auto`` stands for on this machine (reports name it: the two differ in AUC)."""
        return f"{resolve_encoder_name(self.encoder)} encoder"


def _judge_captions(items, options: OfflineOptions, config) -> list[Judgment]:
    return judge(
        items, options.miss_threshold, options.support_threshold, options.encoder, progress=config.show_progress
    )


def _extract_events(references, options: OfflineOptions, config) -> list[list[str]]:
    return [extract_events(r or "") for r in references]


JUDGE = Judge(
    name=NAME,
    description="built-in offline judge: word alignment + rarity weights + detail contradictions (CPU, deterministic)",
    options=OfflineOptions,
    judge_captions=_judge_captions,
    extract_events=_extract_events,
)


@hookimpl
def vs2_register_judges(register):
    register(JUDGE)
