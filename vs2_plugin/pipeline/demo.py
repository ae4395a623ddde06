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
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from vs2_plugin.errors import ConfigError, Vs2Error
from vs2_plugin.gdpo.rounds import atomic_write_text
from vs2_plugin.pipeline import console
from vs2_plugin.pipeline.config import load_mrdpo_config, load_yaml
from vs2_plugin.pipeline.html_report import mrdpo_stages, videos_from_judged, write_html
from vs2_plugin.pipeline.train import run_training
from vs2_plugin.pipeline.videos import load_videos

PACKAGE = Path(__file__).resolve().parents[1]


#: SFT of the tiny model: full fine-tuning of the language model and the audio aligner (encoders
#: and the visual merger frozen). The paper trains LoRA; on a 64-wide language model LoRA learns
#: to read the media far more slowly (held-out Miss after 1,500 steps on 400 clips: LoRA r64
#: 0.57, full 0.45), so the tiny plans use full SFT; the preference rounds stay LoRA (proxies).
FULL_SFT: dict[str, Any] = {"finetuning_type": "full", "learning_rate": 1.0e-3, "freeze_multi_modal_projector": True}


#: ``sampling.max_new_tokens`` of a plan: room for the longest reference caption of its clips
AUTO_BUDGET = "auto"
#: where :func:`run_pipeline` records that budget (a run folder's file)
CAPTION_BUDGET = "caption_budget.json"


@dataclass(frozen=True)
class PipelinePlan:
    """What :func:`run_pipeline` trains on and how long each stage runs (the defaults are the demo's).

    The clips: ``n_train`` / ``n_heldout`` synthetic clips of ``min_seconds`` .. ``max_seconds``
    (:class:`vs2_plugin.synth.generate.SynthConfig`); ``sft`` and ``rebirth`` are overrides of the
    tiny SFT recipe; ``mrdpo`` overrides of ``recipes/tiny/mrdpo.yaml`` (nested keys merge, e.g.
    ``{"gdpo_lambda": 0.0}``); ``model`` keyword arguments of
    :func:`vs2_plugin.modeling.tiny.build_tiny_model` (config overrides). ``rebirth_greedy``: rebirth
    labels greedy (the paper, the default) or sampled. The demo's model labels greedily too: with
    the repetition penalty of ``mrdpo.infer`` its greedy captions end (90 of its 96 labels kept);
    labels sampled at temperature 1 from so small a model are misspelt, and the reborn model
    learnt to write them (100 % unnatural held-out captions, against 0 % on greedy labels).
    """

    seed: int = 0
    n_train: int = 32
    n_heldout: int = 8
    min_seconds: float = 4.0
    max_seconds: float = 6.0
    vary_wording: bool = False
    #: train clips the mrDPO rounds and rebirth sample (the first ``n_rl``); None: all of them
    n_rl: int | None = None
    #: steps of the encoder pretraining on the train clips (:mod:`vs2_plugin.synth.encoders`)
    encoder_steps: int = 600
    #: text-only clips (captions, never rendered) and steps of the language pretraining
    n_text: int = 300
    pretrain_steps: int = 80
    align_steps: int = 10
    #: long enough for the tiny model to read its clips (held-out SFT Miss about 55-60 %, not 100 %)
    sft: dict[str, Any] = field(default_factory=lambda: {**FULL_SFT, "max_steps": 160})
    rebirth: dict[str, Any] | None = None  #: None: the same as ``sft``
    rebirth_greedy: bool = True
    rounds: int = 2
    rounds_after_rebirth: int = 1
    mrdpo: dict[str, Any] = field(
        default_factory=lambda: {
            # room for the longest reference caption of the plan's clips (:func:`caption_budget`), or
            # the rounds and rebirth would learn from captions cut off before their last events
            "sampling": {"max_new_tokens": AUTO_BUDGET},
            "judge": {"judge": "synth_exact"},
            "train": {"max_steps": 6},
            # a tiny model decoding greedily loops ("Then a voice says ..." again and again)
            "infer": {"repetition_penalty": 1.2},
        }
    )
    model: dict[str, Any] = field(default_factory=dict)
    #: LLaMA-Factory media arguments (``video_fps``, ``video_maxlen``, ...) over every stage that
    #: reads media: encoder pretraining, SFT, the rounds' sampling, training and evaluation, rebirth;
    #: empty: the tiny recipes' own (``video_fps: 1.0``, the paper's phi)
    media: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.media, dict) or self.media and not _only_media_arguments(self.media):
            raise ConfigError(
                "PipelinePlan.media must map LLaMA-Factory media arguments (video_*, audio_*, use_audio_*) "
                f"to values, got {self.media!r}"
            )
        minimum = {"rounds_after_rebirth": 0}
        for name in (
            "n_train",
            "n_heldout",
            "n_text",
            "encoder_steps",
            "pretrain_steps",
            "align_steps",
            "rounds",
            "rounds_after_rebirth",
        ):
            value, least = getattr(self, name), minimum.get(name, 1)
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise ConfigError(f"PipelinePlan.{name} must be an integer >= {least}, got {value!r}")
        if self.n_rl is not None and (
            isinstance(self.n_rl, bool) or not isinstance(self.n_rl, int) or not 1 <= self.n_rl <= self.n_train
        ):
            raise ConfigError(
                f"PipelinePlan.n_rl must be None or an integer in [1, n_train={self.n_train}], got {self.n_rl!r}"
            )


