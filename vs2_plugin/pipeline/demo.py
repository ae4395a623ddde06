"""The whole pipeline on the tiny offline model and the bundled clips; ``vs2 demo`` (:mod:`vs2_plugin.commands.demo`) runs it.

build-tiny -> audio alignment -> audio-visual SFT -> 2 mrDPO rounds (offline judge) ->
rebirth tuning -> 1 more gDPO round -> report (``report.md``, ``report.html``, ``metrics.json``,
``rounds.png``). The terminal shows one line per step and the stage table; every library
message goes to ``logs/demo.log`` (``--verbose`` shows them).
CPU only, no network, a few minutes. Each stage is skipped when its output already exists, so
an interrupted demo resumes. The report also checks that every stage changed the weights:
the merged model of each stage is compared with the previous stage's.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import yaml

from vs2_plugin.errors import Vs2Error
from vs2_plugin.gdpo.rounds import atomic_write_text
from vs2_plugin.pipeline import console
from vs2_plugin.pipeline.config import load_mrdpo_config
from vs2_plugin.pipeline.html_report import mrdpo_stages, videos_from_judged, write_html
from vs2_plugin.pipeline.train import run_training
from vs2_plugin.pipeline.videos import load_videos

PACKAGE = Path(__file__).resolve().parents[1]
DEMO_DATA = PACKAGE / "assets" / "demo_data"
#: Long enough for the tiny model to write caption-like text, so judging and pairs mean something.
TINY_SFT = {"max_steps": 80, "learning_rate": 5.0e-3, "lora_rank": 16, "lora_alpha": 32}


def recipes_dir() -> Path:
    """The tiny recipes: the repository's ``recipes/tiny`` or the copy inside an installed wheel."""
    for candidate in (PACKAGE.parent / "recipes" / "tiny", PACKAGE / "recipes" / "tiny"):
        if candidate.is_dir():
            return candidate
    raise Vs2Error("the tiny recipes were not found (recipes/tiny next to the package or inside it)")


def _recipe(name: str, **overrides: Any) -> dict[str, Any]:
    args = yaml.safe_load((recipes_dir() / name).read_text(encoding="utf-8"))
    args.update(overrides)
    return args


def _stage(out: Path, name: str, marker: str, fn) -> float:
    """Run ``fn`` unless ``out/name/marker`` exists; returns seconds spent."""
    if (out / name / marker).exists():
        console.step_done_earlier(name)
        return 0.0
    start = time.time()
    fn()
    return round(time.time() - start, 1)


def merged_state(model_dir: str, adapters: list[str]) -> dict[str, Any]:
    """The merged weights of a stage (tiny models only: everything fits in memory)."""
    import torch
    from peft import PeftModel

    from vs2_plugin.modeling import register_auto_classes

    register_auto_classes()
    from transformers import AutoModelForImageTextToText

    model = AutoModelForImageTextToText.from_pretrained(model_dir, dtype=torch.float32)
    for adapter in adapters:
        model = PeftModel.from_pretrained(model, adapter).merge_and_unload()
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def weight_changes(stages: list[tuple[str, str, list[str]]]) -> list[dict[str, Any]]:
    """For consecutive stages: how many tensors changed and the largest absolute change."""
    out, previous = [], None
    for name, model_dir, adapters in stages:
        current = merged_state(model_dir, adapters)
        if previous is not None:
            changed = [k for k in current if k in previous[1] and not bool((current[k] == previous[1][k]).all())]
            max_diff = max((float((current[k] - previous[1][k]).abs().max()) for k in changed), default=0.0)
            groups = sorted({k.split(".")[1] if k.startswith("model.") else k.split(".")[0] for k in changed})
            out.append(
                {
                    "stage": name,
                    "vs": previous[0],
                    "changed_tensors": len(changed),
                    "max_abs_change": max_diff,
                    "changed_modules": groups,
                }
            )
        previous = (name, current)
    return out


