"""What the pipeline of :mod:`vs2_plugin.pipeline.demo` trains on and how long: :class:`PipelinePlan`
(``vs2 demo``'s :data:`DEMO_PLAN`, ``benchmarks/learning.py``'s larger one), and the tiny recipes
each stage runs with the plan's settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vs2_plugin.errors import ConfigError, Vs2Error
from vs2_plugin.pipeline.caption_budget import AUTO_BUDGET
from vs2_plugin.pipeline.config import load_yaml

PACKAGE = Path(__file__).resolve().parents[1]


#: SFT of the tiny model: full fine-tuning of the language model and the audio aligner (encoders
#: and the visual merger frozen). The paper trains LoRA; on a 64-wide language model LoRA learns
#: to read the media far more slowly (held-out Miss after 1,500 steps on 400 clips: LoRA r64
#: 0.57, full 0.45), so the tiny plans use full SFT; the preference rounds stay LoRA (proxies).
FULL_SFT: dict[str, Any] = {"finetuning_type": "full", "learning_rate": 1.0e-3, "freeze_multi_modal_projector": True}


@dataclass(frozen=True)
class PipelinePlan:
    """What :func:`vs2_plugin.pipeline.demo.run_pipeline` trains on and how long each stage runs (the defaults are the demo's).

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
            # room for the longest reference caption of the plan's clips (:mod:`vs2_plugin.pipeline.caption_budget`), or
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


def tiny_recipe(name: str, **overrides: Any) -> dict[str, Any]:
    """The tiny recipe ``name`` (:func:`recipes_dir`) with ``overrides``."""
    args = load_yaml(recipes_dir() / name)
    args.update(overrides)
    return args


def _only_media_arguments(args: dict[str, Any]) -> bool:
    # imported here, not at module level: the plans of this module are built at import time
    from vs2_plugin.synth.encoders import media_arguments

    return media_arguments(args) == args


def media_recipe(name: str, plan: "PipelinePlan", **overrides: Any) -> dict[str, Any]:
    """A tiny recipe that reads media, with ``overrides`` and then the plan's media arguments."""
    return tiny_recipe(name, **{**overrides, **plan.media})


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


#: the demo: every stage at its smallest useful size (about 4 minutes on 2 CPU cores)
DEMO_PLAN = PipelinePlan()