def recipes_dir() -> Path:
    """The tiny recipes: the repository's ``recipes/tiny`` or the copy inside an installed wheel."""
    for candidate in (PACKAGE.parent / "recipes" / "tiny", PACKAGE / "recipes" / "tiny"):
        if candidate.is_dir():
            return candidate
    raise Vs2Error("the tiny recipes were not found (recipes/tiny next to the package or inside it)")


def _recipe(name: str, **overrides: Any) -> dict[str, Any]:
    args = load_yaml(recipes_dir() / name)
    args.update(overrides)
    return args


def _only_media_arguments(args: dict[str, Any]) -> bool:
    # imported here, not at module level: the plans of this module are built at import time
    from vs2_plugin.synth.encoders import media_arguments

    return media_arguments(args) == args


def media_recipe(name: str, plan: "PipelinePlan", **overrides: Any) -> dict[str, Any]:
    """A tiny recipe that reads media, with ``overrides`` and then the plan's media arguments."""
    return _recipe(name, **{**overrides, **plan.media})


def sft_recipe(plan: "PipelinePlan", model: Path, data: Path, output_dir: Path, **overrides: Any) -> dict[str, Any]:
    """The pipeline's SFT run: the tiny SFT recipe on ``data``'s ``synth_sft`` captions from
    ``model``, with ``overrides`` (the plan's ``sft``, say) and the plan's media arguments."""
    return media_recipe(
        "av_sft.yaml",
        plan,
        model_name_or_path=str(model),
        dataset="synth_sft",
        dataset_dir=str(data),
        output_dir=str(output_dir),
        **overrides,
    )


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


#: the demo: every stage at its smallest useful size (about 4 minutes on 2 CPU cores)
DEMO_PLAN = PipelinePlan()


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
    if _budget_is_auto(plan):
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