def run_demo(out: Path, rounds: int = 2, progress: bool = True) -> dict[str, Any]:
    from vs2_plugin.modeling.tiny import build_tiny_model
    from vs2_plugin.pipeline.mrdpo import run_mrdpo
    from vs2_plugin.pipeline.rebirth import run_rebirth
    from vs2_plugin.pipeline.report import write_report

    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    tiny = out / "tiny-model"

    def build() -> None:
        with console.step("build tiny model"):
            build_tiny_model(tiny, seed=0)

    timings["build-tiny"] = _stage(out, "tiny-model", "model.safetensors", build)
    data = str(DEMO_DATA)

    align = out / "align"
    timings["align"] = _stage(
        out,
        "align",
        "model.safetensors",
        lambda: run_training(
            _recipe(
                "audio_align.yaml", model_name_or_path=str(tiny), dataset_dir=data, output_dir=str(align), max_steps=6
            ),
            out / "logs" / "align.yaml",
            out / "logs" / "align.log",
        ),
    )

    sft = out / "sft"
    timings["sft"] = _stage(
        out,
        "sft",
        "adapter_model.safetensors",
        lambda: run_training(
            _recipe("av_sft.yaml", model_name_or_path=str(align), dataset_dir=data, output_dir=str(sft), **TINY_SFT),
            out / "logs" / "sft.yaml",
            out / "logs" / "sft.log",
        ),
    )

    mrdpo_yaml = recipes_dir() / "mrdpo.yaml"
    cfg = load_mrdpo_config(
        mrdpo_yaml,
        run_dir=str(out / "mrdpo"),
        model_name_or_path=str(align),
        adapter_name_or_path=[str(sft)],
        rounds=rounds,
        train_videos=str(DEMO_DATA / "vs2_demo_rl.jsonl"),
        heldout_videos=str(DEMO_DATA / "vs2_demo_heldout.jsonl"),
    )
    start = time.time()
    with console.stage("mrDPO"):
        first = run_mrdpo(cfg, progress=progress)
    timings["mrdpo"] = round(time.time() - start, 1)

    start = time.time()
    with console.stage("rebirth"):
        reborn = run_rebirth(
            cfg,
            str(DEMO_DATA / "vs2_demo_rl.jsonl"),
            str(recipes_dir() / "rebirth_sft.yaml"),
            str(out / "rebirth"),
            progress=progress,
            overrides=TINY_SFT,
        )
    timings["rebirth"] = round(time.time() - start, 1)

    cfg2 = load_mrdpo_config(
        mrdpo_yaml,
        run_dir=str(out / "mrdpo_after_rebirth"),
        model_name_or_path=str(align),
        adapter_name_or_path=[reborn["adapter"]],
        rounds=1,
        train_videos=str(DEMO_DATA / "vs2_demo_rl.jsonl"),
        heldout_videos=str(DEMO_DATA / "vs2_demo_heldout.jsonl"),
    )
    start = time.time()
    with console.stage("gDPO after rebirth"):
        second = run_mrdpo(cfg2, progress=progress)
    timings["gdpo_after_rebirth"] = round(time.time() - start, 1)

    rows = [{**first["rows"][0], "stage": "SFT"}]
    rows += [{**r, "stage": f"mrDPO {r['stage']}"} for r in first["rows"][1:]]
    rows += [{**second["rows"][0], "stage": "rebirth"}]
    rows += [{**r, "stage": f"gDPO after rebirth ({r['stage']})"} for r in second["rows"][1:]]

    stages = [("tiny model", str(tiny), []), ("alignment", str(align), []), ("SFT", str(align), [str(sft)])]
    for k, adapter in enumerate(first["final_adapters"][1:], 1):
        stages.append((f"mrDPO round {k}", str(align), first["final_adapters"][: k + 1]))
    stages.append(("rebirth", str(align), [reborn["adapter"]]))
    for k, adapter in enumerate(second["final_adapters"][1:], 1):
        stages.append(("gDPO after rebirth", str(align), second["final_adapters"][: k + 1]))
    with console.step(f"compare the weights of {len(stages)} stages"):
        changes = weight_changes(stages)
    unchanged = [c["stage"] for c in changes if c["changed_tensors"] == 0]
    notes = [
        f"{c['stage']}: {c['changed_tensors']} tensors changed vs {c['vs']} (max |diff| {c['max_abs_change']:.2e}; "
        f"modules: {', '.join(c['changed_modules'])})"
        for c in changes
    ]
    notes.append(
        f"rebirth: {reborn['kept']} of {reborn['labelled']} captions kept, {reborn['dropped']} dropped as unnatural; "
        f"trained from the post-alignment checkpoint {reborn['post_alignment_model']}"
    )
    notes.append("stage seconds: " + ", ".join(f"{k} {v}" for k, v in timings.items()))
    md = write_report(
        out,
        rows,
        "video-SALMONN 2 demo pipeline (tiny model, offline judge)",
        {"weight_changes": changes, "timings_s": timings, "rebirth": reborn, "stages_ran": [s[0] for s in stages]},
        notes,
    )
    html_stages = mrdpo_stages(out / "mrdpo", first["rows"], [r["stage"] for r in rows[: len(first["rows"])]])
    html_stages += mrdpo_stages(
        out / "mrdpo_after_rebirth", second["rows"], [r["stage"] for r in rows[len(first["rows"]) :]]
    )
    with console.step("write report.html"):
        write_html(
            out,
            "video-SALMONN 2 demo pipeline (tiny model, offline judge)",
            videos_from_judged(html_stages, load_videos(DEMO_DATA / "vs2_demo_heldout.jsonl")),
            rows=rows,
            notes=notes,
        )
    if unchanged:
        raise Vs2Error(
            f"demo: these stages did not change the weights: {', '.join(unchanged)} (see {out / 'report.md'})"
        )
    atomic_write_text(out / "DONE", json.dumps(timings))
    return {"out": str(out), "report_md": md, "weight_changes": changes, "rows": rows}
