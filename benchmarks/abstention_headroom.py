"""How far leaving out what it is unsure of could lower the SFT model's Total: its own confidence.

``learning.py``'s mrDPO target asks the rounds to lower the held-out Total (Miss + Hall) to 0.85 of
the SFT model's. A preference round can teach two things: to tell more events right (to see
better), or to leave out the statements the model would get wrong. This measures how far the
second could go on what the model itself knows. Each greedy caption of the SFT model (round 1's
starting model), global and local, is teacher-forced under the prompt it was written for, and each
of its sentences gets the model's confidence in it: the lowest (``min``) or the mean (``mean``)
log-probability of its tokens (a token belongs to the sentence that holds its last character). The
caption without its sentences below a threshold is judged again by the exact judge. Totals are
the benchmark's (``mrdpo_total_ratio``): the mean of the global captions' mean Total and the local
captions'.

* ``rule``: the statistic and threshold with the lowest Total on round 1's clips (the RL clips:
  greedy captions in ``<mrdpo>/headroom/greedy.jsonl`` and ``greedy_local.jsonl``, one per
  interval, written when missing), applied unchanged to the held-out clips (the captions of
  ``<mrdpo>/round-000/heldout_captions.jsonl``, which the benchmark's SFT row judged):
  ``heldout.ratio`` = Total after leaving out / before, with a 95 % interval (paired bootstrap
  over the clips), and per task;
* ``heldout.best_in_sample``: the best statistic and threshold chosen on the held-out captions
  themselves, flattered by the choice;
* ``oracle``: every sentence whose removal lowers its caption's Total left out (each tried alone
  against the whole caption), what a rule that only leaves sentences out could reach at best.
  Left out, a hallucinated statement lowers Hall; an event told with a wrong detail moves from
  Incorrect to missed (Total unchanged); one told right raises Miss;
* ``sentence_auc``: per statistic, the AUC with which the confidence ranks the held-out sentences
  whose removal raises Total above those whose removal lowers it (sentences whose removal changes
  nothing are left out).

A dropped sentence leaves the others as written: an "At the same time, ..." after it then shares
the time of the sentence before, which the judge's order rule accepts (it only asks matched events
not to be told in reverse order). This is not a decoding option of the package: it says how much
of the target a round could reach by teaching abstention alone. On a finished run folder:

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/abstention_headroom.py --out outputs/learning \\
        [--results benchmarks/results/learning_abstention_headroom.json]
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

TASK = "global"
TASKS = ("global", "local")
STATISTICS = ("min", "mean")
#: thresholds tried: these percentiles of the fitting sentences' confidences, and keeping everything
PERCENTILES = tuple(range(0, 101, 2))


def sentence_spans(caption: str) -> list[tuple[int, int]]:
    """Character spans of the caption's sentences (split after . ! ? ; and at line breaks).

    >>> sentence_spans('A tone sounds. Then a voice says "hi".')
    [(0, 14), (15, 38)]
    """
    from vs2_plugin.synth.grammar import SENTENCE_BREAK  # the exact judge's sentences

    bounds, start = [], 0
    for gap in SENTENCE_BREAK.finditer(caption):
        bounds.append((start, gap.start()))
        start = gap.end()
    bounds.append((start, len(caption)))
    spans = []
    for start, stop in bounds:  # without the blanks around a sentence; a blank one is none
        text = caption[start:stop]
        if text.strip():
            lead = len(text) - len(text.lstrip())
            spans.append((start + lead, start + len(text.rstrip())))
    return spans


def sentence_confidence(
    token_ends: list[int], token_logprobs: list[float], spans: list[tuple[int, int]]
) -> list[dict[str, float]]:
    """Per sentence, the lowest and the mean log-probability of its tokens; a token belongs to the
    sentence that holds its last character (``token_ends``: end offsets, exclusive). A sentence
    without a token of its own (it cannot happen with a whole caption) gets 0.0, certain."""
    out = []
    for start, stop in spans:
        own = [lp for end, lp in zip(token_ends, token_logprobs) if start < end <= stop]
        out.append({"min": min(own), "mean": statistics.mean(own)} if own else {"min": 0.0, "mean": 0.0})
    return out


def without_sentences(caption: str, spans: list[tuple[int, int]], keep: list[bool]) -> str:
    """The caption with the sentences not kept left out (the others exactly as written)."""
    return " ".join(caption[s:e] for (s, e), k in zip(spans, keep) if k)


def auc(positive: list[float], negative: list[float]) -> float | None:
    """Probability that a positive scores above a negative (ties count half); None if a side is empty."""
    from offline_judge_auc import roc_auc

    if not positive or not negative:
        return None
    return roc_auc([1] * len(positive) + [0] * len(negative), list(positive) + list(negative))


def totals(items: list[tuple[str, list[str], str]]) -> dict[str, float]:
    """Exact-judge Total of each ``(key, events, caption)``."""
    from vs2_plugin.judge.types import JudgeItem
    from vs2_plugin.synth.judge import judge

    verdicts = judge([JudgeItem(id=k, caption=c, events=e) for k, e, c in items])
    return {v.id: v.rates()["total_rate"] for v in verdicts if v.status == "ok"}


def whole_totals(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Total of each caption as written."""
    return totals([(r["key"], r["events"], r["caption"]) for r in rows])


