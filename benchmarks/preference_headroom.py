"""Where the preference rounds of the learning benchmark learn: headroom and movement, in sample.

``learning.py`` judges the mrDPO rounds on held-out clips; this reads what each round saw on its
own training clips. For every round of a finished run folder (``<out>/mrdpo/round-NNN``), from the
captions the round sampled (``judged.jsonl``, the exact judge's verdicts) and the pairs it trained
on (``pairs/pairs.json``), global captions only (a round draws its local intervals anew, so only
the global prompts are the same from round to round):

* ``sample_total``: mean Total (Miss + Hall, the benchmark's tables) of the sampled captions, per
  clip the mean of its samples, then over clips;
* ``best_of_samples_total``: per clip the lowest Total among its samples, then over clips: the
  Total of a policy that always wrote the better of its own samples, which is where the pairs drawn
  from them point. ``best_of_samples_ratio`` = that / ``sample_total``;
* ``paired_clips``, ``chosen_total``, ``rejected_total``: the clips with a global pair in the
  round, and the mean Total of the pairs' two sides;
* for a round followed by another (whose samples come from the policy this round trained), the
  next round's ``sample_total`` on the same clips, apart for the clips with a pair and those
  without, with the change and its 95 % interval (bootstrap over the clips). That change is not
  the round's effect alone: a clip has a pair when its two samples differ much, so its own samples
  were unusually far apart and fresh ones regress towards its mean whatever the training (and the
  clips without a pair the other way). ``--control`` removes that: fresh samples of the round's
  starting model on the same clips (another seed), and ``change_vs_control`` = the trained
  policy's Total minus theirs, on fresh samples both, per group. A round whose lesson is learnt
  lowers it on the clips it had pairs for; one whose lesson carries, on the other clips too.

``--greedy-headroom N`` sets this beside what the benchmark measures, greedy captions: it
captions the round-1 clips (global) with round 1's starting model, greedily and N times sampled
(the rounds' temperature, top-p, prompts and media settings; seeds 1..N), into
``<mrdpo run_dir>/headroom/`` (a rerun resumes), and reports under ``greedy``: the greedy captions'
Total, each sample file's mean Total, and the mean over clips of the lowest Total among the first
n sample files (``best_of``), each also divided by the greedy Total: how much better than the
greedy caption the chosen side of a best-against-worst pair of n samples is, in sample. It also
captions those clips greedily with the policy round 1 trained (``after_round_1``): the change of
the greedy Total on the clips round 1 had a global pair for and on the others, with 95 % intervals
(bootstrap over the clips) — whether the round moved the greedy captions on its own training clips,
to set beside the held-out tables.

On a finished run folder:

    vs2 mrdpo outputs/learning/mrdpo/config.json rounds=1 seed=43 run_dir=outputs/learning/control
    .venv/bin/python benchmarks/preference_headroom.py --out outputs/learning \
        --control outputs/learning/control --greedy-headroom 6 \
        --results benchmarks/results/learning_preference_headroom.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TASK = "global"


def global_samples(judged: Path) -> dict[tuple[str, str], tuple[str, float]]:
    """(video path, caption) -> (clip id, Total) of every judged global sample of a round."""
    from vs2_plugin.files import read_jsonl

    out: dict[tuple[str, str], tuple[str, float]] = {}
    for row in read_jsonl(judged):
        verdict = row.get("judgment") or {}
        if row.get("task") == TASK and verdict.get("status") == "ok":
            out[(row["video"], row["caption"])] = (row["video_id"], float(verdict["total_rate"]))
    return out


def totals_per_clip(samples: dict[tuple[str, str], tuple[str, float]]) -> dict[str, list[float]]:
    """clip id -> the Totals of its samples (identical samples of a clip count once)."""
    out: dict[str, list[float]] = defaultdict(list)
    for clip, total in samples.values():
        out[clip].append(total)
    return dict(out)


def _text(side: Any) -> str:
    return side["value"] if isinstance(side, dict) else str(side)


def global_pairs(pairs_json: Path, samples: dict[tuple[str, str], tuple[str, float]]) -> dict[str, tuple[float, float]]:
    """clip id -> (chosen Total, rejected Total) of the round's global pairs (a pair is global when
    both its captions are global samples of the round)."""
    out: dict[str, tuple[float, float]] = {}
    for pair in json.loads(pairs_json.read_text(encoding="utf-8")):
        video = pair["videos"][0]
        chosen, rejected = samples.get((video, _text(pair["chosen"]))), samples.get((video, _text(pair["rejected"])))
        if chosen is not None and rejected is not None:
            out[chosen[0]] = (chosen[1], rejected[1])
    return out


def _mean_over(clips: list[str], per_clip: dict[str, list[float]]) -> float:
    return statistics.mean(statistics.mean(per_clip[c]) for c in clips)


def change_interval(before: dict[str, list[float]], after: dict[str, list[float]], clips: list[str]) -> list[float]:
    """95 % interval of the mean change of Total on ``clips`` (bootstrap over the clips, both rounds
    scored on each draw)."""
    from benchmarks.learning import paired_clip_interval

    b = {c: statistics.mean(before[c]) for c in clips}
    a = {c: statistics.mean(after[c]) for c in clips}

    def change(b, a, draw):
        return statistics.mean(a[c] - b[c] for c in draw)

    return paired_clip_interval(b, a, change)


def _group(before, after, control, group: list[str]) -> dict[str, Any]:
    """Total of the next round's samples on ``group`` against this round's, and against fresh
    samples of this round's starting model (``control``) when there are some."""
    before_total, after_total = _mean_over(group, before), _mean_over(group, after)
    out = {
        "clips": len(group),
        "sample_total_before": round(before_total, 4),
        "sample_total_after": round(after_total, 4),
        "change": round(after_total - before_total, 4),
        "change_ci95": change_interval(before, after, group),
    }
    if control is not None:
        control_total = _mean_over(group, control)
        out["control_sample_total"] = round(control_total, 4)
        out["change_vs_control"] = round(after_total - control_total, 4)
        out["change_vs_control_ci95"] = change_interval(control, after, group)
    return out