def longest_reference(tokenizer_dir: Path, listings: list[Path]) -> tuple[int, str, Path]:
    """(token count, clip id, its listing) of the longest reference caption in ``listings``;
    ConfigError when no clip has one (the pipeline's stages train and judge on references)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    longest, clip, where = 0, "", None
    for listing in listings:
        for video in load_videos(listing):
            n = len(tokenizer(video.reference or "", add_special_tokens=False)["input_ids"])
            if n > longest:
                longest, clip, where = n, video.id, listing
    if where is None:
        raise ConfigError(
            f"no clip of {', '.join(map(str, listings))} has a reference caption: the pipeline trains and "
            "judges on references, and sets its caption budget from the longest"
        )
    return longest, clip, where


def _budget_is_auto(plan: PipelinePlan) -> bool:
    return plan.mrdpo.get("sampling", {}).get("max_new_tokens") == AUTO_BUDGET


def auto_budget(longest: int, step: int = 32) -> int:
    """``max_new_tokens`` for references of at most ``longest`` tokens: room for the longest and
    its EOS, rounded up to a multiple of ``step`` (a caption a little longer than every reference
    is not cut off). 243 -> 256 (seed 0 of the learning benchmark), 257 -> 288."""
    return -(-(longest + 1) // step) * step


def caption_budget(out: Path) -> int:
    """The ``auto`` caption budget of the run folder ``out`` (written by :func:`run_pipeline`)."""
    path = out / CAPTION_BUDGET
    if not path.exists():
        raise Vs2Error(
            f"{path} is missing: run_pipeline writes the caption budget (sampling.max_new_tokens: "
            f"{AUTO_BUDGET!r}) once the clips and the tokenizer exist"
        )
    return int(json.loads(path.read_text(encoding="utf-8"))["max_new_tokens"])


def check_caption_budget(tokenizer_dir: Path, listings: list[Path], max_new_tokens: int) -> int:
    """The token count of the longest reference caption in ``listings`` (video lists); raises
    ConfigError, naming the clip, when it does not fit in ``max_new_tokens`` (its EOS included).

    Every caption the pipeline samples or evaluates stops at ``sampling.max_new_tokens``: a budget
    shorter than the clips' captions cuts every long caption off (its last events counted missed,
    rebirth dropping it as cut off), and the preference rounds then learn from truncated captions.
    """
    longest, clip, listing = longest_reference(tokenizer_dir, listings)
    where = f"{clip} of {listing}"
    if longest + 1 > max_new_tokens:
        raise ConfigError(
            f"sampling.max_new_tokens={max_new_tokens} cannot hold the longest reference caption "
            f"({longest} tokens + EOS, clip {where}): captions would be cut off; raise it to at least {longest + 1}"
        )
    return longest


def _full(overrides: dict[str, Any]) -> bool:
    """Whether a stage's recipe overrides make it full fine-tuning (else LoRA, the recipes' own)."""
    return overrides.get("finetuning_type") == "full"


def trained_model(out: Path, stage_dir: Path, overrides: dict[str, Any]) -> tuple[str, list[str]]:
    """(model, adapters) of a supervised stage of :func:`run_pipeline` written to ``stage_dir``:
    the stage's own weights after full fine-tuning, else the post-alignment model + its LoRA."""
    if _full(overrides):
        return str(stage_dir), []
    return str(out / "align"), [str(stage_dir)]


def sft_model(out: Path, plan: PipelinePlan) -> tuple[str, list[str]]:
    """(model, adapters) of the plan's SFT stage in ``out``."""
    return trained_model(out, out / "sft", plan.sft)


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


def run_demo(out: Path, rounds: int = 2, progress: bool = True) -> dict[str, Any]:
    """``vs2 demo``: :func:`run_pipeline` with :data:`DEMO_PLAN` (``rounds`` mrDPO rounds before rebirth)."""
    from dataclasses import replace

    return run_pipeline(out, replace(DEMO_PLAN, rounds=rounds), progress=progress)


def settle_caption_budget(out: Path, plan: PipelinePlan, tiny: Path, listings: list[Path]) -> None:
    """Before any training: a budget that cuts the clips' captions off would spoil every later stage.
    An explicit budget is checked against the longest reference; the auto one, which holds every
    reference by construction, is recorded in ``out/caption_budget.json`` once."""
    if not _budget_is_auto(plan):
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
        _recipe(
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
        _recipe(
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
    reborn_base, reborn_adapters = trained_model(out, Path(reborn["adapter"]), rebirth_overrides)
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