def abstained_totals(rows: list[dict[str, Any]], statistic: str, threshold: float) -> dict[str, float]:
    """Total per caption with its sentences of confidence below ``threshold`` left out."""
    items = []
    for r in rows:
        keep = [c[statistic] >= threshold for c in r["confidence"]]
        items.append((r["key"], r["events"], without_sentences(r["caption"], r["spans"], keep)))
    return totals(items)


def by_clip(rows: list[dict[str, Any]], per_caption: dict[str, float]) -> dict[str, dict[str, list[float]]]:
    """``{clip: {"global": [...], "local": [...]}}``, the shape ``learning.total_ratio`` reads."""
    out: dict[str, dict[str, list[float]]] = {}
    for r in rows:
        if r["key"] in per_caption:
            out.setdefault(r["clip"], {"global": [], "local": []})[r["task"]].append(per_caption[r["key"]])
    return out


def stage_total(rows: list[dict[str, Any]], per_caption: dict[str, float]) -> float:
    """The benchmark's Total of a stage: the mean of the global captions' mean Total and the local
    captions' (``learning.total_ratio``; a task without captions counts out)."""
    means = [
        statistics.mean(per_caption[r["key"]] for r in rows if r["task"] == task and r["key"] in per_caption)
        for task in TASKS
        if any(r["task"] == task and r["key"] in per_caption for r in rows)
    ]
    return statistics.mean(means)


def candidate_thresholds(rows: list[dict[str, Any]], statistic: str) -> list[float]:
    """:data:`PERCENTILES` of the sentences' confidences, and -inf (every sentence kept)."""
    import numpy as np

    values = [c[statistic] for r in rows for c in r["confidence"]]
    return [-math.inf] + sorted({float(v) for v in np.percentile(values, PERCENTILES)})


def best_rule(rows: list[dict[str, Any]]) -> tuple[str, float, float]:
    """(statistic, threshold, :func:`stage_total`) with the lowest stage Total on ``rows`` (ties:
    the lower threshold, i.e. the rule that keeps more, and ``min`` before ``mean``)."""
    best = None
    for statistic in STATISTICS:
        for threshold in candidate_thresholds(rows, statistic):
            total = stage_total(rows, abstained_totals(rows, statistic, threshold))
            if best is None or total < best[2] - 1e-12:
                best = (statistic, threshold, total)
    return best


def removal_effects(rows: list[dict[str, Any]], whole: dict[str, float] | None = None) -> list[list[float]]:
    """Per caption, per sentence: Total without that sentence minus Total of the whole caption
    (``whole``: the captions' :func:`whole_totals`, judged here when not given)."""
    whole = whole_totals(rows) if whole is None else whole
    items = []
    for r in rows:
        for k in range(len(r["spans"])):
            keep = [j != k for j in range(len(r["spans"]))]
            items.append((f"{r['key']}#{k}", r["events"], without_sentences(r["caption"], r["spans"], keep)))
    alone = totals(items)
    return [[round(alone[f"{r['key']}#{k}"] - whole[r["key"]], 9) for k in range(len(r["spans"]))] for r in rows]


def oracle_totals(rows: list[dict[str, Any]], effects: list[list[float]]) -> dict[str, float]:
    """Total per caption with every sentence whose removal lowers its Total left out."""
    items = []
    for r, eff in zip(rows, effects):
        items.append((r["key"], r["events"], without_sentences(r["caption"], r["spans"], [e >= 0 for e in eff])))
    return totals(items)


