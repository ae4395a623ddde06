"""The offline judge beside the exact judge, on the model captions of the learning benchmark.

``benchmarks/synth_judges.py`` checks the offline judge on captions built to hold known errors;
this checks it on what a pipeline really judges: the greedy held-out captions of every stage of
``benchmarks/learning.py``, which ``synth_exact`` has already judged exactly. Each caption is
judged again by the offline judge (events = the clip's or the interval's exact atomic events,
support = its reference caption, as ``vs2 eval`` does with a reference), and reported:

* per stage, both judges' mean Miss / Hall / Total (global and local captions);
* ``caption_total_rank_correlation``: Spearman correlation of the two judges' Total over every
  caption of every stage (global and local apart);
* ``same_order_share``: for two captions of the same clip and task (same interval) from two
  stages whose exact Totals differ, how often the offline judge orders them the same way (a tie
  counts one half) -- the decision a preference round takes from its judge;
* ``stage_order_agreement``: the same share over pairs of stages, by mean Total.

``learning.py`` writes this under ``offline_judge_beside_exact``; on a finished run folder:

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/offline_beside_exact.py --out outputs/learning \
        [--results benchmarks/results/offline_beside_exact.json]

(the offline judge has changed since a recorded ``learning.json`` was run when the two differ:
``offline_beside_exact.json`` / ``_seed1.json`` are the recorded runs' captions judged by the
offline judge as it was before it read every place an event is told, the run folders having not
been kept since).
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RATES = ("miss_rate", "hall_rate", "total_rate")


def stage_files(out: Path) -> list[tuple[str, Path]]:
    """``(stage, heldout_judged.jsonl)`` of every stage a learning run (or ``vs2 demo``) judged,
    in pipeline order (the stage names of its report); stages that did not run are left out."""
    found = [("base (post-alignment, before SFT)", out / "eval" / "base" / "heldout_judged.jsonl")]
    for folder, first, later in (
        ("mrdpo", "SFT", "mrDPO round {k}"),
        ("mrdpo_after_rebirth", "rebirth", "gDPO after rebirth (round {k})"),
    ):
        k = 0
        while (out / folder / f"round-{k:03d}" / "heldout_judged.jsonl").is_file():
            found.append((later.format(k=k) if k else first, out / folder / f"round-{k:03d}" / "heldout_judged.jsonl"))
            k += 1
    return [(name, path) for name, path in found if path.is_file()]


def average_ranks(values) -> np.ndarray:
    """Ranks 1..n of ``values``, tied values sharing the mean of their ranks ([3, 1, 3] -> [2.5, 1, 2.5])."""
    values = np.asarray(values, dtype=float)
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(1, len(values) + 1)
    for v in np.unique(values):
        tied = values == v
        ranks[tied] = ranks[tied].mean()
    return ranks


def rank_correlation(a, b) -> float:
    """Spearman's correlation: Pearson's on average ranks; nan when either side is constant."""
    ra, rb = average_ranks(a), average_ranks(b)
    if len(ra) < 2 or ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


def same_order_share(pairs) -> tuple[float, int]:
    """``pairs`` of ``(exact_1, exact_2, offline_1, offline_2)``: the share of pairs with
    ``exact_1 != exact_2`` that the offline scores order the same way (a tie counts 1/2), and how
    many such pairs there were. ``[(1, 2, 0.1, 0.3), (1, 2, 0.5, 0.5), (2, 2, 0, 1)]`` -> ``(0.75, 2)``."""
    scores = [1.0 if (o1 - o2) * (e1 - e2) > 0 else 0.5 if o1 == o2 else 0.0 for e1, e2, o1, o2 in pairs if e1 != e2]
    return (float(np.mean(scores)) if scores else float("nan")), len(scores)


def _events_and_support(videos: dict[str, Any]) -> dict[str, tuple[list[str], str | None]]:
    """``(events, reference)`` per held-out clip (its id) and per local interval (the mrDPO
    driver's :func:`~vs2_plugin.pipeline.mrdpo.interval_key`)."""
    from vs2_plugin.pipeline.mrdpo import interval_key

    out = {}
    for v in videos.values():
        out[v.id] = (v.events, v.reference)
        out.update({interval_key(v.id, iv.start, iv.end): (iv.events, iv.reference) for iv in v.local})
    return out


def _means(values: list[dict[str, float]]) -> dict[str, float]:
    return {rate: round(float(np.mean([v[rate] for v in values])), 4) for rate in RATES} if values else {}


def judge_stages(stages: list[tuple[str, Path]], videos: dict[str, Any], encoder: str = "auto") -> dict[str, Any]:
    """The report described in the module docstring for ``stages`` (from :func:`stage_files`) of
    the held-out clips ``videos`` (``{id: VideoEntry}``)."""
    from vs2_plugin.files import read_jsonl
    from vs2_plugin.judge import offline
    from vs2_plugin.judge.encoders import resolve_encoder_name
    from vs2_plugin.judge.types import JudgeItem
    from vs2_plugin.pipeline.mrdpo import interval_key

    truth = _events_and_support(videos)
    rows, items = [], []
    for stage, path in stages:
        for row in read_jsonl(path):
            if row["judgment"].get("status") != "ok":
                continue  # as in the stage tables: a failed judgment counts nowhere
            key = (
                row["video_id"] if row["task"] == "global" else interval_key(row["video_id"], row["start"], row["end"])
            )
            if key not in truth:
                raise ValueError(f"{path}: caption {row['key']!r} is of {key!r}, which the held-out list does not hold")
            events, support = truth[key]
            items.append(
                JudgeItem(id=f"{stage}|{row['key']}", caption=row["caption"], events=events, reference=support)
            )
            rows.append((stage, row))
    judged = offline.judge(items, encoder_name=encoder)
    failed = [j for j in judged if j.status != "ok"]
    if failed:
        raise RuntimeError(
            f"the offline judge failed on {len(failed)} captions, e.g. {failed[0].id}: {failed[0].error}"
        )
    paired = [
        (stage, row, {r: row["judgment"][r] for r in RATES}, {r: j.rates()[r] for r in RATES})
        for (stage, row), j in zip(rows, judged)
    ]

    table, by_stage_total = [], {}
    for stage, _ in stages:
        entry: dict[str, Any] = {"stage": stage}
        for judge_name, side in (("exact", 2), ("offline", 3)):
            entry[judge_name] = {
                task: _means([p[side] for p in paired if p[0] == stage and p[1]["task"] == task])
                for task in ("global", "local")
            }
        table.append(entry)
        by_stage_total[stage] = [
            (entry["exact"]["global"]["total_rate"] + entry["exact"]["local"]["total_rate"]) / 2,
            (entry["offline"]["global"]["total_rate"] + entry["offline"]["local"]["total_rate"]) / 2,
        ]

    correlation, same_order = {}, {}
    for task in ("global", "local"):
        mine = [p for p in paired if p[1]["task"] == task]
        correlation[task] = round(
            rank_correlation([p[2]["total_rate"] for p in mine], [p[3]["total_rate"] for p in mine]), 4
        )
        slots: dict[tuple, list] = {}
        for p in mine:
            slots.setdefault((p[1]["video_id"], p[1].get("start"), p[1].get("end")), []).append(p)
        pairs = [
            (a[2]["total_rate"], b[2]["total_rate"], a[3]["total_rate"], b[3]["total_rate"])
            for same in slots.values()
            for a, b in itertools.combinations(same, 2)
        ]
        share, n = same_order_share(pairs)
        same_order[task] = {"share": round(share, 4), "pairs": n}
    stage_share, stage_pairs = same_order_share(
        [(a[0], b[0], a[1], b[1]) for a, b in itertools.combinations(by_stage_total.values(), 2)]
    )
    return {
        "how": "the held-out captions synth_exact judged at each stage, judged again by the offline judge "
        "(events = the exact atomic events, support = the reference caption); rates are fractions of events",
        "encoder": resolve_encoder_name(encoder),
        "captions": len(paired),
        "stages": table,
        "caption_total_rank_correlation": correlation,
        "same_order_share": same_order,
        "stage_order_agreement": {"share": round(stage_share, 4), "pairs": stage_pairs},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="folder of a finished benchmarks/learning.py (or vs2 demo) run")
    parser.add_argument("--encoder", default="auto", choices=["auto", "minilm", "wordllama"])
    parser.add_argument("--results", default=None, help="also write the JSON here")
    args = parser.parse_args(argv)
    from vs2_plugin.pipeline.videos import load_videos

    out = Path(args.out)
    videos = {v.id: v for v in load_videos(out / "data" / "heldout.jsonl")}
    text = json.dumps({"run_folder": out.name, **judge_stages(stage_files(out), videos, args.encoder)}, indent=2) + "\n"
    if args.results:
        Path(args.results).write_text(text)
    print(text, end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
