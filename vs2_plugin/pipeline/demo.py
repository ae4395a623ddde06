"""The whole pipeline on the tiny offline model and synthetic clips; ``vs2 demo`` (:mod:`vs2_plugin.commands.demo`)
runs it, ``benchmarks/learning.py`` runs it at a larger size with ablations.

synthetic clips (``vs2 synth``) -> build-tiny -> encoder pretraining -> language pretraining
(text only) -> audio alignment -> audio-visual SFT -> mrDPO rounds (the exact judge of the
synthetic clips; pairs by the thresholds of ``recipes/tiny/mrdpo.yaml``, any error difference, in
the demo, by the paper's Table 3 in ``benchmarks/learning.py``) -> rebirth tuning -> 1 more gDPO
round -> report (``report.md``, ``report.html``, ``metrics.json``, ``rounds.png``).

Why synthetic clips: their events are known exactly, so the table measures what each stage
does (a random model misses every event; SFT must bring Miss down; mrDPO rows must differ), and
a broken stage shows. Why language pretraining: a real run starts from a pretrained LLM; the
tiny model is random, and LoRA on random weights learns no language in minutes, so the model
first learns the caption language from text alone (``recipes/tiny/pretrain_text.yaml``, captions
of clips that are never rendered: nothing about seeing or hearing). Why encoder pretraining:
a real run starts from a pretrained ViT and Whisper encoder; the tiny encoders are random and
hide what is on screen or heard, so they are first pretrained on the train clips' exact labels
(:mod:`vs2_plugin.synth.encoders`; only the encoders change, the model still cannot caption).
The bundled real clips (``vs2_plugin/assets/demo_data``) stay the data of the tiny recipes run
alone. The terminal shows one line per step and the stage table; every library
message goes to ``logs/demo.log`` (``--verbose`` shows them).
CPU only, no network, a few minutes. Each stage is skipped when its output already exists, so
an interrupted demo resumes. The report also checks that every stage changed the weights:
the merged model of each stage is compared with the previous stage's.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import yaml

from vs2_plugin.errors import ConfigError, Vs2Error
from vs2_plugin.gdpo.rounds import atomic_write_text
from vs2_plugin.pipeline import console
from vs2_plugin.pipeline.caption_budget import (
    CAPTION_BUDGET,
    auto_budget,
    budget_is_auto,
    caption_budget,
    check_caption_budget,
    longest_reference,
)
from vs2_plugin.pipeline.config import load_mrdpo_config
from vs2_plugin.pipeline.html_report import mrdpo_stages, videos_from_judged, write_html
from vs2_plugin.pipeline.plan import DEMO_PLAN, PipelinePlan, media_recipe, recipes_dir, sft_recipe, tiny_recipe
from vs2_plugin.pipeline.stage_weights import weight_changes
from vs2_plugin.pipeline.train import run_training
from vs2_plugin.pipeline.videos import load_videos


def _stage(out: Path, name: str, marker: str, fn) -> float:
    """Run ``fn`` unless ``out/name/marker`` exists; returns seconds spent."""
    if (out / name / marker).exists():
        console.step_done_earlier(name)
        return 0.0
    start = time.time()
    fn()
    return round(time.time() - start, 1)


#: recipe keys that say where things are, not how they are trained: a moved run folder is the same run
_PLACE_KEYS = frozenset({"model_name_or_path", "dataset_dir", "output_dir"})


def _trained_stage(out: Path, name: str, marker: str, recipe: dict[str, Any]) -> float:
    """:func:`_stage` for a ``llamafactory-cli train`` run recorded in ``out/logs/<name>.yaml``.

    A finished stage is kept only if it was trained with this recipe (places aside): one trained
    with other settings (an older plan's ``max_steps``, say) would pass its weights off as this
    plan's, and every later stage would build on them; it is refused, naming what differs.
    """
    record = out / "logs" / f"{name}.yaml"
    if (out / name / marker).exists() and record.exists():
        before = yaml.safe_load(record.read_text(encoding="utf-8")) or {}
        now = yaml.safe_load(yaml.safe_dump(recipe))  # the recorded form: tuples as lists, floats as read back
        changed = sorted(k for k in before.keys() | now.keys() if k not in _PLACE_KEYS and before.get(k) != now.get(k))
        if changed:
            what = ", ".join(f"{k}: {before.get(k)!r} -> {now.get(k)!r}" for k in changed)
            raise Vs2Error(
                f"{out / name} was trained with another recipe than this run's ({what}; {record}); "
                f"delete {out / name} and the stages after it, or use another --out"
            )
    return _stage(out, name, marker, lambda: run_training(recipe, record, out / "logs" / f"{name}.log"))


def synth_data(out: Path, plan: PipelinePlan) -> Path:
    """The plan's synthetic clips and datasets in ``out / "data"`` (generated once; same seed, same files)."""
    from vs2_plugin.synth.generate import SynthConfig, generate

    data = out / "data"
    config = SynthConfig(
        out=str(data),
        seed=plan.seed,
        n_train=plan.n_train,
        n_heldout=plan.n_heldout,
        min_seconds=plan.min_seconds,
        max_seconds=plan.max_seconds,
        vary_wording=plan.vary_wording,
        n_text=plan.n_text,
    )
    manifest = data / "manifest.json"
    if not manifest.exists():
        with console.step(f"generate {plan.n_train} + {plan.n_heldout} synthetic clips"):
            generate(config)
    else:
        # a resumed folder must hold this plan's clips: every later stage (and the tiny model's
        # initial weights, from the same seed) was made from them
        made = json.loads(manifest.read_text(encoding="utf-8")).get("config", {})
        differ = [
            f"{k}: {made.get(k)!r} there, {v!r} now"
            for k, v in asdict(config).items()
            if k != "out" and made.get(k) != v
        ]
        if differ:
            raise ConfigError(
                f"{out} was made with other synthetic clips ({'; '.join(differ)}); resume it with the plan it "
                "was made with, or give another output folder"
            )
        console.step_done_earlier("synthetic clips")
    return data


def mrdpo_config(out: Path, plan: PipelinePlan, run_dir: Path, model: Path, adapters: list[str], rounds: int):
    """``recipes/tiny/mrdpo.yaml`` with the plan's overrides, on the plan's clips."""
    from vs2_plugin.pipeline.config import merge_overrides

    data = out / "data"
    train = data / "train.jsonl"
    if plan.n_rl is not None:
        lines = train.read_text(encoding="utf-8").splitlines()[: plan.n_rl]
        train = data / f"train_rl{plan.n_rl}.jsonl"
        if not train.exists():
            atomic_write_text(train, "\n".join(lines) + "\n")
    settings = plan.mrdpo
    if plan.media:
        settings = merge_overrides(settings, {"train": plan.media, "infer": plan.media})
    if budget_is_auto(plan):
        settings = merge_overrides(settings, {"sampling": {"max_new_tokens": caption_budget(out)}})
    overrides = merge_overrides(
        settings,
        {
            "run_dir": str(run_dir),
            "model_name_or_path": str(model),
            "adapter_name_or_path": adapters,
            "rounds": rounds,
            "train_videos": str(train),
            "heldout_videos": str(data / "heldout.jsonl"),
        },
    )
    return load_mrdpo_config(recipes_dir() / "mrdpo.yaml", **overrides)


ENCODERS_DONE = "encoder_pretraining.json"


def _full(overrides: dict[str, Any]) -> bool:
    """Whether a stage's recipe overrides make it full fine-tuning (else LoRA, the recipes' own)."""
    return overrides.get("finetuning_type") == "full"


def sft_model(out: Path, plan: PipelinePlan) -> tuple[str, list[str]]:
    """(model, adapters) of the plan's SFT stage in ``out``: the stage's own weights after full
    fine-tuning, else the post-alignment model + its LoRA."""
    if _full(plan.sft):
        return str(out / "sft"), []
    return str(out / "align"), [str(out / "sft")]


def _marker(overrides: dict[str, Any]) -> str:
    return "model.safetensors" if _full(overrides) else "adapter_model.safetensors"


def _pretrain_encoders(tiny: Path, encoders: Path, data: Path, plan: PipelinePlan) -> None:
    """A copy of the tiny model with its vision tower and Whisper encoder pretrained on the train
    clips; ``encoder_pretraining.json`` (written last) holds the held-out token accuracy."""
    import shutil

    from vs2_plugin.synth.encoders import EncoderPretrainConfig, media_arguments, pretrain_encoders

    if encoders.exists():
        shutil.rmtree(encoders)  # an interrupted earlier attempt
    shutil.copytree(tiny, encoders)
    infer = media_arguments(media_recipe("av_sft.yaml", plan))
    with console.step(f"pretrain the encoders ({plan.encoder_steps} steps)"):
        result = pretrain_encoders(
            EncoderPretrainConfig(
                model=str(encoders), data=str(data), infer=infer, steps=plan.encoder_steps, seed=plan.seed
            )
        )
    atomic_write_text(encoders / ENCODERS_DONE, json.dumps(result, indent=1))


def check_encoder_steps(encoders: Path, plan: PipelinePlan) -> None:
    """Refuse finished encoder pretraining of another length than the plan's (as :func:`_trained_stage`)."""
    done = encoders / ENCODERS_DONE
    if done.exists():
        steps = json.loads(done.read_text(encoding="utf-8")).get("steps")
        if steps != plan.encoder_steps:
            raise Vs2Error(
                f"{encoders} was pretrained for {steps} steps, this run's plan asks {plan.encoder_steps}; "
                f"delete {encoders} and the stages after it, or use another --out"
            )


def check_rounds(out: Path, plan: PipelinePlan) -> None:
    """Refuse another number of mrDPO rounds once rebirth has labelled with the last round's model:
    the rounds would go on, and rebirth and the stages after it hold what the other model made."""
    recorded = out / "mrdpo" / "config.json"
    if (out / "rebirth" / "labels.jsonl").is_file() and recorded.is_file():
        rounds = json.loads(recorded.read_text(encoding="utf-8")).get("rounds")
        if rounds != plan.rounds:
            raise Vs2Error(
                f"{out} was run with {rounds} mrDPO round(s), and its rebirth labelled with that model; "
                f"{plan.rounds} round(s) need another --out"
            )


def run_demo(out: Path, rounds: int = 2, progress: bool = True) -> dict[str, Any]:
    """``vs2 demo``: :func:`run_pipeline` with :data:`DEMO_PLAN` (``rounds`` mrDPO rounds before rebirth)."""
    from dataclasses import replace

    return run_pipeline(out, replace(DEMO_PLAN, rounds=rounds), progress=progress)


def settle_caption_budget(out: Path, plan: PipelinePlan, tiny: Path, listings: list[Path]) -> None:
    """Before any training: a budget that cuts the clips' captions off would spoil every later stage.
    An explicit budget is checked against the longest reference; the auto one, which holds every
    reference by construction, is recorded in ``out/caption_budget.json`` once."""
    if not budget_is_auto(plan):
        budget = mrdpo_config(out, plan, out / "mrdpo", tiny, [], plan.rounds).sampling.max_new_tokens
        check_caption_budget(tiny, listings, budget)
    elif not (out / CAPTION_BUDGET).exists():
        longest, clip, listing = longest_reference(tiny, listings)
        record = {
            "longest_reference_tokens": longest,
            "clip": f"{clip} of {listing.relative_to(out)}",  # relative: the record travels with the folder
            "max_new_tokens": auto_budget(longest),
        }
        atomic_write_text(out / CAPTION_BUDGET, json.dumps(record, indent=1))


def round_models(label: str, base: str, start: list[str], final: list[str]) -> list[tuple[str, str, list[str]]]:
    """(label, base, adapters) of the model after each round of an mrDPO run that started from
    ``start`` adapters and ended with ``final`` (the starting ones, then one per round);
    ``label`` may hold ``{}`` for the round number."""
    return [(label.format(k), base, final[: len(start) + k]) for k in range(1, len(final) - len(start) + 1)]


def _report(
    out: Path,
    plan: PipelinePlan,
    title: str,
    runs: tuple[dict[str, Any], dict[str, Any] | None],
    reborn: dict[str, Any],
    weights: list[tuple[str, str, list[str]]],
    timings: dict[str, float],
    judge: str,
) -> tuple[list[dict[str, Any]], str, list[dict[str, Any]]]:
    """Write report.md / metrics.json / report.html of a finished pipeline: the held-out table of
    every stage (``runs``: the mrDPO run and the one after rebirth), what each stage changed in the
    weights (``weights``: name, base, adapters in stage order) and the notes. Returns (rows, the
    Markdown, the weight changes)."""
    from vs2_plugin.pipeline.report import write_report

    first, second = runs
    data = out / "data"
    models = {name: (base, adapters) for name, base, adapters in weights}
    rows = [{**first["rows"][0], "stage": "SFT"}]
    rows += [{**r, "stage": f"mrDPO {r['stage']}"} for r in first["rows"][1:]]
    n_first = len(rows)
    if second is not None:
        rows += [{**second["rows"][0], "stage": "rebirth"}]
        rows += [{**r, "stage": f"gDPO after rebirth ({r['stage']})"} for r in second["rows"][1:]]

    with console.step(f"compare the weights of {len(weights)} stages"):
        changes = weight_changes(weights)
    notes = [
        f"{c['stage']}: {c['changed_tensors']} tensors changed vs {c['vs']} (max |diff| {c['max_abs_change']:.2e}; "
        f"modules: {', '.join(c['changed_modules'])})"
        for c in changes
    ]
    notes.append(
        f"rebirth: {reborn['kept']} of {reborn['labelled']} captions kept, {reborn['dropped']} dropped as unnatural; "
        f"trained from the post-alignment checkpoint {reborn['post_alignment_model']}"
    )
    notes.append(f"clips: {plan.n_train} training, {plan.n_heldout} held-out synthetic clips in {data}; judge: {judge}")
    notes.append("stage seconds: " + ", ".join(f"{k} {v}" for k, v in timings.items()))
    md = write_report(
        out,
        rows,
        title,
        {
            "weight_changes": changes,
            "timings_s": timings,
            "rebirth": reborn,
            "encoder_pretraining": json.loads((out / "encoders" / ENCODERS_DONE).read_text()),
            "stages_ran": [name for name, _, _ in weights],
            "final_adapters": {
                "mrdpo": first["final_adapters"],
                "rebirth": models["rebirth"][1],
                "after_rebirth": second["final_adapters"] if second else None,
            },
            "model": str(out / "align"),
            "sft_model": models["SFT"][0],
            "rebirth_model": models["rebirth"][0],
        },
        notes,
    )
    html_stages = mrdpo_stages(out / "mrdpo", first["rows"], [r["stage"] for r in rows[:n_first]])
    if second is not None:
        html_stages += mrdpo_stages(out / "mrdpo_after_rebirth", second["rows"], [r["stage"] for r in rows[n_first:]])
    with console.step("write report.html"):
        write_html(
            out, title, videos_from_judged(html_stages, load_videos(data / "heldout.jsonl")), rows=rows, notes=notes
        )
    return rows, md, changes


def run_pipeline(
    out: Path,
    plan: PipelinePlan,
    progress: bool = True,
    title: str = "video-SALMONN 2 demo pipeline",
    after_sft: Callable[[str, list[str]], None] | None = None,
) -> dict[str, Any]:
    """Every stage of the method on ``plan`` in ``out`` (resumable: finished stages are skipped).

    ``after_sft(model, adapters)``, when given, is called once the SFT model exists (trained
    now or earlier), before the mrDPO rounds: a caller can start work that needs only the SFT
    model (the learning benchmark's ablations) beside the rest of the pipeline.
    """
    from vs2_plugin.modeling.tiny import build_tiny_model
    from vs2_plugin.pipeline.mrdpo import run_mrdpo
    from vs2_plugin.pipeline.rebirth import run_rebirth

    out = out.resolve()
    check_rounds(out, plan)
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    start = time.time()
    data = synth_data(out, plan)
    timings["data"] = round(time.time() - start, 1)
    tiny = out / "tiny-model"

    def build() -> None:
        with console.step("build tiny model"):
            build_tiny_model(tiny, seed=plan.seed, **plan.model)

    timings["build-tiny"] = _stage(out, "tiny-model", "model.safetensors", build)
    settle_caption_budget(out, plan, tiny, [data / "train.jsonl", data / "heldout.jsonl"])

    encoders = out / "encoders"
    check_encoder_steps(encoders, plan)
    timings["encoders"] = _stage(out, "encoders", ENCODERS_DONE, lambda: _pretrain_encoders(tiny, encoders, data, plan))

    pretrained = out / "pretrain"
    timings["pretrain"] = _trained_stage(
        out,
        "pretrain",
        "model.safetensors",
        tiny_recipe(
            "pretrain_text.yaml",
            model_name_or_path=str(encoders),
            dataset_dir=str(data),
            output_dir=str(pretrained),
            max_steps=plan.pretrain_steps,
        ),
    )

    align = out / "align"
    timings["align"] = _trained_stage(
        out,
        "align",
        "model.safetensors",
        tiny_recipe(
            "audio_align.yaml",
            model_name_or_path=str(pretrained),
            dataset="synth_align",
            dataset_dir=str(data),
            output_dir=str(align),
            max_steps=plan.align_steps,
        ),
    )

    sft = out / "sft"
    timings["sft"] = _trained_stage(
        out,
        "sft",
        _marker(plan.sft),
        sft_recipe(plan, align, data, sft, **plan.sft),
    )

    sft_base, sft_adapters = sft_model(out, plan)
    if after_sft is not None:
        after_sft(sft_base, sft_adapters)
    cfg = mrdpo_config(out, plan, out / "mrdpo", sft_base, sft_adapters, plan.rounds)
    start = time.time()
    with console.stage("mrDPO"):
        first = run_mrdpo(cfg, progress=progress)
    timings["mrdpo"] = round(time.time() - start, 1)

    rebirth_overrides = plan.sft if plan.rebirth is None else plan.rebirth
    start = time.time()
    with console.stage("rebirth"):
        reborn = run_rebirth(
            cfg,
            cfg.train_videos,
            str(recipes_dir() / "rebirth_sft.yaml"),
            str(out / "rebirth"),
            progress=progress,
            overrides={**rebirth_overrides, **plan.media},
            greedy=plan.rebirth_greedy,
            post_alignment=str(align),
        )
    reborn_base, reborn_adapters = reborn["model"], reborn["adapters"]  # as its run folder records them
    timings["rebirth"] = round(time.time() - start, 1)

    second = None
    if plan.rounds_after_rebirth:
        cfg2 = mrdpo_config(
            out, plan, out / "mrdpo_after_rebirth", reborn_base, reborn_adapters, plan.rounds_after_rebirth
        )
        start = time.time()
        with console.stage("gDPO after rebirth"):
            second = run_mrdpo(cfg2, progress=progress)
        timings["gdpo_after_rebirth"] = round(time.time() - start, 1)

    weights = [
        ("tiny model", str(tiny), []),
        ("encoder pretraining", str(encoders), []),
        ("language pretraining", str(pretrained), []),
        ("alignment", str(align), []),
        ("SFT", sft_base, sft_adapters),
        *round_models("mrDPO round {}", sft_base, sft_adapters, first["final_adapters"]),
        ("rebirth", reborn_base, reborn_adapters),
        *(round_models("gDPO after rebirth", reborn_base, reborn_adapters, second["final_adapters"]) if second else []),
    ]
    judge = cfg.judge["judge"]
    title = f"{title} (tiny model, synthetic clips, {judge} judge)"
    rows, md, changes = _report(out, plan, title, (first, second), reborn, weights, timings, judge)
    unchanged = [c["stage"] for c in changes if c["changed_tensors"] == 0]
    if unchanged:
        raise Vs2Error(
            f"pipeline: these stages did not change the weights: {', '.join(unchanged)} (see {out / 'report.md'})"
        )
    atomic_write_text(out / "DONE", json.dumps(timings))
    return {"out": str(out), "report_md": md, "weight_changes": changes, "rows": rows}