def sentence_auc(rows: list[dict[str, Any]], effects: list[list[float]]) -> dict[str, float | None]:
    """Per statistic: AUC of the confidence, sentences whose removal raises Total (positives)
    against those whose removal lowers it."""
    out = {}
    for statistic in STATISTICS:
        pos = [c[statistic] for r, eff in zip(rows, effects) for c, e in zip(r["confidence"], eff) if e > 0]
        neg = [c[statistic] for r, eff in zip(rows, effects) for c, e in zip(r["confidence"], eff) if e < 0]
        value = auc(pos, neg)
        out[statistic] = None if value is None else round(value, 4)
    return out


def _threshold(value: float) -> float | None:
    return None if math.isinf(value) else round(value, 4)


def _per_task(rows: list[dict[str, Any]], before: dict[str, float], after: dict[str, float]) -> dict[str, Any]:
    out = {}
    for task in TASKS:
        own = [r for r in rows if r["task"] == task]
        if own:
            b, a = stage_total(own, before), stage_total(own, after)
            out[task] = {"captions": len(own), "greedy_total": round(b, 4), "abstained_total": round(a, 4)}
            out[task]["ratio"] = round(a / b, 4) if b else None
    return out


def summarise(fit: list[dict[str, Any]], heldout: list[dict[str, Any]]) -> dict[str, Any]:
    """The numbers of the module docstring, from captions with their sentence confidences."""
    from learning import paired_clip_interval, total_ratio

    statistic, threshold, fit_total = best_rule(fit)
    fit_before = stage_total(fit, whole_totals(fit))
    before, after = whole_totals(heldout), abstained_totals(heldout, statistic, threshold)
    held_before, held_after = stage_total(heldout, before), stage_total(heldout, after)
    in_sample = best_rule(heldout)
    effects = removal_effects(heldout, before)
    oracle = stage_total(heldout, oracle_totals(heldout, effects))
    return {
        "rule": {"statistic": statistic, "threshold": _threshold(threshold)},
        "fit": {
            "captions": len(fit),
            "clips": len({r["clip"] for r in fit}),
            "greedy_total": round(fit_before, 4),
            "abstained_total": round(fit_total, 4),
            "ratio": round(fit_total / fit_before, 4) if fit_before else None,
        },
        "heldout": {
            "captions": len(heldout),
            "clips": len({r["clip"] for r in heldout}),
            "sentences": sum(len(r["spans"]) for r in heldout),
            "sentences_kept": sum(c[statistic] >= threshold for r in heldout for c in r["confidence"]),
            "greedy_total": round(held_before, 4),
            "abstained_total": round(held_after, 4),
            "ratio": round(held_after / held_before, 4) if held_before else None,
            "ratio_ci95": paired_clip_interval(by_clip(heldout, before), by_clip(heldout, after), total_ratio)
            if all(any(r["task"] == t for r in heldout) for t in TASKS)
            else None,
            "tasks": _per_task(heldout, before, after),
            "best_in_sample": {
                "statistic": in_sample[0],
                "threshold": _threshold(in_sample[1]),
                "ratio": round(in_sample[2] / held_before, 4) if held_before else None,
            },
        },
        "oracle": {"total": round(oracle, 4), "ratio": round(oracle / held_before, 4) if held_before else None},
        "sentence_auc": sentence_auc(heldout, effects),
    }


def caption_rows(predictions: list[dict[str, Any]], events_of) -> list[dict[str, Any]]:
    """Captions as ``{key, clip, task, video, prompt, events, caption, spans}`` from ``vs2 caption``
    rows (``id`` / ``predict``, prompt after ``<video>``) or mrDPO evaluation rows (``video_id`` /
    ``caption``); ``events_of(row)``: the reference events of a row's clip or interval, or None
    (an error naming the clip)."""
    from vs2_plugin.pipeline.generation import VIDEO_PLACEHOLDER

    rows = []
    for p in predictions:
        clip = str(p.get("id") or p["video_id"])
        caption = p["predict"] if "predict" in p else p["caption"]
        events = events_of(p)
        if events is None:
            raise SystemExit(
                f"clip {clip!r} ({p.get('task', TASK)}) has a caption but no events in the run's clip lists"
            )
        prompt = p["prompt"][len(VIDEO_PLACEHOLDER) :] if p["prompt"].startswith(VIDEO_PLACEHOLDER) else p["prompt"]
        rows.append(
            {
                "key": str(p["key"]),
                "clip": clip,
                "task": p.get("task", TASK),
                "video": p["video"],
                "prompt": prompt,
                "events": list(events),
                "caption": caption,
                "spans": sentence_spans(caption),
            }
        )
    return rows


