"""Offline event extraction scored against the human-refined events of the vs2 test set (dev split).

For each video the reference caption is cut into events by the offline judge
(``vs2_extract_events``) and compared with the human events:

  count_ratio   extracted / human events per video (median and mean; 1.0 = same granularity),
  matched F1    one-to-one greedy matching of extracted to human events by the Dice overlap of
                their content-word stems (a match needs >= 0.5); precision = matched /
                extracted, recall = matched / human, F1 from the pooled counts,
  quote_splits  videos where a quoted utterance of the reference was cut into several events.

Baseline in the same run: the previous extractor (clauses, quotes not protected).

    .venv/bin/python benchmarks/offline_event_extraction.py

Writes benchmarks/results/offline_event_extraction.json.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vs2_plugin.judge import alignment, offline  # noqa: E402
from vs2_plugin.judge.encoders import words_of  # noqa: E402
from vs2_plugin.judge.metrics import QUOTE  # noqa: E402  (quotes as the judge reads them)

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "captions" / "vs2_testset_dev.jsonl"
RESULTS = ROOT / "benchmarks" / "results" / "offline_event_extraction.json"
MATCH = 0.5


def _stems(text: str) -> set[str]:
    return {alignment.stem(w) for w in words_of(text) if w not in alignment.STOPWORDS}


def matched(extracted: list[str], human: list[str]) -> int:
    """Greedy one-to-one matches (best Dice first) with Dice >= MATCH."""
    a, b = [_stems(e) for e in extracted], [_stems(h) for h in human]
    pairs = []
    for i, x in enumerate(a):
        for j, y in enumerate(b):
            if x and y:
                d = 2 * len(x & y) / (len(x) + len(y))
                if d >= MATCH:
                    pairs.append((d, i, j))
    used_i, used_j, n = set(), set(), 0
    for _, i, j in sorted(pairs, reverse=True):
        if i not in used_i and j not in used_j:
            used_i.add(i)
            used_j.add(j)
            n += 1
    return n


def baseline_extract(reference: str) -> list[str]:
    """The previous extractor: clauses with >= 2 content words, quotes cut like any text."""
    return [c for c in offline.split_clauses(reference) if sum(w not in alignment.STOPWORDS for w in words_of(c)) >= 2]


def score(rows: list[dict], extract) -> dict:
    ratios, n_ext, n_hum, n_match, quote_splits = [], 0, 0, 0, 0
    for r in rows:
        ev = extract(r["reference"])
        ratios.append(len(ev) / len(r["events"]))
        n_ext += len(ev)
        n_hum += len(r["events"])
        n_match += matched(ev, r["events"])
        for q in QUOTE.findall(r["reference"]):
            if len(q) > 20 and not any(q in e for e in ev):
                quote_splits += 1
                break
    p, rec = n_match / n_ext, n_match / n_hum
    return {
        "count_ratio_median": statistics.median(ratios),
        "count_ratio_mean": statistics.mean(ratios),
        "events_per_video": n_ext / len(rows),
        "human_events_per_video": n_hum / len(rows),
        "precision": p,
        "recall": rec,
        "f1": 2 * p * rec / (p + rec) if p + rec else 0.0,
        "videos_with_a_quote_split": quote_splits,
    }


def main() -> int:
    rows = [json.loads(line) for line in DEFAULT_DATA.read_text(encoding="utf-8").splitlines() if line.strip()]
    result = {
        "data": DEFAULT_DATA.name,
        "n_videos": len(rows),
        "match_dice": MATCH,
        "offline": score(rows, offline.extract_events),
        "baseline_clauses": score(rows, baseline_extract),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
