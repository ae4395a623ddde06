"""ROC AUC of the offline judge's per-event scores against GPT-4-Turbo "mentioned" labels.

Data: capability_event_labels_dev.jsonl (id, captioner, event, caption, label; label != 0
means the caption mentions the event). Baseline measured in the same run: plain word-overlap
recall of the event's content words (FIELD_NOTES: 0.737; best published offline mix 0.782).

Reports, per encoder (wordllama and minilm):
  auc_in_sample                       the shipped weights (fitted on all triples), in sample,
  auc_leave_one_captioner_out         weights + threshold fitted on one captioner's triples,
                                      AUC on the other's (the honest number for a new captioner),
  auc_held_out_events                 fitted on half the events (both captioners), AUC on the
                                      other half: events and videos never seen in fitting. Each
                                      event is captioned by both captioners, so a model that can
                                      learn per-event word priors looks better left-one-captioner-
                                      out than it is; this split cannot leak that way,
  *_ci95                              95 % interval of each AUC and Miss gap (judge minus
                                      labels, points), bootstrap over events
                                      (both captioners' triples of an event drawn together),
  pairwise_agreement_*                how often the judge orders two captioners' captions of the
                                      same event as the labels do (in sample / left out / on the
                                      held-out events, where one model scores both captions),
  miss_calibration_*                  mean Miss vs labelled Miss with the threshold fitted out of
                                      sample (other captioner; other half of the events),
  miss_adjusted_*                     the same mean Miss corrected for the judge's error rates
                                      measured where it was fitted (adjusted classify-and-count,
                                      :func:`adjusted_miss`): tried for calibration, not shipped,
  feature_auc                         each feature alone (no fitting at all),
  weights                             the shipped weights (tests pin them to these).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/offline_judge_auc.py [--encoders wordllama minilm] [--fit]

``--fit`` refits the shipped weights of each encoder on all triples, calibrated so that 0.5 is
the threshold giving the labelled mean Miss.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vs2_plugin.judge import alignment  # noqa: E402
from vs2_plugin.judge.encoders import get_encoder  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "captions" / "capability_event_labels_dev.jsonl"
RESULTS = ROOT / "benchmarks" / "results" / "offline_judge_auc.json"
WEIGHTS = alignment.DATA_DIR / "offline_weights.json"


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Mann-Whitney AUC with average ranks for ties."""
    labels = np.asarray(labels).astype(bool)
    scores = np.asarray(scores, dtype=float)
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    i = 0
    while i < len(scores):
        j = i
        while j + 1 < len(scores) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j + 2) / 2.0
        i = j + 1
    n_pos, n_neg = labels.sum(), (~labels).sum()
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1.0) -> dict:
    """L2-regularised logistic regression on standardised features (Newton's method).

    Coefficients are kept non-negative (a feature with a negative weight is dropped and the
    rest refitted): every feature grows when the caption says more, so the score -- and the
    Miss rate -- stays monotone when a caption is extended or truncated.
    """
    mean, std = x.mean(0), x.std(0) + 1e-9
    z = (x - mean) / std
    active = list(range(x.shape[1]))
    while True:
        a = np.c_[z[:, active], np.ones(len(z))]
        w = np.zeros(a.shape[1])
        reg = np.eye(a.shape[1]) * l2
        reg[-1, -1] = 0.0
        for _ in range(100):
            p = 1 / (1 + np.exp(-(a @ w)))
            grad = a.T @ (p - y) + reg @ w
            hess = (a * (p * (1 - p))[:, None]).T @ a + reg
            step = np.linalg.solve(hess, grad)
            w -= step
            if np.abs(step).max() < 1e-10:
                break
        if (w[:-1] >= 0).all():
            break
        active.pop(int(np.argmin(w[:-1])))
    coef = np.zeros(x.shape[1])
    coef[active] = w[:-1]
    return {
        "features": list(alignment.FEATURES),
        "mean": mean.tolist(),
        "std": std.tolist(),
        "coef": coef.tolist(),
        "intercept": float(w[-1]),
    }


def apply_logistic(model: dict, x: np.ndarray) -> np.ndarray:
    z = (x - np.asarray(model["mean"])) / np.asarray(model["std"])
    return z @ np.asarray(model["coef"]) + model["intercept"]