def video_events(path: str | Path):
    """``events_of`` for :func:`caption_rows`: a row's events from a clip list (global: the clip's;
    local: its interval's, as ``learning.events_of`` matches them)."""
    from learning import events_of as learning_events_of

    from vs2_plugin.pipeline.videos import load_videos

    videos = {v.id: v for v in load_videos(Path(path))}

    def events_of(row: dict[str, Any]) -> list[str] | None:
        keyed = {**row, "video_id": str(row.get("id") or row.get("video_id")), "task": row.get("task", TASK)}
        try:
            return learning_events_of(keyed, videos)
        except (KeyError, StopIteration):  # a clip or an interval the list does not have
            return None

    return events_of


def add_confidence(rows: list[dict[str, Any]], settings, progress: bool = False) -> None:
    """Teacher-force each caption (and its end of turn) under its prompt and store its sentences'
    confidences (``row["confidence"]``)."""
    import torch
    from tqdm import tqdm

    from vs2_plugin.pipeline.generation import CaptionGenerator, PromptGroup

    generator = CaptionGenerator(settings.model, settings.adapters, settings.infer)
    tokenizer = generator.tokenizer
    end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    with torch.inference_mode():
        for row in tqdm(rows, disable=not progress, desc="confidence"):
            inputs = generator.batch_inputs([PromptGroup(row["video"], row["prompt"], ["probe"])])
            encoded = tokenizer(row["caption"], add_special_tokens=False, return_offsets_mapping=True)
            target = encoded["input_ids"] + [end]
            ids = torch.cat([inputs["input_ids"], torch.tensor([target], device=inputs["input_ids"].device)], dim=1)
            inputs.update(input_ids=ids, attention_mask=torch.ones_like(ids))
            logits = generator.model(**inputs).logits[0, -len(target) - 1 : -2].float()
            index = torch.tensor(target[:-1], device=logits.device)[:, None]  # the caption's tokens
            logprobs = torch.log_softmax(logits, -1).gather(1, index)[:, 0]
            ends = [int(b) for _, b in encoded["offset_mapping"]]
            row["confidence"] = sentence_confidence(ends, logprobs.tolist(), row["spans"])


def caption_rl_clips(mrdpo_dir: Path, progress: bool = False) -> list[Path]:
    """Greedy global and local captions of round 1's clips by its starting model (the global ones
    shared with ``preference_headroom.py``), in ``<mrdpo_dir>/headroom/``; finished files are kept."""
    from preference_headroom import caption_rl_greedy, starting_settings

    from vs2_plugin.pipeline.caption import caption_videos

    config = json.loads((mrdpo_dir / "config.json").read_text(encoding="utf-8"))
    local = mrdpo_dir / "headroom" / "greedy_local.jsonl"
    caption_videos(starting_settings(mrdpo_dir), Path(config["train_videos"]), local, task="local", progress=progress)
    return [caption_rl_greedy(mrdpo_dir, progress)] + ([local] if local.is_file() else [])  # clips may have no interval


def measure(mrdpo_dir: Path, progress: bool = False) -> dict[str, Any]:
    """Caption round 1's clips if needed, score both caption sets and summarise."""
    from preference_headroom import starting_settings

    from vs2_plugin.files import read_jsonl

    config = json.loads((mrdpo_dir / "config.json").read_text(encoding="utf-8"))
    fit_events = video_events(config["train_videos"])
    fit = [row for path in caption_rl_clips(mrdpo_dir, progress) for row in caption_rows(read_jsonl(path), fit_events)]
    heldout_path = mrdpo_dir / "round-000" / "heldout_captions.jsonl"
    heldout = caption_rows(read_jsonl(heldout_path), video_events(config["heldout_videos"]))
    add_confidence(fit + heldout, starting_settings(mrdpo_dir), progress)
    return {"what": __doc__.split("\n")[0], **summarise(fit, heldout)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="outputs/learning", help="a finished learning-benchmark (or demo) run folder")
    parser.add_argument(
        "--results",
        default=str(ROOT / "benchmarks" / "results" / "learning_abstention_headroom.json"),
        help="where the summary goes (JSON)",
    )
    args = parser.parse_args(argv)
    out = Path(args.out).resolve()
    mrdpo_dir = out / "mrdpo" if (out / "mrdpo").is_dir() else out
    if not (mrdpo_dir / "config.json").is_file() or not (mrdpo_dir / "round-000").is_dir():
        raise SystemExit(
            f"{args.out}: not a finished learning-benchmark or mrDPO run folder (no mrDPO config or round-000)"
        )
    text = json.dumps({**measure(mrdpo_dir), "run_folder": out.name}, indent=2) + "\n"
    Path(args.results).write_text(text)
    print(text, end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