def round_summary(
    round_dir: Path, next_round_dir: Path | None, control_round_dir: Path | None = None
) -> dict[str, Any]:
    """The numbers of the module docstring for one round; ``control_round_dir``: a round that
    sampled the same clips from this round's starting model with another seed."""
    samples = global_samples(round_dir / "judged.jsonl")
    totals = totals_per_clip(samples)
    clips = sorted(totals)
    if not clips:
        raise SystemExit(f"{round_dir / 'judged.jsonl'}: no judged global sample")
    pairs = global_pairs(round_dir / "pairs" / "pairs.json", samples)
    sample_total = _mean_over(clips, totals)
    best = statistics.mean(min(totals[c]) for c in clips)
    out: dict[str, Any] = {
        "round": round_dir.name,
        "clips": len(clips),
        "distinct_samples_per_clip": round(statistics.mean(len(totals[c]) for c in clips), 2),
        "sample_total": round(sample_total, 4),
        "best_of_samples_total": round(best, 4),
        "best_of_samples_ratio": round(best / sample_total, 4) if sample_total else None,
        "paired_clips": len(pairs),
        "chosen_total": round(statistics.mean(c for c, _ in pairs.values()), 4) if pairs else None,
        "rejected_total": round(statistics.mean(r for _, r in pairs.values()), 4) if pairs else None,
    }
    if next_round_dir is not None:
        after = totals_per_clip(global_samples(next_round_dir / "judged.jsonl"))
        control = (
            None if control_round_dir is None else totals_per_clip(global_samples(control_round_dir / "judged.jsonl"))
        )
        for name, group in (
            ("paired", [c for c in clips if c in pairs]),
            ("unpaired", [c for c in clips if c not in pairs]),
        ):
            group = [c for c in group if c in after and (control is None or c in control)]
            out[f"after_round_{name}"] = _group(totals, after, control, group) if group else None
    return out


def summarise(mrdpo_dir: Path, control_dir: Path | None = None) -> dict[str, Any]:
    """:func:`round_summary` of every trained round of an mrDPO run folder; ``control_dir``: an
    mrDPO run_dir whose first round sampled the same clips from the same starting model with
    another seed (the control of the first round)."""
    rounds = _rounds(mrdpo_dir)
    control = _rounds(control_dir)[0] if control_dir is not None else None
    summaries = []
    for i, round_dir in enumerate(rounds):
        nxt = rounds[i + 1] if i + 1 < len(rounds) else None
        summaries.append(round_summary(round_dir, nxt, control if i == 0 else None))
    return {"what": __doc__.split("\n\n")[0], "task": TASK, "rounds": summaries}


