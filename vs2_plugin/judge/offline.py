"""The offline judge (built-in default plugin): deterministic, CPU only, no network.

Coverage of an event (paper App. E "missed"): the event is read against the caption token by
token. Every content word of the event is aligned to its most similar caption token
(contextual MiniLM vectors, or static WordLlama vectors as fallback), weighted by how rare the
word is in general English; five features summarise the alignment:

* ``recall``: rarity-weighted mean of the best cosine of each event word over the caption,
* ``window``: the same recall inside the best window of two consecutive caption sentences
  (an event is usually told in one place),
* ``exact``: rarity-weighted share of event words found verbatim,
* ``q25``: the 25th percentile of the per-word best cosines (the weakest-covered words),
* ``sentence``: the best sentence-embedding cosine between the event and a caption sentence.

A logistic regression over the standardised features (weights in ``data/offline_weights.json``,
fitted by ``benchmarks/offline_judge_auc.py --fit``) turns them into the event score in [0, 1];
an event scoring below ``config.miss_threshold`` is missed.

Hallucination (approximate): the caption is cut into clauses; a clause with at least three
content words is scored the same way against the reference caption (or, without one, against
the joined event list); clauses below ``config.support_threshold`` are reported hallucinated.
Wrong details count as hallucinations here (as App. E does), so ``incorrect`` stays empty.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path

import numpy as np

from vs2_plugin import hookimpl
from vs2_plugin.judge.encoders import Encoded, get_encoder, split_sentences
from vs2_plugin.judge.types import JudgeItem, Judgment

NAME = "offline"
DATA_DIR = Path(__file__).resolve().parent / "data"
FEATURES = ("recall", "window", "exact", "q25", "sentence")
MIN_CLAUSE_CONTENT_WORDS = 3

STOPWORDS = frozenset(
    """a an the of in on at to and or but nor is are was were be been being am with by for from as
    that this these those it its it's their his her him he she they them there which who whom whose
    while into onto over under then than also can could may might will would shall should do does
    did has have had not no so such very just some any each both all one two appears appear seems
    seem seen shown shows show video clip scene frame frames camera image visible""".split()
)

# Clause boundaries inside a sentence: ; : and a comma before a linking word.
_CLAUSE_SPLIT = re.compile(
    r"\s*[;:]\s+|,\s+(?=(?:and|while|as|but|then|before|after|which|where|when|followed|with|whereas|"
    r"although|though|creating|showing|indicating|suggesting|adding)\b)",
    re.IGNORECASE,
)


@lru_cache(maxsize=1)
def _zipf_table() -> dict[str, float]:
    return json.loads((DATA_DIR / "rarity_en.json").read_text(encoding="utf-8"))["zipf"]


@lru_cache(maxsize=4)
def _weights(encoder_name: str) -> dict:
    table = json.loads((DATA_DIR / "offline_weights.json").read_text(encoding="utf-8"))
    if encoder_name not in table:
        raise KeyError(f"no offline judge weights for encoder {encoder_name!r}")
    entry = table[encoder_name]
    if tuple(entry["features"]) != FEATURES:
        raise ValueError(f"offline_weights.json features {entry['features']} != {FEATURES}")
    return entry


def rarity(token: str) -> float:
    """Weight of a word by rarity: 7.5 - Zipf frequency in general English, at least 0.5."""
    return max(7.5 - _zipf_table().get(token.lower(), 0.0), 0.5)


def _content_positions(tokens: list[str]) -> list[int]:
    keep = [i for i, t in enumerate(tokens) if t.isalnum() and t.lower() not in STOPWORDS]
    return keep


def alignment_features(claim: Encoded, text: Encoded) -> np.ndarray:
    """The five :data:`FEATURES` of ``claim`` (an event or clause) read against ``text``."""
    if len(text.tokens) == 0 or len(claim.tokens) == 0:
        return np.zeros(len(FEATURES), dtype=np.float32)
    keep = _content_positions(claim.tokens) or list(range(len(claim.tokens)))
    weights = np.array([rarity(claim.tokens[i]) for i in keep], dtype=np.float32)
    weights /= weights.sum()
    sim = claim.vecs[keep] @ text.vecs.T  # (claim words, text tokens)
    best = sim.max(axis=1)
    recall = float(best @ weights)
    # Best cosine per sentence (tokens are stored sentence by sentence, so runs are contiguous).
    starts = np.flatnonzero(np.r_[True, text.sent[1:] != text.sent[:-1]])
    per_sentence = np.maximum.reduceat(sim, starts, axis=1)
    if per_sentence.shape[1] > 1:
        windows = np.maximum(per_sentence[:, :-1], per_sentence[:, 1:])
    else:
        windows = per_sentence
    window = float((weights @ windows).max())
    text_tokens = {t.lower() for t in text.tokens}
    exact = float(sum(w for i, w in zip(keep, weights) if claim.tokens[i].lower() in text_tokens))
    q25 = float(np.quantile(best, 0.25))
    claim_vec = claim.sent_vecs.mean(axis=0)
    claim_vec /= max(float(np.linalg.norm(claim_vec)), 1e-8)
    sentence = float((text.sent_vecs @ claim_vec).max()) if len(text.sent_vecs) else 0.0
    return np.array([recall, window, exact, q25, sentence], dtype=np.float32)


def score_features(features: np.ndarray, encoder_name: str) -> np.ndarray:
    """Logistic-regression probability that each feature row's claim is covered."""
    w = _weights(encoder_name)
    x = (np.atleast_2d(features) - np.asarray(w["mean"])) / np.asarray(w["std"])
    z = x @ np.asarray(w["coef"]) + float(w["intercept"])
    return 1.0 / (1.0 + np.exp(-z))


