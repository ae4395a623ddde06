"""The multi-round DPO driver (paper sec. 3.3, Fig. 2-3, App. F); ``vs2 mrdpo`` (:mod:`vs2_plugin.commands.mrdpo`) runs it.

Per round t: sample two captions per video (global, and local for a time interval) from the
current model -> judge them through the ``vs2_*`` hooks -> select pairs with round t's
thresholds -> train one gDPO round with a fresh LoRA proxy (the previous LoRAs merged into the
frozen reference) -> evaluate on the held-out split -> ``vs2_after_round``. It stops early when
the held-out unnatural-pattern rate passes ``stop_unnatural_rate`` (the paper's signal).

Resumable at every step: each step's output is written durably before the step is marked
done in ``<run_dir>/pipeline_state.json``; sampling and judging keep every finished item, and
an interrupted gDPO round resumes from its last checkpoint. A rerun skips what is done.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from vs2_plugin.data.sharegpt import caption_row, write_caption_dataset
from vs2_plugin.errors import ConfigError, Vs2Error
from vs2_plugin.gdpo.rounds import atomic_write_text
from vs2_plugin.pipeline import console
from vs2_plugin.pipeline.config import MrDPOConfig
from vs2_plugin.pipeline.fingerprint import fingerprints, resume_changes, write_run_record
from vs2_plugin.pipeline.html_report import write_run_html
from vs2_plugin.pipeline.records import JsonlLog, StepState, write_final_model
from vs2_plugin.pipeline.sampling import build_tasks, require_reload_hook, sample
from vs2_plugin.pipeline.screen import drop_failed, screen_videos, video_limits
from vs2_plugin.pipeline.tracking import report_round
from vs2_plugin.pipeline.train import run_training
from vs2_plugin.pipeline.videos import VideoEntry

GT_DATASET = "vs2_gt"
#: the run's inputs whose contents config.json records beside their paths
FINGERPRINTED_INPUTS = ("model_name_or_path", "adapter_name_or_path", "train_videos", "heldout_videos")


def judge_config(cfg: MrDPOConfig, run_dir: Path):
    from vs2_plugin.judge.config import JudgeConfig
    from vs2_plugin.judge.runner import require_judge

    settings = dict(cfg.judge)
    settings.setdefault("cache_path", str(run_dir / "judge_cache.sqlite"))
    return require_judge(JudgeConfig.from_dict(settings))


def video_events(videos: list[VideoEntry], jcfg, cache_path: Path) -> dict[str, list[str]]:
    """Atomic events per video (``id``) and per local interval (``id@start-end``), extracted once."""
    from vs2_plugin.judge.runner import extraction_error, extractions

    cache = json.loads(cache_path.read_text()) if cache_path.is_file() else {}
    wanted: dict[str, tuple[list[str], str | None]] = {}
    for v in videos:
        wanted[v.id] = (v.events, v.reference)
        for iv in v.local:
            wanted[interval_key(v.id, iv.start, iv.end)] = (iv.events, iv.reference)
    todo = [k for k, (events, ref) in wanted.items() if not events and k not in cache]
    if todo:
        extracted = dict(zip(todo, extractions([wanted[k][1] for k in todo], jcfg)))
        failed = [k for k, e in extracted.items() if not e.events]
        cache.update({k: e.events for k, e in extracted.items() if e.events})
        atomic_write_text(cache_path, json.dumps(cache, indent=1))  # keep what succeeded for the rerun
        if failed:
            shown = ", ".join(repr(k) for k in failed[:5]) + (" ..." if len(failed) > 5 else "")
            raise Vs2Error(
                f"judge {jcfg.judge!r} could not extract atomic events from the reference of {len(failed)} "
                f"item(s): {shown}; the first: {extraction_error(extracted[failed[0]])}; "
                f"give these videos an 'events' list or rerun (extracted events are kept)"
            )
    return {k: (events or cache[k]) for k, (events, _) in wanted.items()}


def screened_videos(cfg: MrDPOConfig, run_dir: Path) -> tuple[list[VideoEntry], list[VideoEntry]]:
    """Train and held-out videos with bad rows left out (``bad_samples: skip``, listed in
    ``run_dir/skipped_videos.jsonl``) or refused (``fail``)."""
    limits = video_limits(cfg)
    train, _ = screen_videos(cfg.train_videos, run_dir, policy=cfg.bad_samples, limits=limits, tag="train")
    if not cfg.heldout_videos:
        return train, train
    held, _ = screen_videos(cfg.heldout_videos, run_dir, policy=cfg.bad_samples, limits=limits, tag="heldout")
    return train, held


def interval_key(video_id: str, start: float, end: float) -> str:
    return f"{video_id}@{start:g}-{end:g}"


JUDGE_CHUNK = 32  # captions judged between two appends to the step's log


def judge_samples(
    rows: list[dict[str, Any]], events: dict[str, list[str]], jcfg, out_path: Path, max_failure_rate: float = 1.0
) -> list[dict[str, Any]]:
    """Judge sampled captions (kept per item in ``out_path``); returns rows with metrics.

    A judgment that failed (after the judge's own retries) is kept as failed -- left out of pairs
    and means -- while failures stay within ``max_failure_rate`` of ``rows``. Above it (an outage,
    a bad key) only the successful judgments are kept and :class:`Vs2Error` stops the step, so a
    rerun asks the judge again for exactly the failed captions.
    """
    from vs2_plugin.judge.runner import judge_items
    from vs2_plugin.judge.types import JudgeItem

    log = JsonlLog(out_path)
    done = log.by_key()
    todo = [r for r in rows if r["key"] not in done]
    if todo:
        items = []
        for r in todo:
            ev_key = r["video_id"] if r["task"] == "global" else interval_key(r["video_id"], r["start"], r["end"])
            items.append(JudgeItem(id=r["key"], caption=r["caption"], events=events[ev_key], task=r["task"]))
        failed = []
        with console.step(f"judge {out_path.name}", total=len(items), unit="caption"):
            # judged JUDGE_CHUNK at a time, each chunk's judgments kept before the next is asked:
            # an interrupted step loses one chunk at most
            for start in range(0, len(items), JUDGE_CHUNK):
                chunk = slice(start, start + JUDGE_CHUNK)
                for r, j in zip(todo[chunk], judge_items(items[chunk], jcfg)):
                    row = {**r, "judgment": j.to_dict()}
                    if j.ok:
                        log.append(row)
                    else:
                        failed.append(row)
        earlier = sum(1 for r in rows if r["key"] in done and done[r["key"]]["judgment"].get("status") != "ok")
        if rows and (len(failed) + earlier) / len(rows) > max_failure_rate:
            first = failed[0]["judgment"].get("error", "unknown error")
            raise Vs2Error(
                f"{len(failed)} of {len(rows)} captions could not be judged ({out_path.name}; first error: "
                f"{first}), more than max_judge_failure_rate {max_failure_rate:.0%}; the {len(rows) - len(failed)} "
                f"judged ones are kept, rerun to judge the rest"
            )
        for row in failed:  # few enough: kept as failed, left out of pairs and means
            log.append(row)
    done = log.by_key()
    return [done[r["key"]] for r in rows]


def scored_samples(judged: list[dict[str, Any]]):
    from vs2_plugin.judge.types import ScoredSample

    out = []
    for r in judged:
        j = r["judgment"]
        if j.get("status") != "ok":  # a failed judgment never yields a pair
            continue
        out.append(
            ScoredSample(
                video_id=r["video_id"],
                task=r["task"],
                prompt="<video>" + r["prompt"],
                caption=r["caption"],
                error=j["total_rate"],
                rep=j.get("rep_rate") or 0.0,
                sample_id=r["key"],
                media=[r["video"]],
                miss=j.get("miss_rate"),
                hall=j.get("hall_rate"),
            )
        )
    return out


def gdpo_round_record(gdpo_dir: Path, gdpo_round: int) -> dict[str, Any]:
    """Round ``gdpo_round``'s entry of ``rounds.json`` (``{}`` if absent): adapter, ``gt_match_rate``, ..."""
    path = gdpo_dir / "rounds.json"
    rounds = json.loads(path.read_text(encoding="utf-8"))["rounds"] if path.is_file() else []
    return next((r for r in rounds if r.get("round") == gdpo_round), {})


def summarize_judged(judged: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean Rep / Miss / Hall / Total and the unnatural-pattern rate, per task; a rate the judge did
    not measure on every judged item is None (:func:`vs2_plugin.judge.metrics.summarize`)."""
    from vs2_plugin.judge.metrics import is_unnatural, summarize

    out: dict[str, Any] = {}
    for task in ("global", "local"):
        rows = [r for r in judged if r["task"] == task]
        if not rows:
            continue
        rates = summarize(r["judgment"] for r in rows)
        out[task] = {
            "n": len(rows),
            "failed": rates["n_failed"],
            **{name: rates[f"{name}_rate"] for name in ("rep", "miss", "hall", "total")},
            "unnatural": sum(is_unnatural(r["caption"]) for r in rows) / len(rows),
        }
    return out


def write_gt_dataset(videos: list[VideoEntry], cfg: MrDPOConfig, data_dir: Path) -> None:
    """The SFT ground truth of eq. 11 as a LLaMA-Factory dataset (global and local references)."""
    rows = []
    for v in videos:
        if v.reference:
            rows.append(caption_row("<video>" + cfg.sampling.global_prompt, v.reference, "videos", v.video))
        for iv in v.local:
            if iv.reference:
                prompt = cfg.sampling.local_prompt.format(start=iv.start, end=iv.end)
                rows.append(caption_row("<video>" + prompt, iv.reference, "videos", v.video))
    if not rows:
        raise Vs2Error("no reference captions for the ground-truth term of gDPO; give 'reference' in the video list")
    write_caption_dataset(data_dir, GT_DATASET, rows)


def evaluate(
    videos: list[VideoEntry],
    events,
    cfg: MrDPOConfig,
    jcfg,
    adapters: list[str],
    out_dir: Path,
    tag: str,
    progress: bool,
) -> dict[str, Any]:
    """Greedy captions of the held-out videos (global, and every local interval), judged: the
    round's metrics."""
    tasks = build_tasks(videos, cfg.sampling, 1, samples=1, greedy=True, tag=tag, all_intervals=True)
    rows = sample(
        tasks,
        out_dir / f"{tag}_captions.jsonl",
        model=cfg.model_name_or_path,
        adapters=adapters,
        infer=cfg.infer,
        cfg=cfg.sampling,
        seed=cfg.seed,
        progress=progress,
    )
    rows, _ = drop_failed(rows, out_dir.parent, f"{tag} sampling {out_dir.name}", cfg.bad_samples)
    judged = judge_samples(rows, events, jcfg, out_dir / f"{tag}_judged.jsonl", cfg.max_judge_failure_rate)
    return summarize_judged(judged)


# ----------------------------------------------------------------------------- the loop


def round_train_args(cfg: MrDPOConfig, model: str, init: list[str], rdir: Path, gdpo_round: int) -> dict[str, Any]:
    """The ``llamafactory-cli train`` arguments of gDPO round ``gdpo_round`` (its pairs in ``rdir/pairs``):
    the config's train arguments (its train_recipe's, then ``train``) plus what the driver sets."""
    run_dir = Path(cfg.run_dir).resolve()
    args = {
        **cfg.train,
        "stage": "gdpo",
        "do_train": True,
        "model_name_or_path": model,
        "dataset": "pairs",
        "dataset_dir": str(rdir / "pairs"),
        "gt_dataset": GT_DATASET,
        "gt_dataset_dir": str(run_dir / "data"),
        "gdpo_lambda": cfg.gdpo_lambda,
        "gdpo_rounds": True,
        "gdpo_round": gdpo_round,
        "output_dir": str(run_dir / "gdpo"),
        "seed": cfg.seed,
    }
    args.setdefault("template", cfg.template)
    if init:
        args["adapter_name_or_path"] = ",".join(init)
    return args


def lora_mode(cfg: MrDPOConfig) -> str:
    """``gdpo_lora_mode`` of the rounds: the config's ``train`` (or its train recipe) or GDPOArguments' default."""
    from vs2_plugin.gdpo.config import GDPOArguments

    return cfg.train.get("gdpo_lora_mode", GDPOArguments.__dataclass_fields__["gdpo_lora_mode"].default)


def round_adapters(state: StepState, run_dir: Path, t: int, init: list[str], single_lora: bool) -> list[str]:
    """The adapters of the model after round ``t``: ``init``, then the LoRA of each trained round.

    A round's LoRA is read from *this* run folder (``gdpo/round-NNN`` by its gDPO round number),
    not from the path recorded when it was trained: a run folder moved or copied elsewhere resumes
    on its own adapters, never on those left at the old place.
    """
    trained = [state.result(k, "train") for k in range(1, t + 1)]
    adapters = [str(run_dir / "gdpo" / f"round-{r['gdpo_round']:03d}") for r in trained if r and r.get("adapter")]
    # proxies: every round's LoRA stacks on the ones before; single: the last one holds them all
    return init + (adapters[-1:] if single_lora else adapters)


#: the events extracted from the videos' references (by the run's judge), kept for every round
EVENTS_FILE = "data/events.json"


def start_run_folder(cfg: MrDPOConfig) -> Path:
    """The run folder, resolved and made, with ``config.json`` written; a rerun resumes only with
    the settings and inputs its finished steps were made with (:func:`resume_changes`), else
    ConfigError. A run stopped before it made anything (a list not found, a judge without its key)
    is no run to resume: its rerun starts afresh with the corrected settings."""
    run_dir = Path(cfg.run_dir).resolve()
    settings = json.loads(json.dumps(asdict(cfg), default=str))  # as config.json reads back
    # paths may change between reruns (a moved folder), contents may not
    inputs = fingerprints({key: getattr(cfg, key) for key in FINGERPRINTED_INPUTS})
    made = (run_dir / StepState.FILE).exists() or (run_dir / EVENTS_FILE).exists() or any(run_dir.glob("round-*"))
    changed = resume_changes(run_dir / "config.json", settings, inputs) if made else []
    if changed:
        raise ConfigError(
            f"{run_dir} was started with other settings: {'; '.join(changed)}. Resume it with the "
            "settings of its config.json (rounds, report_to, paths, workers and timeouts may change), or "
            "give another run_dir (vs2 demo: another --out)"
        )
    write_run_record(run_dir / "config.json", settings, inputs)
    return run_dir


def pair_step(rdir: Path, t: int, schedule) -> dict[str, int]:
    """Round ``t``'s preference pairs from its judged samples (``rdir/pairs``), by the round's
    thresholds and any ``vs2_select_pairs`` plugin; the record of the step."""
    from vs2_plugin.judge.pairs import is_blank, select_pairs, write_pairwise_dataset

    judged = JsonlLog(rdir / "judged.jsonl").rows()
    pairs = select_pairs(scored_samples(judged), t, schedule)
    write_pairwise_dataset(pairs, rdir / "pairs", "pairs")
    blank = sum(1 for r in judged if is_blank(r["caption"]))
    if blank:  # many of them is a model falling silent
        console.warn(f"round {t}: {blank} of {len(judged)} sampled captions are blank and were not paired")
    return {"count": len(pairs), "blank_samples": blank}


def train_step(cfg: MrDPOConfig, state: StepState, t: int, model: str, init: list[str], rdir: Path) -> dict[str, Any]:
    """Round ``t``'s gDPO training on its pairs (``llamafactory-cli train``), numbered among the
    rounds that trained (a round without pairs trains nothing); the record of the step."""
    n_pairs = state.result(t, "pairs")["count"]
    if n_pairs == 0:
        return {"skipped": "no sample pair passed this round's thresholds"}
    gdpo_round = 1 + sum(1 for k in range(1, t) if (state.result(k, "train") or {}).get("adapter"))
    run_training(round_train_args(cfg, model, init, rdir, gdpo_round), rdir / "train.yaml", rdir / "train.log")
    gdpo_dir = Path(cfg.run_dir).resolve() / "gdpo"
    return {
        "gdpo_round": gdpo_round,
        "adapter": str(gdpo_dir / f"round-{gdpo_round:03d}"),
        "pairs": n_pairs,
        "gt_match_rate": gdpo_round_record(gdpo_dir, gdpo_round).get("gt_match_rate"),
    }


def round_rows(state: StepState, rounds: int) -> list[dict[str, Any]]:
    """The report's rows: the held-out metrics before round 1 and after each evaluated round, with its pairs."""
    rows = [{"stage": "start", **(state.result(0, "eval") or {})}]
    for t in range(1, rounds + 1):
        if state.done(t, "eval"):
            pairs = (state.result(t, "pairs") or {}).get("count")
            rows.append({"stage": f"round {t}", **state.result(t, "eval"), "pairs": pairs})
    return rows


def run_mrdpo(cfg: MrDPOConfig, progress: bool = True) -> dict[str, Any]:
    """The multi-round loop of paper sec. 3.3 in ``cfg.run_dir``: held-out evaluation, then per round
    sample -> judge -> pairs -> gDPO training (a fresh LoRA proxy) -> held-out evaluation -> report ->
    ``vs2_after_round`` hook, stopping early on the unnatural-pattern rate. Every step is recorded
    once done, so a rerun resumes at the first unfinished one. Returns the report's rows, the final
    adapters, the Markdown report and the run folder."""
    from vs2_plugin.pipeline.generation import check_model_files
    from vs2_plugin.pipeline.report import write_report
    from vs2_plugin.plugins import call_hook

    require_reload_hook(cfg.sampling)  # the openai backend must not sample round t+1 from round t's server
    check_model_files(cfg.model_name_or_path, cfg.adapter_name_or_path, "model_name_or_path {}", "adapter {}")
    run_dir = start_run_folder(cfg)
    state = StepState(run_dir)
    train_videos, held_videos = screened_videos(cfg, run_dir)
    jcfg = judge_config(cfg, run_dir)
    from vs2_plugin.judge.runner import judge_not_ready

    if why := judge_not_ready(jcfg):  # before sampling: the judge is first needed hours later
        raise ConfigError(f"judge {jcfg.judge!r}: {why}")
    events = video_events(train_videos + [v for v in held_videos if v not in train_videos], jcfg, run_dir / EVENTS_FILE)
    write_gt_dataset(train_videos, cfg, run_dir / "data")
    dropped: set[str] = set()
    schedule = cfg.schedule()
    model = (
        str(Path(cfg.model_name_or_path).resolve()) if Path(cfg.model_name_or_path).exists() else cfg.model_name_or_path
    )
    init = [str(Path(a).resolve()) for a in cfg.adapter_name_or_path]

    single_lora = lora_mode(cfg) == "single"

    def adapters_after(t: int) -> list[str]:
        return round_adapters(state, run_dir, t, init, single_lora)

    console.set_round(0)
    if not state.done(0, "eval"):
        state.mark(
            0, "eval", evaluate(held_videos, events, cfg, jcfg, init, run_dir / "round-000", "heldout", progress)
        )
    if not state.done(0, "report"):
        report_round(cfg.reporters, run_dir, 0, state.result(0, "eval"))
        state.mark(0, "report")

    for t in range(1, cfg.rounds + 1):
        if state.stopped:
            break
        console.set_round(t, cfg.rounds)
        rdir = run_dir / f"round-{t:03d}"
        if not state.done(t, "sample"):
            tasks = build_tasks(train_videos, cfg.sampling, t)
            sample(
                tasks,
                rdir / "samples.jsonl",
                model=model,
                adapters=adapters_after(t - 1),
                infer=cfg.infer,
                cfg=cfg.sampling,
                seed=cfg.seed + t,
                progress=progress,
            )
        # videos the model could not read while sampling: out of the judging, pairs, ground
        # truth and later rounds (listed in skipped_videos.jsonl); bad_samples: fail stops here,
        # before the sampling step counts as done
        rows, failed = drop_failed(
            JsonlLog(rdir / "samples.jsonl").rows(), run_dir, f"train sampling {rdir.name}", cfg.bad_samples
        )
        if not state.done(t, "sample"):
            state.mark(t, "sample")
        if failed - dropped:
            dropped |= failed
            train_videos = [v for v in train_videos if v.id not in dropped]
            write_gt_dataset(train_videos, cfg, run_dir / "data")
        if not state.done(t, "judge"):
            judged = judge_samples(rows, events, jcfg, rdir / "judged.jsonl", cfg.max_judge_failure_rate)
            state.mark(t, "judge", summarize_judged(judged))
        if not state.done(t, "pairs"):
            state.mark(t, "pairs", pair_step(rdir, t, schedule))
        if not state.done(t, "train"):
            state.mark(t, "train", train_step(cfg, state, t, model, init, rdir))
        if not state.done(t, "eval"):
            state.mark(
                t, "eval", evaluate(held_videos, events, cfg, jcfg, adapters_after(t), rdir, "heldout", progress)
            )
        metrics = state.result(t, "eval")
        if not state.done(t, "report"):  # once per round: a resumed run sends no duplicate points
            report_round(cfg.reporters, run_dir, t, metrics)
            state.mark(t, "report")
        if not state.done(t, "hook"):
            call_hook("vs2_after_round", round_index=t, run_dir=run_dir, metrics=metrics)
            state.mark(t, "hook")
        unnatural = max((m.get("unnatural") or 0.0) for m in metrics.values()) if metrics else 0.0
        if unnatural > cfg.stop_unnatural_rate and not state.stopped:
            state.stop(
                t,
                f"held-out unnatural-pattern rate {unnatural:.1%} > stop_unnatural_rate {cfg.stop_unnatural_rate:.1%}",
            )

    rows = round_rows(state, cfg.rounds)
    notes = [f"stopped early after round {state.stopped['round']}: {state.stopped['reason']}"] if state.stopped else []
    final = adapters_after(cfg.rounds)
    md = write_report(run_dir, rows, "mrDPO rounds", {"final_adapters": final, "stopped": state.stopped}, notes)
    write_run_html(run_dir, rows, "mrDPO rounds", notes)
    write_final_model(run_dir, model, final)
    return {"rows": rows, "final_adapters": final, "report_md": md, "run_dir": str(run_dir)}