def starting_settings(mrdpo_dir: Path):
    """Captioning settings of round 1's starting model: the run's model, adapters, media settings,
    prompts and new-token budget (``vs2_plugin.pipeline.caption.Settings``)."""
    from vs2_plugin.pipeline.caption import DEFAULT_INFER, Settings

    cfg = json.loads((mrdpo_dir / "config.json").read_text(encoding="utf-8"))
    sampling = cfg["sampling"]
    return Settings(
        cfg["model_name_or_path"],
        list(cfg.get("adapter_name_or_path") or []),
        {**DEFAULT_INFER, **(cfg.get("infer") or {})},
        global_prompt=sampling["global_prompt"],
        local_prompt=sampling["local_prompt"],
        max_new_tokens=int(sampling["max_new_tokens"]),
    )


def caption_rl_greedy(mrdpo_dir: Path, progress: bool = False) -> Path:
    """Greedy global captions of round 1's clips by round 1's starting model,
    ``<mrdpo_dir>/headroom/greedy.jsonl`` (a finished file is kept)."""
    from vs2_plugin.pipeline.caption import caption_videos

    cfg = json.loads((mrdpo_dir / "config.json").read_text(encoding="utf-8"))
    greedy = mrdpo_dir / "headroom" / "greedy.jsonl"
    caption_videos(starting_settings(mrdpo_dir), Path(cfg["train_videos"]), greedy, progress=progress)
    return greedy


def caption_rl_clips(mrdpo_dir: Path, n_samples: int, progress: bool = False) -> tuple[Path, list[Path], Path]:
    """Global captions of round 1's clips by round 1's starting model: greedy, and ``n_samples``
    times sampled as the rounds sample; and greedy by the policy round 1 trained
    (``<mrdpo_dir>/headroom/``; finished files are kept)."""
    from dataclasses import replace

    from vs2_plugin.pipeline.caption import caption_videos
    from vs2_plugin.pipeline.mrdpo import round_adapters
    from vs2_plugin.pipeline.records import StepState

    cfg = json.loads((mrdpo_dir / "config.json").read_text(encoding="utf-8"))
    sampling = cfg["sampling"]
    settings = starting_settings(mrdpo_dir)
    folder = mrdpo_dir / "headroom"
    videos = Path(cfg["train_videos"])
    greedy = caption_rl_greedy(mrdpo_dir, progress)
    samples = []
    for seed in range(1, n_samples + 1):
        path = folder / f"sample_seed{seed}.jsonl"
        caption_videos(
            settings,
            videos,
            path,
            temperature=float(sampling["temperature"]),
            top_p=float(sampling["top_p"]),
            seed=seed,
            progress=progress,
        )
        samples.append(path)
    single_lora = (cfg.get("train") or {}).get("gdpo_lora_mode") == "single"
    trained = round_adapters(StepState(mrdpo_dir), mrdpo_dir, 1, settings.adapters, single_lora)
    if trained == settings.adapters:
        raise SystemExit(f"{mrdpo_dir}: round 1 trained no adapter")
    after = folder / "greedy_after_round1.jsonl"
    caption_videos(replace(settings, adapters=trained), videos, after, progress=progress)
    return greedy, samples, after


def prediction_totals(path: Path, events: dict[str, list[str]]) -> dict[str, float]:
    """clip id -> Total (exact judge) of each global caption of a ``vs2 caption`` predictions file."""
    from vs2_plugin.files import read_jsonl
    from vs2_plugin.judge.types import JudgeItem
    from vs2_plugin.synth.judge import judge

    rows = [r for r in read_jsonl(path) if r.get("task", TASK) == TASK]
    unknown = sorted({r["id"] for r in rows} - set(events))
    if unknown:
        raise SystemExit(f"{path}: clips not in the run's RL clip list: {unknown[:3]}")
    verdicts = judge([JudgeItem(id=r["id"], caption=r["predict"], events=events[r["id"]]) for r in rows])
    return {v.id: v.rates()["total_rate"] for v in verdicts if v.status == "ok"}