def split_clauses(text: str) -> list[str]:
    """Clauses of a caption: sentences cut at ; : and at commas before linking words."""
    clauses = []
    for sentence in split_sentences(text):
        clauses.extend(c.strip(" ,;:") for c in _CLAUSE_SPLIT.split(sentence))
    return [c for c in clauses if c]


def _content_word_count(text: str) -> int:
    return sum(1 for w in re.findall(r"[A-Za-z0-9']+", text) if w.lower() not in STOPWORDS)


def score_events(captions: list[str], events: list[list[str]], encoder_name: str = "auto") -> list[np.ndarray]:
    """Coverage score in [0, 1] of each event of each caption (pure apart from the cached encoder)."""
    encoder = get_encoder(encoder_name)
    encoded_captions = encoder.encode(captions)
    flat_events = [e for evs in events for e in evs]
    encoded_events = dict(zip(flat_events, encoder.encode(flat_events, split=False))) if flat_events else {}
    out = []
    for cap, evs in zip(encoded_captions, events):
        if not evs:
            out.append(np.zeros(0))
            continue
        feats = np.stack([alignment_features(encoded_events[e], cap) for e in evs])
        out.append(score_features(feats, encoder.name))
    return out


def judge(items: list[JudgeItem], miss_threshold: float = 0.5, support_threshold: float = 0.5, encoder_name: str = "auto") -> list[Judgment]:
    """Judge items offline; items without events get a failed Judgment."""
    encoder = get_encoder(encoder_name)
    results: list[Judgment | None] = [None] * len(items)
    todo = []
    for i, item in enumerate(items):
        if not item.events:
            results[i] = Judgment.failed(item.id, NAME, "item has no events (and none could be extracted)")
        else:
            todo.append(i)
    if not todo:
        return results  # type: ignore[return-value]
    scores = score_events([items[i].caption for i in todo], [items[i].events for i in todo], encoder.name)
    # Hallucination: caption clauses against the reference (or the joined events).
    clause_lists = []
    for i in todo:
        clauses = [c for c in split_clauses(items[i].caption) if _content_word_count(c) >= MIN_CLAUSE_CONTENT_WORDS]
        clause_lists.append(clauses)
    supports = [items[i].reference if items[i].reference else "\n".join(items[i].events) for i in todo]
    encoded_support = encoder.encode(supports)
    flat_clauses = [c for cl in clause_lists for c in cl]
    encoded_clauses = dict(zip(flat_clauses, encoder.encode(flat_clauses, split=False))) if flat_clauses else {}
    for k, i in enumerate(todo):
        item, ev_scores = items[i], scores[k]
        clauses = clause_lists[k]
        if clauses:
            feats = np.stack([alignment_features(encoded_clauses[c], encoded_support[k]) for c in clauses])
            clause_support = score_features(feats, encoder.name)
        else:
            clause_support = np.zeros(0)
        results[i] = Judgment(
            id=item.id,
            judge=NAME,
            n_events=len(item.events),
            event_scores=[float(s) for s in ev_scores],
            missed=[e for e, s in zip(item.events, ev_scores) if s < miss_threshold],
            hallucinated=[c for c, s in zip(clauses, clause_support) if s < support_threshold],
        )
    return results  # type: ignore[return-value]


def extract_events(reference: str) -> list[str]:
    """Offline event extraction: the reference's clauses with at least two content words."""
    return [c for c in split_clauses(reference) if _content_word_count(c) >= 2]


# ------------------------------------------------------------------------------ hooks


@hookimpl
def vs2_register_judges(register):
    register(NAME, "built-in offline judge: MiniLM token alignment + rarity weights (CPU, deterministic)")


@hookimpl
def vs2_extract_events(references, config):
    if config.judge != NAME:
        return None
    return [extract_events(r or "") for r in references]


@hookimpl
def vs2_judge_captions(items, config):
    if config.judge != NAME:
        return None
    return judge(items, config.miss_threshold, config.support_threshold, config.offline_encoder)
