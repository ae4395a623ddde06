"""Probes of the offline judge on the vs2 test set (dev split): does Miss/Hall move the right way?

Each video's human reference caption is turned into captions whose right answer is known,
and judged against the video's human events (with the reference as the support for
hallucination), as ``vs2 eval --judge offline`` does:

  own          the reference itself                         -> Miss ~ 0, Hall ~ 0
  swapped      the reference with 2-3 detail words swapped  -> Hall rises (benchmarks/detail_swaps.py)
  objects      the same with objects only (a dog, a piano, a cup: -> Hall rises
               words of the lexicon, mostly of two of its
               categories)
  swapped,     the same with six lists of details the judge's -> Hall rises
  held out /   lexicon lacks (objects, body parts, actions,
  fresh /      materials, places, sounds...); the first two
  unseen /     were measured while the judge's word kinds
  tagged pos / were built, the unseen one only once they
  word place / were first final, the last three before and
  one sided    after one change each, the second not kept
               (detail_swaps.py says which)
  pronouns     the same with he/she, his/her, him/her   -> Hall rises
               swapped (written before the judge read
               pronouns)
  digits       1-2 counts told in words ("two men") told in  -> Hall stays (right) / rises (moved)
               digits: right ("2 men") or moved by one
               ("3 men"); items with such a count
  compounds    1-2 colours inside hyphenated words swapped -> Hall rises
               ("red-scarfed" -> "blue-scarfed")
  negated      the reference with 2-3 statements denied     -> Hall rises ("is standing" -> "is not
               standing"; detail_swaps.negate_statements)
  reordered    the reference with 1-2 "X, then Y" sentences -> Hall rises (detail_swaps.reorder_statements;
               told as "Y, then X"                             items with at least one such sentence)
  truncated    the first 1/4, 1/2, 3/4 of its sentences     -> Miss rises monotonically
  appended     + 3 sentences of another video's reference   -> Hall rises
  similar      the most similar OTHER video's reference     -> Miss >= 90 %
               (TF-IDF cosine of the references)

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/offline_judge_robustness.py [--encoders wordllama minilm] [--n-videos 120]

Writes benchmarks/results/offline_judge_robustness.json.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import re
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from detail_swaps import (  # noqa: E402
    FRESH_ALTERNATIVES,
    HELD_OUT_ALTERNATIVES,
    OBJECT_ALTERNATIVES,
    ONE_SIDED_ALTERNATIVES,
    PRONOUN_ALTERNATIVES,
    TAGGED_POS_ALTERNATIVES,
    UNSEEN_ALTERNATIVES,
    WORD_PLACE_ALTERNATIVES,
    counts_in_digits,
    negate_statements,
    reorder_statements,
    swap_compound_colours,
    swap_details,
)

from vs2_plugin.judge import offline  # noqa: E402
from vs2_plugin.judge.details import lexicon  # noqa: E402
from vs2_plugin.judge.encoders import split_sentences  # noqa: E402
from vs2_plugin.judge.types import JudgeItem  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "captions" / "vs2_testset_dev.jsonl"
RESULTS = ROOT / "benchmarks" / "results" / "offline_judge_robustness.json"
SEED = 0


def most_similar_other(references: list[str]) -> list[int]:
    """Index of the most similar other reference by TF-IDF cosine (log tf, smoothed idf)."""
    docs = [Counter(re.findall(r"[a-z]+", r.lower())) for r in references]
    df = Counter(w for d in docs for w in d)
    idf = {w: math.log((1 + len(docs)) / (1 + n)) + 1 for w, n in df.items()}
    vocab = {w: k for k, w in enumerate(df)}
    m = np.zeros((len(docs), len(vocab)), np.float32)
    for i, d in enumerate(docs):
        for w, c in d.items():
            m[i, vocab[w]] = (1 + math.log(c)) * idf[w]
    m /= np.linalg.norm(m, axis=1, keepdims=True) + 1e-9
    sim = m @ m.T
    np.fill_diagonal(sim, -1)
    return sim.argmax(axis=1).tolist()


def probe_result(changed: list[dict], own: list[dict], items: list[int], *means: str) -> dict:
    """Share of ``items`` whose Hall rose above their own reference's, and the mean of each rate named."""
    return {
        "hall_rises_share": float(np.mean([changed[k]["hall_rate"] > own[k]["hall_rate"] for k in items])),
        "n_items": len(items),
        **{f"{m.removesuffix('_rate')}_mean": float(np.mean([changed[k][m] for k in items])) for m in means},
    }


