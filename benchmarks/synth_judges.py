"""The exact judge and the offline judge on captions of synthetic held-out clips whose errors are known.

For every held-out clip of ``vs2 synth`` (plans only: no media is rendered) and for its global
caption and each local caption, four captions are judged against the clip's atomic events:

  reference    the reference caption                          truth: nothing missed or wrong
  dropped      the reference with k events left out            truth: exactly those k missed
  swapped      k events with one attribute changed (colour,    truth: exactly those k incorrect
               shape, position, pitch or word)
  other_clip   the next held-out clip's reference              truth: the exact judge's verdict

Captions are re-told with the generator's varied wording, so a judge cannot match strings.
Both judges run through the judge hooks (``synth_exact`` registered like a third-party
plugin, ``offline`` built in), the offline judge with the reference caption as support, as
the mrDPO driver calls it. Reported per condition, task and judge: mean Miss / Incorrect /
Hallucination / Hall / Total rates (fractions of the reference events, App. E), the
construction's truth, the share of items where the exact judge's counts equal the truth, and
the offline judge's mean absolute error against the exact judge. A local caption keeps at
least one of its events when events are dropped (k is capped at events - 1).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/synth_judges.py [--n-clips 24] [--k 2] [--seed 0]

Writes benchmarks/results/synth_judges.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vs2_plugin import plugins
from vs2_plugin.judge.config import JudgeConfig
from vs2_plugin.judge.offline import OfflineOptions
from vs2_plugin.judge.runner import judge_items
from vs2_plugin.judge.types import JudgeItem
from vs2_plugin.synth import judge as exact_judge
from vs2_plugin.synth.generate import INTRO, SynthConfig, plan_clip
from vs2_plugin.synth.grammar import (
    ATTRIBUTES,
    COLOURS,
    PITCHES,
    POSITIONS,
    SHAPES,
    WORDS,
    Event,
    atomic_events,
    tell_events,
)

RESULTS = ROOT / "benchmarks" / "results" / "synth_judges.json"
CONDITIONS = ("reference", "dropped", "swapped", "other_clip")
JUDGES = ("synth_exact", "offline")
RATES = ("miss_rate", "incorrect_rate", "hallucination_rate", "hall_rate", "total_rate")
VALUES = {"colour": COLOURS, "shape": SHAPES, "position": POSITIONS, "pitch": PITCHES, "word": WORDS}


def swap_one(event: Event, rng: np.random.Generator, taken: list[Event]) -> Event | None:
    """``event`` with one attribute changed to another value, never equal to an event in ``taken``
    (so the changed event can only be read as the original one told wrong); None if impossible."""
    options = []
    for attr in ATTRIBUTES[event.kind]:
        for value in VALUES[attr]:
            if value != getattr(event, attr):
                candidate = Event(**{**event.__dict__, attr: value})
                if not any(candidate.attrs() == t.attrs() and candidate.kind == t.kind for t in taken):
                    options.append(candidate)
    return options[int(rng.integers(len(options)))] if options else None


def variants(events: list[Event], k: int, rng: np.random.Generator, intro: str | None) -> dict[str, tuple[str, dict]]:
    """condition -> (caption, truth counts) for the reference, dropped and swapped captions."""
    out = {"reference": (tell_events(events, rng, intro), {"missed": 0, "incorrect": 0, "hallucinated": 0})}
    n_drop = min(k, len(events) - 1)
    drop = set(rng.choice(len(events), size=n_drop, replace=False).tolist()) if n_drop > 0 else set()
    kept = [e for i, e in enumerate(events) if i not in drop]
    out["dropped"] = (tell_events(kept, rng, intro), {"missed": len(drop), "incorrect": 0, "hallucinated": 0})
    told, swapped = list(events), 0
    for i in rng.permutation(len(events)).tolist():
        if swapped == k:
            break
        if ATTRIBUTES[events[i].kind]:
            new = swap_one(events[i], rng, events)
            if new is not None:
                told[i], swapped = new, swapped + 1
    out["swapped"] = (tell_events(told, rng, intro), {"missed": 0, "incorrect": swapped, "hallucinated": 0})
    return out


def build_items(n_clips: int, k: int, seed: int) -> list[dict]:
    """Items to judge (``id``, ``task``, ``condition``, ``caption``, ``events``, ``reference``,
    ``truth``), from the held-out plans of ``seed``."""
    config = SynthConfig(out=".", seed=seed, n_train=0, n_heldout=n_clips)
    clips = [plan_clip(seed, "heldout", i, config) for i in range(n_clips)]
    units = []  # (clip index, task, events, intro)
    for c, clip in enumerate(clips):
        units.append((c, "global", clip.events, INTRO))
        for start, end in clip.local:
            units.append((c, "local", [e for e in clip.events if start <= e.time < end], None))
    items = []
    for u, (c, task, events, intro) in enumerate(units):
        rng = np.random.default_rng([seed, u, 7])
        reference_caption = tell_events(events, rng, intro)
        for condition, (caption, truth) in variants(events, k, rng, intro).items():
            items.append(
                {
                    "condition": condition,
                    "task": task,
                    "caption": caption,
                    "events": atomic_events(events),
                    "reference": reference_caption,
                    "truth": truth,
                    "clip": c,
                }
            )
        # the next clip's reference, for the same task (its global caption, or its first local one)
        other = clips[(c + 1) % n_clips]
        other_events = (
            other.events
            if task == "global"
            else [e for e in other.events if other.local[0][0] <= e.time < other.local[0][1]]
        )
        items.append(
            {
                "condition": "other_clip",
                "task": task,
                "caption": tell_events(other_events, rng, intro),
                "events": atomic_events(events),
                "reference": reference_caption,
                "truth": None,
                "clip": c,
            }
        )
    for n, item in enumerate(items):
        item["id"] = f"{item['condition']}/{item['task']}/{n}"
    return items


def run_judge(name: str, items: list[dict], pm) -> tuple[list, float]:
    config = JudgeConfig(judge=name, cache_path=None, show_progress=False)
    judge_input = [
        JudgeItem(id=i["id"], caption=i["caption"], events=i["events"], reference=i["reference"], task=i["task"])
        for i in items
    ]
    start = time.perf_counter()
    judged = judge_items(judge_input, config, pm=pm)
    return judged, time.perf_counter() - start


def _mean_rates(judgments) -> dict[str, float]:
    rates = [j.rates() for j in judgments if j.ok]
    return {k: round(float(np.mean([r[k] for r in rates])), 4) for k in RATES} | {"n": len(rates)}


def _truth_rates(items) -> dict[str, float]:
    from vs2_plugin.judge.metrics import event_rates

    rates = [
        event_rates(len(i["events"]), i["truth"]["missed"], i["truth"]["incorrect"], i["truth"]["hallucinated"])
        for i in items
    ]
    return {k: round(float(np.mean([r[k] for r in rates])), 4) for k in RATES}


def summarise(items: list[dict], judged: dict[str, list]) -> dict:
    out: dict = {}
    for condition in CONDITIONS:
        out[condition] = {}
        for task in ("global", "local"):
            idx = [n for n, i in enumerate(items) if i["condition"] == condition and i["task"] == task]
            sel = [items[n] for n in idx]
            entry = {judge: _mean_rates([judged[judge][n] for n in idx]) for judge in JUDGES}
            exact = [judged["synth_exact"][n] for n in idx]
            if sel[0]["truth"] is not None:
                entry["truth"] = _truth_rates(sel)
                entry["exact_equals_truth"] = round(
                    float(
                        np.mean(
                            [
                                (len(j.missed), len(j.incorrect), len(j.hallucinated))
                                == (i["truth"]["missed"], i["truth"]["incorrect"], i["truth"]["hallucinated"])
                                for i, j in zip(sel, exact)
                            ]
                        )
                    ),
                    4,
                )
            else:
                entry["truth"] = "the exact judge"
            off = [judged["offline"][n] for n in idx]
            pairs = [(e.rates(), o.rates()) for e, o in zip(exact, off) if e.ok and o.ok]
            entry["offline_abs_error_vs_exact"] = {
                k: round(float(np.mean([abs(e[k] - o[k]) for e, o in pairs])), 4)
                for k in ("miss_rate", "hall_rate", "total_rate")
            }
            out[condition][task] = entry
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-clips", type=int, default=24, help="held-out clips (default 24)")
    parser.add_argument("--k", type=int, default=2, help="events dropped / swapped per caption (default 2)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.n_clips < 2 or args.k < 1:
        parser.error(f"--n-clips must be >= 2 and --k >= 1, got {args.n_clips} and {args.k}")
    items = build_items(args.n_clips, args.k, args.seed)
    pm = plugins.build_plugin_manager(entry_points=[])
    if not pm.has_plugin("synth_exact"):
        pm.register(exact_judge, name="synth_exact")
    judged, seconds = {}, {}
    for name in JUDGES:
        judged[name], seconds[name] = run_judge(name, items, pm)
    failed = {name: sum(not j.ok for j in js) for name, js in judged.items()}
    result = {
        "settings": {
            "n_clips": args.n_clips,
            "k": args.k,
            "seed": args.seed,
            "items": len(items),
            "offline_encoder": OfflineOptions().encoder,
        },
        "seconds": {k: round(v, 2) for k, v in seconds.items()},
        "failed_items": failed,
        "conditions": summarise(items, judged),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"{'condition':<11} {'task':<6} {'judge':<12} {'Miss':>6} {'Inc':>6} {'Hallu':>6} {'Total':>6}")
    for condition, tasks in result["conditions"].items():
        for task, entry in tasks.items():
            rows = [("truth", entry["truth"])] if isinstance(entry["truth"], dict) else []
            for name, r in rows + [(j, entry[j]) for j in JUDGES]:
                print(
                    f"{condition:<11} {task:<6} {name:<12} {r['miss_rate']:>6.3f} {r['incorrect_rate']:>6.3f} "
                    f"{r['hallucination_rate']:>6.3f} {r['total_rate']:>6.3f}"
                )
    print(f"seconds: {result['seconds']}; wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