def greedy_headroom(greedy: dict[str, float], samples: list[dict[str, float]]) -> dict[str, Any]:
    """Greedy Total, each sample file's mean Total and the best of the first n files, on the clips
    all of them judged (``--greedy-headroom`` in the module docstring)."""
    clips = sorted(set(greedy).intersection(*samples))
    if not clips:
        raise SystemExit("greedy headroom: no clip judged in every caption file")
    greedy_total = statistics.mean(greedy[c] for c in clips)

    def ratio(x: float) -> float | None:
        return round(x / greedy_total, 4) if greedy_total else None

    best = {n: statistics.mean(min(s[c] for s in samples[:n]) for c in clips) for n in range(1, len(samples) + 1)}
    return {
        "clips": len(clips),
        "greedy_total": round(greedy_total, 4),
        "sample_totals": [round(statistics.mean(s[c] for c in clips), 4) for s in samples],
        "best_of": {str(n): round(b, 4) for n, b in best.items()},
        "best_of_ratio_to_greedy": {str(n): ratio(b) for n, b in best.items()},
    }


def greedy_change(before: dict[str, float], after: dict[str, float], paired: set[str]) -> dict[str, Any]:
    """Greedy Total before and after round 1 on the clips with a global pair and on the others."""
    out: dict[str, Any] = {}
    for name, group in (
        ("paired", sorted(c for c in before if c in after and c in paired)),
        ("unpaired", sorted(c for c in before if c in after and c not in paired)),
    ):
        if not group:
            out[name] = None
            continue
        per_clip_before, per_clip_after = {c: [before[c]] for c in group}, {c: [after[c]] for c in group}
        b, a = _mean_over(group, per_clip_before), _mean_over(group, per_clip_after)
        out[name] = {
            "clips": len(group),
            "greedy_total_before": round(b, 4),
            "greedy_total_after": round(a, 4),
            "change": round(a - b, 4),
            "change_ci95": change_interval(per_clip_before, per_clip_after, group),
        }
    return out


def rl_clip_events(mrdpo_dir: Path) -> dict[str, list[str]]:
    """clip id -> atomic events of the RL clips (the run's ``train_videos``)."""
    from vs2_plugin.files import read_jsonl

    config = json.loads((mrdpo_dir / "config.json").read_text(encoding="utf-8"))
    return {str(r["id"]): list(r.get("events") or []) for r in read_jsonl(config["train_videos"])}


def _rounds(mrdpo_dir: Path) -> list[Path]:
    rounds = sorted(p for p in mrdpo_dir.glob("round-*") if p.name != "round-000" and (p / "judged.jsonl").exists())
    if not rounds:
        raise SystemExit(f"{mrdpo_dir}: no round with judged samples (round-001 onwards)")
    return rounds


def _mrdpo_dir(path: Path) -> Path:
    return path / "mrdpo" if (path / "mrdpo").is_dir() else path  # a run folder or a `vs2 mrdpo` run_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--out", required=True, help="a finished learning-benchmark (or demo) run folder, or a `vs2 mrdpo` run_dir"
    )
    parser.add_argument(
        "--control",
        default=None,
        help="an mrDPO run_dir whose first round sampled the same clips from the same starting model with "
        "another seed (e.g. `vs2 mrdpo ... rounds=1 seed=43`): what the first round's clips show without training",
    )
    parser.add_argument(
        "--greedy-headroom",
        type=int,
        default=0,
        metavar="N",
        help="caption round 1's clips with its starting model greedily and N times sampled, and report the "
        "best of n samples against the greedy captions",
    )
    parser.add_argument("--results", default=None, help="write the summary here as JSON")
    args = parser.parse_args(argv)
    control = _mrdpo_dir(Path(args.control)) if args.control else None
    mrdpo_dir = _mrdpo_dir(Path(args.out))
    payload = summarise(mrdpo_dir, control)
    payload["run_folder"] = Path(args.out).name
    payload["control"] = Path(args.control).name if args.control else None
    if args.greedy_headroom:
        events = rl_clip_events(mrdpo_dir)
        greedy, samples, after = caption_rl_clips(mrdpo_dir, args.greedy_headroom)
        before = prediction_totals(greedy, events)
        payload["greedy"] = greedy_headroom(before, [prediction_totals(f, events) for f in samples])
        first = _rounds(mrdpo_dir)[0]
        paired = set(global_pairs(first / "pairs" / "pairs.json", global_samples(first / "judged.jsonl")))
        payload["greedy"]["after_round_1"] = greedy_change(before, prediction_totals(after, events), paired)
    text = json.dumps(payload, indent=2) + "\n"
    if args.results:
        Path(args.results).parent.mkdir(parents=True, exist_ok=True)
        Path(args.results).write_text(text)
    print(text, end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
