"""How well a claim (an event, a caption's clause) is told by a text: word alignment features.

Coverage of an event (paper App. E "missed"): the event is read against the caption word by
word. Every content word of the event is aligned to its most similar caption word (contextual
MiniLM vectors, or static WordLlama vectors), weighted by how rare the word is in general
English; five features summarise the alignment:

* ``recall``: rarity-weighted mean of the best cosine of each event word over the caption,
* ``window``: the same recall inside the best window of two consecutive caption sentences
  (an event is usually told in one place),
* ``exact``: rarity-weighted share of event words found verbatim (or with the same stem),
* ``q25``: the 25th percentile of the per-word best cosines (the weakest-covered words),
* ``sentence``: the best sentence-embedding cosine between the event and a caption sentence.

A logistic regression over the standardised features (weights per encoder in
``data/offline_weights.json``, refitted by ``benchmarks/offline_judge_auc.py --fit``) gives
the event score in [0, 1]. The fit shifts the intercept so that 0.5 is the threshold at
which the mean Miss of the fitting data equals the labelled one (calibration); an event
scoring below ``options.miss_threshold`` is missed.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np

from vs2_plugin.judge.details import as_count
from vs2_plugin.judge.encoders import Encoded

DATA_DIR = Path(__file__).resolve().parent / "data"
FEATURES = ("recall", "window", "exact", "q25", "sentence")

# Function words carry no event content. Negations (not, no, never) and numbers are NOT here:
# "two men" vs "one man" and "does not speak" vs "speaks" are details a judge must see.
STOPWORDS = frozenset(
    """a an the of in on at to and or but is are was were be been being am with by for from as
    that this these those it its it's their his her him he she they them there which who whom whose
    while into onto over under then than also can could may might will would shall should do does
    did has have had so such very just some any each all appears appear seems seem seen shown
    shows show video clip scene frame frames camera image visible""".split()
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


def rarity(word: str) -> float:
    """Weight of a word by rarity: 7.5 - Zipf frequency in general English, at least 0.5."""
    return max(7.5 - _zipf_table().get(word.lower(), 0.0), 0.5)


@lru_cache(maxsize=65536)
def stem(word: str) -> str:
    """Crude English stem for verbatim matching: runs/running/ran stay apart, runs/run match."""
    for suffix in ("ing", "ed", "es", "s"):
        if len(word) > len(suffix) + 2 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


@lru_cache(maxsize=1 << 16)  # order is read over the whole text for each claim: the same words again and again
def loose_stem(word: str) -> str:
    """:func:`stem` without a final "e", so that smile/smiles/smiling meet: what counts as the same word
    when a claim's words are compared with where the text tells them (polarity, order). :func:`stem`
    itself stays as the coverage features were fitted with."""
    return stem(word).rstrip("e") or word


def content_positions(words: list[str]) -> list[int]:
    """Indices of the content words (not stopwords); every word when there is none."""
    keep = [i for i, w in enumerate(words) if w not in STOPWORDS]
    return keep or list(range(len(words)))


def stem_positions(text: Encoded) -> dict[str, np.ndarray]:
    """stem -> positions of the text's words with that stem (computed once per text); a count told in
    digits is found under its number word too ("5 sheets" where a claim says "five sheets")."""
    cached = text.__dict__.get("stem_positions")
    if cached is None:
        groups: dict[str, list[int]] = {}
        for i, t in enumerate(text.tokens):
            groups.setdefault(stem(t), []).append(i)
            if t.isdigit() and (count := as_count(text.tokens, i)) != t:
                groups.setdefault(stem(count), []).append(i)
        cached = text.__dict__["stem_positions"] = {k: np.asarray(v) for k, v in groups.items()}
    return cached


def stem_set(text: Encoded) -> frozenset[str]:
    cached = text.__dict__.get("stem_set")
    if cached is None:
        cached = text.__dict__["stem_set"] = frozenset(stem(t) for t in text.tokens)
    return cached


def _quantile25(x: np.ndarray) -> float:
    """numpy's default (linear) 25th percentile, without its per-call overhead."""
    if len(x) == 1:
        return float(x[0])
    pos = 0.25 * (len(x) - 1)
    lo = int(pos)
    part = np.partition(x, (lo, min(lo + 1, len(x) - 1)))
    return float(part[lo] + (pos - lo) * (part[min(lo + 1, len(x) - 1)] - part[lo]))


