"""Arguments of the ``gdpo`` stage (paper sec. 3.3), on top of LLaMA-Factory's DPO arguments.

The keys live in the same YAML as LLaMA-Factory's; the integration pops every field of
:class:`GDPOArguments` from the raw dict before LLaMA-Factory parses the rest with
``stage: dpo`` (so ``pref_beta``, ``lora_rank``, ... keep their DPO meaning and checks).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields

from vs2_plugin.errors import ConfigError

REF_CACHE_MODES = ("disk", "memory", "off")
GT_SAMPLING_MODES = ("match", "random")
ROUND_HOOK_MODES = ("memory", "export")
LORA_MODES = ("proxy", "single")
ALIGNER_POLICIES = ("adapter", "freeze")
PACK_ATTENTION_MODES = ("auto", "flex", "sdpa", "eager")
#: readings of eq. 11's ground-truth term (vs2_plugin.gdpo.loss); the first is the default
NLL_REDUCTIONS = ("sequence", "token_mean")


@dataclass
class GDPOArguments:
    """What the gDPO stage adds to LLaMA-Factory's DPO stage.

    Loss (eq. 11): ``L = L_DPO + gdpo_lambda * NLL(ground truth)``; ``pref_beta`` is DPO's beta;
    ``gdpo_nll_reduction`` says whether NLL is per caption (the paper) or per token (the public code).
    """

    # --- loss ---------------------------------------------------------------------------------
    gdpo_lambda: float = field(
        default=0.1,
        metadata={"help": "Weight of the ground-truth NLL term of eq. 11 (paper: 0.1). 0 gives plain sigmoid DPO."},
    )
    gdpo_nll_reduction: str = field(
        default=NLL_REDUCTIONS[0],
        metadata={
            "help": "How the ground-truth term is reduced: 'sequence' = eq. 11 as printed, -log pi(y_gt | x) of each "
            "caption (summed over its tokens, on the scale of DPO's summed log-probs) averaged over the rows; "
            "'token_mean' = the public video-SALMONN 2 code, cross-entropy averaged over the tokens (about "
            "caption-length times weaker at the same gdpo_lambda)."
        },
    )
    gt_dataset: str | None = field(
        default=None,
        metadata={"help": "Comma-separated dataset_info.json names of the ground-truth caption (SFT) data."},
    )
    gt_dataset_dir: str | None = field(
        default=None,
        metadata={"help": "Folder of the dataset_info.json that names gt_dataset (default: dataset_dir)."},
    )
    gt_sampling: str = field(
        default="match",
        metadata={
            "help": "How a ground-truth row is drawn for each pair: 'match' = the row with the same prompt and "
            "media if there is one (else a seeded random row), 'random' = a seeded random row (eq. 11's expectation)."
        },
    )
    # --- speed --------------------------------------------------------------------------------
    gdpo_ref_cache: str = field(
        default="disk",
        metadata={
            "help": "Reference log-probs: 'disk' = computed once per round and stored (a resumed round reuses "
            "them), 'memory' = once per run, 'off' = every step like stock DPO."
        },
    )
    gdpo_ref_cache_dir: str | None = field(
        default=None, metadata={"help": "Where the reference cache is stored (default: <output_dir>/ref_logps)."}
    )
    gdpo_pack_prompt: bool = field(
        default=True,
        metadata={
            "help": "Encode the shared prompt once per pair: chosen, rejected and a same-video ground truth are "
            "continuations of it in one packed sequence with a block attention mask (see gdpo_pack_attention)."
        },
    )
    gdpo_pack_attention: str = field(
        default="auto",
        metadata={
            "help": "Attention kernel of the packed forward: 'auto' = FlexAttention (block-sparse mask, fused "
            "kernels) on CUDA where torch has it, else the model's sdpa / eager with a dense block mask; "
            "'flex', 'sdpa', 'eager' force one (the language model is switched to it)."
        },
    )
    # --- rounds (mrDPO, LoRA proxy) -------------------------------------------------------------
    gdpo_rounds: bool = field(
        default=False,
        metadata={
            "help": "Multi-round mode: output_dir holds rounds.json and one round-NNN folder per round; each run "
            "resumes an unfinished round or starts the next one on top of the merged previous rounds."
        },
    )
    gdpo_round: int | None = field(
        default=None, metadata={"help": "Round to run in multi-round mode (1-based; default: resume or next)."}
    )
    gdpo_round_hook: str = field(
        default="memory",
        metadata={
            "help": "How a round merges the previous adapters: 'memory' (stack and merge at load time) or "
            "'export' (llamafactory export_model to a merged checkpoint, then load it; for ZeRO-3 / quantized)."
        },
    )
    gdpo_lora_mode: str = field(
        default="proxy",
        metadata={
            "help": "Multi-round mode: 'proxy' (paper sec. 3.3, eq. 10) = each round merges the previous rounds' "
            "LoRAs into the base, which becomes the frozen reference, and trains a fresh LoRA; 'single' = the "
            "ablation without proxies: one LoRA continues from round to round against the fixed starting "
            "reference (the initial model with its initial adapters). 'single' needs gdpo_round_hook: memory."
        },
    )
    gdpo_aligner_policy: str = field(
        default="adapter",
        metadata={
            "help": "Trainable non-LoRA modules (the audio aligner): 'adapter' = trained as modules_to_save of the "
            "round's adapter (merged with it; the reference keeps the frozen copy), 'freeze' = frozen during gDPO."
        },
    )
    gdpo_aligner_modules: str | None = field(
        default=None,
        metadata={"help": "Comma-separated module names treated as the aligner (video-SALMONN 2: 'audio_aligner')."},
    )

    def __post_init__(self):
        if (
            not isinstance(self.gdpo_lambda, (int, float))
            or not math.isfinite(self.gdpo_lambda)
            or self.gdpo_lambda < 0
        ):
            raise ConfigError(f"gdpo_lambda must be a finite number >= 0, got {self.gdpo_lambda!r}")
        self.gdpo_lambda = float(self.gdpo_lambda)
        if self.gdpo_lambda > 0 and not self.gt_dataset:
            raise ConfigError(f"gt_dataset is required when gdpo_lambda > 0 (gdpo_lambda={self.gdpo_lambda})")
        for name, allowed in (
            ("gt_sampling", GT_SAMPLING_MODES),
            ("gdpo_ref_cache", REF_CACHE_MODES),
            ("gdpo_round_hook", ROUND_HOOK_MODES),
            ("gdpo_lora_mode", LORA_MODES),
            ("gdpo_aligner_policy", ALIGNER_POLICIES),
            ("gdpo_pack_attention", PACK_ATTENTION_MODES),
            ("gdpo_nll_reduction", NLL_REDUCTIONS),
        ):
            value = getattr(self, name)
            if value not in allowed:
                raise ConfigError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")
        if self.gdpo_lora_mode == "single" and self.gdpo_round_hook != "memory":
            raise ConfigError(
                f"gdpo_lora_mode: single keeps one LoRA in memory across rounds; it needs gdpo_round_hook: memory, "
                f"got {self.gdpo_round_hook!r}"
            )
        if self.gdpo_round is not None:
            if not isinstance(self.gdpo_round, int) or isinstance(self.gdpo_round, bool) or self.gdpo_round < 1:
                raise ConfigError(f"gdpo_round must be an integer >= 1, got {self.gdpo_round!r}")
            if not self.gdpo_rounds:
                raise ConfigError(f"gdpo_round={self.gdpo_round} needs gdpo_rounds: true")

    @property
    def aligner_modules(self) -> list[str]:
        return [name.strip() for name in (self.gdpo_aligner_modules or "").split(",") if name.strip()]

    @classmethod
    def field_names(cls) -> set[str]:
        return {f.name for f in fields(cls)}

    @classmethod
    def pop_from(cls, args: dict) -> "GDPOArguments":
        """Remove this dataclass's keys from a raw LLaMA-Factory args dict and build the arguments.

        Values given as strings (``--gdpo_lambda 0.1`` on a command line) are converted to the
        field's type first.
        """
        own = {name: _from_string(name, args.pop(name)) for name in list(args) if name in cls.field_names()}
        return cls(**own)


_FLOAT_FIELDS = {"gdpo_lambda"}
_INT_FIELDS = {"gdpo_round"}
_BOOL_FIELDS = {"gdpo_pack_prompt", "gdpo_rounds"}


def _from_string(name: str, value):
    if not isinstance(value, str):
        return value
    text = value.strip()
    try:
        if name in _FLOAT_FIELDS:
            return float(text)
        if name in _INT_FIELDS:
            return None if text.lower() in ("", "none", "null") else int(text)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {value!r}") from None
    if name in _BOOL_FIELDS:
        if text.lower() in ("true", "1", "yes", "on"):
            return True
        if text.lower() in ("false", "0", "no", "off"):
            return False
        raise ConfigError(f"{name} must be true or false, got {value!r}")
    return None if text.lower() in ("none", "null") and name.endswith(("_dir", "_dataset", "_modules")) else value