def calibrate(model: dict, x: np.ndarray, y: np.ndarray) -> dict:
    """Shift the intercept so that 0.5 is the threshold giving the labelled Miss rate on (x, y).

    The threshold is the score quantile at the share of "not mentioned" labels, so the mean
    Miss the judge reports on this data equals the labelled one.
    """
    z = apply_logistic(model, x)
    t = float(np.quantile(z, float(np.mean(y == 0))))
    out = dict(model)
    out["intercept"] = float(model["intercept"] - t)
    out["calibration_logit_shift"] = -t
    return out


def adjusted_miss(scores: np.ndarray, fit_scores: np.ndarray, fit_labels: np.ndarray) -> float:
    """Mean Miss corrected for the judge's own errors (adjusted classify-and-count).

    With ``tpr`` = P(told | mentioned) and ``fpr`` = P(told | not mentioned) measured on the
    fitting data, an observed told rate ``q`` estimates the mentioned share as
    ``(q - fpr) / (tpr - fpr)`` (clipped to [0, 1]); Miss is one minus that. It is unbiased when
    the judge's error rates carry over to the new data, whatever its share of mentioned events.

    A judge that tells 4 of 5 mentioned events and 1 of 5 others (tpr 0.8, fpr 0.2), telling 1 of 5
    on new data: Miss 0.8 counted, 1.0 adjusted (what it told is its false-positive rate).

    >>> fit_labels = np.array([1] * 5 + [0] * 5)
    >>> fit_scores = np.array([1.0, 1, 1, 1, -1] + [1.0, -1, -1, -1, -1])
    >>> adjusted_miss(np.array([1.0, -1, -1, -1, -1]), fit_scores, fit_labels)
    1.0
    >>> round(adjusted_miss(np.array([1.0, 1, 1, -1, -1]), fit_scores, fit_labels), 6)  # told 0.6: (0.6 - 0.2) / 0.6
    0.333333
    """
    tpr, fpr = float(np.mean(fit_scores[fit_labels == 1] >= 0)), float(np.mean(fit_scores[fit_labels == 0] >= 0))
    told = float(np.mean(np.asarray(scores) >= 0))
    return 1.0 - float(np.clip((told - fpr) / (tpr - fpr), 0.0, 1.0)) if tpr > fpr else 1.0 - told


def word_overlap(event: str, caption: str) -> float:
    """Baseline: share of the event's non-stopword words whose stem occurs in the caption."""
    words = [alignment.stem(w) for w in re.findall(r"[a-z0-9']+", event.lower()) if w not in BASELINE_STOPWORDS]
    cap = {alignment.stem(w) for w in re.findall(r"[a-z0-9']+", caption.lower())}
    return sum(w in cap for w in words) / len(words) if words else 0.0


#: A plain English function-word list for the baseline (independent of the judge's own list).
BASELINE_STOPWORDS = frozenset(
    """a an the of in on at to and or but is are was were be been being with by for from as that this
    these those it its their his her he she they them there which who while into over under then than""".split()
)


def event_halves(rows: list[dict]) -> np.ndarray:
    """0/1 per triple by the parity of its event number (``captioner/event_N``): both
    captioners' triples of one event land in the same half."""
    return np.array([int(re.sub(r"\D", "", str(r["id"]).split("/")[-1]) or 0) % 2 for r in rows])


def event_ids(rows: list[dict]) -> list[str]:
    """The event of each triple (``captioner/event_N`` -> ``event_N``): both captioners share it."""
    return [str(r["id"]).split("/")[-1] for r in rows]


def event_interval(groups, statistic, n_boot: int = 1000, seed: int = 0) -> list[float]:
    """95 % interval of ``statistic(rows)`` under a bootstrap over events: each draw takes as many
    events as there are, with replacement, with all their triples (both captioners' captions of an
    event stay together); ``statistic`` gets the drawn row indices and may answer None (no value
    for that draw). The fit behind the scores is not redone: this is the spread that the choice of
    a few hundred dev events leaves on a figure."""
    index: dict[str, list[int]] = {}
    for k, g in enumerate(groups):
        index.setdefault(g, []).append(k)
    members = list(index.values())
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(n_boot):
        value = statistic(np.concatenate([members[i] for i in rng.integers(0, len(members), len(members))]))
        if value is not None:
            draws.append(value)
    low, high = np.quantile(draws, [0.025, 0.975])
    return [round(float(low), 4), round(float(high), 4)]