def alignment_features(claim: Encoded, text: Encoded) -> np.ndarray:
    """The five :data:`FEATURES` of ``claim`` (an event or clause) read against ``text``."""
    if len(text.tokens) == 0 or len(claim.tokens) == 0:
        return np.zeros(len(FEATURES), np.float32)
    keep = content_positions(claim.tokens)
    weights = np.array([rarity(claim.tokens[i]) for i in keep], dtype=np.float32)
    weights /= weights.sum()
    sim = claim.vecs[keep] @ text.vecs.T  # (claim content words, text words)
    best = sim.max(axis=1)
    recall = float(best @ weights)
    per_sentence = np.maximum.reduceat(sim, text.sentence_starts, axis=1)
    windows = np.maximum(per_sentence[:, :-1], per_sentence[:, 1:]) if per_sentence.shape[1] > 1 else per_sentence
    window = float((weights @ windows).max())
    text_stems = stem_set(text)
    exact = float(sum(w for i, w in zip(keep, weights) if stem(claim.tokens[i]) in text_stems))
    q25 = _quantile25(best)
    claim_vec = claim.sent_vecs.mean(axis=0)
    claim_vec /= max(float(np.linalg.norm(claim_vec)), 1e-8)
    sentence = float((text.sent_vecs @ claim_vec).max()) if len(text.sent_vecs) else 0.0
    return np.array([recall, window, exact, q25, sentence], dtype=np.float32)


def batch_features(claims: list[Encoded], text: Encoded) -> np.ndarray:
    """:func:`alignment_features` of many claims against one text, with one matrix product.

    Same numbers as calling :func:`alignment_features` per claim (tested); the claims' content
    words are stacked, so the per-claim cost is a few reductions instead of a full call.
    """
    out = np.zeros((len(claims), len(FEATURES)), np.float32)
    rows, weights, exact_w = [], [], []
    stems = stem_set(text)
    live = [k for k, c in enumerate(claims) if len(c.tokens)]
    if not live or len(text.tokens) == 0:
        return out
    for k in live:
        c = claims[k]
        keep = content_positions(c.tokens)
        w = np.array([rarity(c.tokens[i]) for i in keep], dtype=np.float32)
        w /= w.sum()
        rows.append(c.vecs[keep])
        weights.append(w)
        exact_w.append(float(sum(wi for i, wi in zip(keep, w) if stem(c.tokens[i]) in stems)))
    sizes = np.array([len(w) for w in weights])
    bounds = np.r_[0, np.cumsum(sizes)[:-1]]
    vecs, wts = np.concatenate(rows), np.concatenate(weights)
    sim = vecs @ text.vecs.T
    best = sim.max(axis=1)
    recall = np.add.reduceat(best * wts, bounds)
    per_sentence = np.maximum.reduceat(sim, text.sentence_starts, axis=1)
    windows = np.maximum(per_sentence[:, :-1], per_sentence[:, 1:]) if per_sentence.shape[1] > 1 else per_sentence
    window = np.add.reduceat(windows * wts[:, None], bounds, axis=0).max(axis=1)
    q25 = [_quantile25(best[b : b + n]) for b, n in zip(bounds, sizes)]
    claim_vecs = np.stack([claims[k].sent_vecs.mean(axis=0) for k in live])
    claim_vecs /= np.maximum(np.linalg.norm(claim_vecs, axis=1, keepdims=True), 1e-8)
    sentence = (claim_vecs @ text.sent_vecs.T).max(axis=1) if len(text.sent_vecs) else np.zeros(len(live))
    out[live] = np.stack([recall, window, np.array(exact_w), np.array(q25), sentence], axis=1)
    return out


def score_features(features: np.ndarray, encoder_name: str) -> np.ndarray:
    """Calibrated logistic-regression probability that each feature row's claim is covered."""
    w = _weights(encoder_name)
    x = (np.atleast_2d(features) - np.asarray(w["mean"])) / np.asarray(w["std"])
    z = x @ np.asarray(w["coef"]) + float(w["intercept"])
    return 1.0 / (1.0 + np.exp(-z))