def rates(judgments) -> list[dict]:
    return [j.rates() for j in judgments]


def run_probes(videos: list[dict], encoder: str) -> dict:
    rng = random.Random(SEED)
    refs = [v["reference"] for v in videos]
    similar = most_similar_other(refs)
    judge_lexicon = lexicon()

    def judge(captions: list[str]) -> list[dict]:
        items = [
            JudgeItem(id=v["id"], caption=c, events=v["events"], reference=v["reference"])
            for v, c in zip(videos, captions)
        ]
        return rates(offline.judge(items, encoder_name=encoder))

    t0 = time.perf_counter()
    own = judge(refs)
    swapped, swaps = [], []
    for r in refs:
        text, made = swap_details(r, rng.choice([2, 3]), rng)
        swapped.append(text)
        swaps.append(made)
    swap_rates = judge(swapped)
    rise = [s["hall_rate"] > o["hall_rate"] for s, o in zip(swap_rates, own)]
    with_swaps = [k for k, s in enumerate(swaps) if len(s) >= 2]
    # swaps the judge's own lexicon does not know (neither word): is the probe circular?
    unknown = [
        k
        for k in with_swaps
        if all(a.lower() not in judge_lexicon and b.lower() not in judge_lexicon for a, b in swaps[k])
    ]

    # swaps from the other lists (outside the lexicon, and objects); generators of their own, as below
    outside = {}
    lists = (
        ("held_out", HELD_OUT_ALTERNATIVES),
        ("fresh", FRESH_ALTERNATIVES),
        ("unseen", UNSEEN_ALTERNATIVES),
        ("tagged_pos", TAGGED_POS_ALTERNATIVES),
        ("word_place", WORD_PLACE_ALTERNATIVES),
        ("one_sided", ONE_SIDED_ALTERNATIVES),
        # objects only (dog, piano, cup, jacket...): words of the lexicon, mostly of two of its categories
        ("objects", OBJECT_ALTERNATIVES),
        # a person's gender told by a pronoun ("she" for "he")
        ("pronouns", PRONOUN_ALTERNATIVES),
    )
    for name, alternatives in lists:
        list_rng = random.Random(SEED)
        texts, made = zip(*(swap_details(r, list_rng.choice([2, 3]), list_rng, alternatives) for r in refs))
        list_rates = judge(list(texts))
        outside[f"swapped_details_{name}_list"] = probe_result(
            list_rates, own, [k for k, m in enumerate(made) if len(m) >= 2], "hall_rate", "incorrect_rate", "miss_rate"
        )

    # a generator of its own, so that adding this probe left the draws of the others as they were
    neg_rng = random.Random(SEED)
    negated, denials = zip(*(negate_statements(r, neg_rng.choice([2, 3]), neg_rng) for r in refs))
    neg_rates = judge(list(negated))
    with_negations = [k for k, d in enumerate(denials) if len(d) >= 2]
    order_rng = random.Random(SEED)
    reordered, reorders = zip(*(reorder_statements(r, order_rng.choice([1, 2]), order_rng) for r in refs))
    order_rates = judge(list(reordered))
    with_reorders = [k for k, d in enumerate(reorders) if d]

    # counts told in digits: the right ones ("2 men" for "two men") and ones moved by one ("3 men")
    digits = {}
    for name, shift in (("right", 0), ("moved", 1)):
        digit_rng = random.Random(SEED)
        texts, changes = zip(*(counts_in_digits(r, digit_rng.choice([1, 2]), digit_rng, shift) for r in refs))
        digits[name] = (judge(list(texts)), [k for k, c in enumerate(changes) if c])

    # a colour inside a hyphenated word ("red-scarfed" -> "blue-scarfed")
    compound_rng = random.Random(SEED)
    compound, compound_swaps = zip(*(swap_compound_colours(r, compound_rng.choice([1, 2]), compound_rng) for r in refs))
    compound_rates = judge(list(compound))
    with_compounds = [k for k, c in enumerate(compound_swaps) if c]

    appended = []
    for k, r in enumerate(refs):
        other = split_sentences(refs[(k + 1 + rng.randrange(len(refs) - 1)) % len(refs)])
        appended.append(r + " " + " ".join(other[:3]))
    app_rates = judge(appended)

    cut_rates = []
    fractions = (1.0, 0.75, 0.5, 0.25)
    for f in fractions:
        cut_rates.append(
            judge([" ".join(split_sentences(r)[: max(1, round(f * len(split_sentences(r))))]) for r in refs])
        )
    monotone = [
        all(cut_rates[a][k]["miss_rate"] <= cut_rates[a + 1][k]["miss_rate"] for a in range(len(fractions) - 1))
        for k in range(len(refs))
    ]

    sim_rates = judge([refs[similar[k]] for k in range(len(refs))])
    seconds = time.perf_counter() - t0
    return {
        "own_reference": {
            "miss_mean": float(np.mean([r["miss_rate"] for r in own])),
            "hall_mean": float(np.mean([r["hall_rate"] for r in own])),
            "incorrect_mean": float(np.mean([r["incorrect_rate"] for r in own])),
        },
        "swapped_details": {
            "hall_rises_share": float(np.mean([rise[k] for k in with_swaps])),
            "n_items": len(with_swaps),
            "hall_mean": float(np.mean([swap_rates[k]["hall_rate"] for k in with_swaps])),
            "incorrect_mean": float(np.mean([swap_rates[k]["incorrect_rate"] for k in with_swaps])),
            "hall_rises_share_swaps_outside_judge_lexicon": float(np.mean([rise[k] for k in unknown]))
            if unknown
            else None,
            "n_items_swaps_outside_judge_lexicon": len(unknown),
        },
        **outside,
        "negated_statements": probe_result(neg_rates, own, with_negations, "hall_rate", "incorrect_rate"),
        "reordered_statements": probe_result(order_rates, own, with_reorders, "hall_rate", "miss_rate"),
        **{
            f"counts_in_digits_{name}": probe_result(changed, own, items, "hall_rate", "incorrect_rate")
            for name, (changed, items) in digits.items()
        },
        "colours_in_compounds": probe_result(compound_rates, own, with_compounds, "hall_rate", "incorrect_rate"),
        "appended_foreign_sentences": {
            "hall_rises_share": float(np.mean([a["hall_rate"] > o["hall_rate"] for a, o in zip(app_rates, own)]))
        },
        "truncation": {
            "monotone_share": float(np.mean(monotone)),
            "miss_mean_by_fraction": {
                str(f): float(np.mean([r["miss_rate"] for r in cr])) for f, cr in zip(fractions, cut_rates)
            },
        },
        "most_similar_other_video": {
            "miss_ge_90_share": float(np.mean([r["miss_rate"] >= 0.9 for r in sim_rates])),
            "miss_mean": float(np.mean([r["miss_rate"] for r in sim_rates])),
        },
        "seconds": seconds,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--encoders", nargs="+", default=["wordllama", "minilm"], choices=["minilm", "wordllama"])
    parser.add_argument("--n-videos", type=int, default=120, help="videos probed (evenly spaced over the file)")
    args = parser.parse_args()
    rows = [json.loads(line) for line in args.data.read_text(encoding="utf-8").splitlines() if line.strip()]
    step = max(1, len(rows) // args.n_videos)
    videos = rows[::step][: args.n_videos]
    previous = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    result = {
        "data": args.data.name,
        "n_videos": len(videos),
        "seed": SEED,
        "encoders": dict(previous.get("encoders", {})),
    }
    for name in args.encoders:
        result["encoders"][name] = run_probes(videos, name)
        print(name, json.dumps(result["encoders"][name], indent=1))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