def auc_interval(labels: np.ndarray, scores: np.ndarray, groups, n_boot: int = 1000) -> list[float]:
    """:func:`event_interval` of the ROC AUC (a draw with one class only has no AUC)."""
    labels, scores = np.asarray(labels), np.asarray(scores, dtype=float)
    return event_interval(
        groups,
        lambda rows: roc_auc(labels[rows], scores[rows]) if labels[rows].min() != labels[rows].max() else None,
        n_boot,
    )


def miss_gap_interval(labels: np.ndarray, scores: np.ndarray, groups, n_boot: int = 1000) -> list[float]:
    """:func:`event_interval` of judge Miss minus labelled Miss, in points (score < 0: missed)."""
    gap = 100.0 * ((np.asarray(scores) < 0).astype(float) - (np.asarray(labels) == 0))
    return event_interval(groups, lambda rows: float(gap[rows].mean()), n_boot)


def pairwise_agreement(rows: list[dict], labels: np.ndarray, scores: np.ndarray) -> dict:
    """How often the judge orders two captioners' captions of one video's event as the labels do.

    Pairs: the same event (same ``event_N`` id) judged in the captions of two captioners, with
    different labels (one mentions it, the other not). Agreement: the mentioning caption gets
    the higher score (ties count one half). This is the decision mrDPO makes between samples.
    """
    by_event: dict[str, list[int]] = {}
    for k, r in enumerate(rows):
        by_event.setdefault(str(r["id"]).split("/")[-1], []).append(k)
    agree = n = 0.0
    for ks in by_event.values():
        for a in range(len(ks)):
            for b in range(a + 1, len(ks)):
                i, j = ks[a], ks[b]
                if labels[i] == labels[j] or rows[i]["captioner"] == rows[j]["captioner"]:
                    continue
                pos, neg = (i, j) if labels[i] else (j, i)
                agree += 1.0 if scores[pos] > scores[neg] else 0.5 if scores[pos] == scores[neg] else 0.0
                n += 1
    return {"agreement": agree / n if n else None, "n_pairs": int(n)}


def features_in_chunks(encoder, rows: list[dict], chunk: int = 64) -> np.ndarray:
    """Features of every triple, encoding ``chunk`` triples at a time (bounded memory)."""
    out = []
    for start in range(0, len(rows), chunk):
        part = rows[start : start + chunk]
        caps = encoder.encode([r["caption"] for r in part])
        evs = encoder.encode([r["event"] for r in part], split=False)
        out.extend(alignment.alignment_features(e, c) for e, c in zip(evs, caps))
    return np.stack(out)


def evaluate(encoder_name: str, rows: list[dict], fit: bool) -> dict:
    labels = np.array([int(r["label"] != 0) for r in rows])
    captioners = np.array([r["captioner"] for r in rows])
    t0 = time.perf_counter()
    encoder = get_encoder(encoder_name)
    t_load = time.perf_counter() - t0
    t0 = time.perf_counter()
    feats = features_in_chunks(encoder, rows)
    t_features = time.perf_counter() - t0
    feature_auc = {name: roc_auc(labels, feats[:, k]) for k, name in enumerate(alignment.FEATURES)}

    # leave one captioner out: fit + calibrate on the others, score the held-out captioner
    cross, cross_ci, gap_ci, miss_gap, loco_scores, adjusted = {}, {}, {}, {}, np.zeros(len(rows)), {}
    events = np.asarray(event_ids(rows))
    for held_out in sorted(set(captioners)):
        train = captioners != held_out
        if train.sum() == 0:
            continue
        model = calibrate(fit_logistic(feats[train], labels[train]), feats[train], labels[train])
        z = apply_logistic(model, feats[~train])
        loco_scores[~train] = z
        cross[held_out] = roc_auc(labels[~train], z)
        cross_ci[held_out] = auc_interval(labels[~train], z, events[~train])
        gap_ci[held_out] = miss_gap_interval(labels[~train], z, events[~train])
        miss_gap[held_out] = {"judge_miss": float(np.mean(z < 0)), "label_miss": float(np.mean(labels[~train] == 0))}
        adjusted[held_out] = adjusted_miss(z, apply_logistic(model, feats[train]), labels[train])

    # out-of-sample calibration over videos' events: fit + threshold on half the events (both
    # captioners), mean Miss on the other half; halves by the parity of the event number
    half = event_halves(rows)
    # (each dev event comes from its own video and both captioners captioned it, so these halves
    # hold out events and videos, not only a captioner: the same model scores both captioners'
    # captions of a held-out event, which makes its pairwise agreement the out-of-sample decision)
    halves, half_auc, half_ci, half_gap_ci, half_scores = {}, {}, {}, {}, np.zeros(len(rows))
    for h in (0, 1):
        train = half != h
        model = calibrate(fit_logistic(feats[train], labels[train]), feats[train], labels[train])
        z = apply_logistic(model, feats[~train])
        halves[f"half_{h}"] = {"judge_miss": float(np.mean(z < 0)), "label_miss": float(np.mean(labels[~train] == 0))}
        adjusted[f"half_{h}"] = adjusted_miss(z, apply_logistic(model, feats[train]), labels[train])
        half_auc[f"half_{h}"] = roc_auc(labels[~train], z)
        half_ci[f"half_{h}"] = auc_interval(labels[~train], z, events[~train])
        half_gap_ci[f"half_{h}"] = miss_gap_interval(labels[~train], z, events[~train])
        half_scores[~train] = z

    if fit:
        table = json.loads(WEIGHTS.read_text()) if WEIGHTS.exists() else {}
        model = calibrate(fit_logistic(feats, labels), feats, labels)
        model["fitted_on"] = f"{DEFAULT_DATA.name}: {len(rows)} triples, captioners {sorted(set(map(str, captioners)))}"
        table[encoder.name] = model
        WEIGHTS.write_text(json.dumps(table, indent=1) + "\n")
        alignment._weights.cache_clear()
        print(f"wrote weights for {encoder.name} to {WEIGHTS}")

    scores = alignment.score_features(feats, encoder.name)
    return {
        "auc_in_sample": roc_auc(labels, scores),
        "auc_leave_one_captioner_out": cross,
        "auc_leave_one_captioner_out_ci95": cross_ci,
        "auc_leave_one_captioner_out_mean": float(np.mean(list(cross.values()))) if cross else None,
        "pairwise_agreement_in_sample": pairwise_agreement(rows, labels, scores),
        "pairwise_agreement_leave_one_captioner_out": pairwise_agreement(rows, labels, loco_scores),
        "auc_held_out_events": half_auc,
        "auc_held_out_events_ci95": half_ci,
        "auc_held_out_events_mean": float(np.mean(list(half_auc.values()))),
        "pairwise_agreement_held_out_events": pairwise_agreement(rows, labels, half_scores),
        "miss_calibration_leave_one_captioner_out": miss_gap,
        "miss_gap_points_leave_one_captioner_out_max": max(
            100 * abs(g["judge_miss"] - g["label_miss"]) for g in miss_gap.values()
        ),
        "miss_gap_points_leave_one_captioner_out_ci95": gap_ci,
        "miss_calibration_held_out_half": halves,
        "miss_gap_points_held_out_half_max": max(100 * abs(g["judge_miss"] - g["label_miss"]) for g in halves.values()),
        "miss_gap_points_held_out_half_ci95": half_gap_ci,
        "miss_adjusted_gap_points": {
            k: round(100 * (v - (miss_gap.get(k) or halves[k])["label_miss"]), 2) for k, v in adjusted.items()
        },
        "miss_in_sample": {"judge_miss": float(np.mean(scores < 0.5)), "label_miss": float(np.mean(labels == 0))},
        "feature_auc": feature_auc,
        "weights": alignment._weights(encoder.name),
        "seconds": {"load_model": t_load, "encode_and_features": t_features},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--encoders", nargs="+", default=["wordllama", "minilm"], choices=["minilm", "wordllama"])
    parser.add_argument("--fit", action="store_true", help="refit the shipped weights of each encoder on all triples")
    args = parser.parse_args()

    rows = [json.loads(line) for line in args.data.read_text(encoding="utf-8").splitlines() if line.strip()]
    labels = np.array([int(r["label"] != 0) for r in rows])
    baseline = roc_auc(labels, [word_overlap(r["event"], r["caption"]) for r in rows])
    previous = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    per_encoder = dict(previous.get("encoders", {}))
    for name in args.encoders:
        per_encoder[name] = evaluate(name, rows, args.fit)
        per_encoder[name]["auc_vs_baseline_leave_one_captioner_out"] = (
            per_encoder[name]["auc_leave_one_captioner_out_mean"] / baseline
        )
    result = {
        "baseline_word_overlap_auc": baseline,
        "baseline_field_notes": {"word_overlap": 0.737, "wordllama_cosine": 0.714, "best_logistic_mix": 0.782},
        "n_triples": len(rows),
        "captioners": sorted({r["captioner"] for r in rows}),
        "encoders": per_encoder,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
