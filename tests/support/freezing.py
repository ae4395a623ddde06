"""The freezing of each stage applied by hand, for model tests that train the tiny model outside
LLaMA-Factory (in a run, LLaMA-Factory's freezing options and the stage's forced settings do it)."""

from __future__ import annotations

from vs2_plugin.errors import ConfigError
from vs2_plugin.modeling.freezing import LORA_EXCLUDED_KEYS

AUDIO_ALIGNER_KEYS = ["model.audio_aligner"]
#: Public video-SALMONN 2 code: LoRA on q/k/v of the LLM.
DEFAULT_LORA_TARGETS = ("q_proj", "k_proj", "v_proj")

STAGES = ("audio_align", "sft", "dpo")


def _check_stage(stage: str) -> str:
    if stage not in STAGES:
        raise ConfigError(f"stage must be one of {STAGES}, got {stage!r}")
    return stage


def trainable_modules(stage: str) -> list[str]:
    """Name substrings of the parameters that train in ``stage``."""
    _check_stage(stage)
    if stage == "audio_align":
        return list(AUDIO_ALIGNER_KEYS)
    return AUDIO_ALIGNER_KEYS + ["lora_"]


def lora_modules_to_save(stage: str) -> list[str]:
    """PEFT ``modules_to_save`` for ``stage``: the aligner in SFT/DPO, nothing in alignment."""
    _check_stage(stage)
    return [] if stage == "audio_align" else ["audio_aligner"]


def _strip_peft_prefix(name: str) -> str:
    # PeftModel names start with base_model.model.; match on the underlying model's names.
    prefix = "base_model.model."
    return name[len(prefix) :] if name.startswith(prefix) else name


def apply_freezing(model, stage: str) -> dict[str, int]:
    """Set ``requires_grad`` for ``stage``; return counts of trainable and frozen parameters.

    Works on the bare model and on a PEFT-wrapped one (LoRA weights have ``lora_`` in their
    names; PEFT's ``modules_to_save`` copies live under ``...audio_aligner.modules_to_save``).
    """
    keys = trainable_modules(stage)
    counts = {"trainable": 0, "frozen": 0}
    for name, param in model.named_parameters():
        name = _strip_peft_prefix(name)
        # PEFT keeps a frozen original next to the trainable copy of a module to save.
        is_original_copy = ".original_module." in name
        train = any(key in name for key in keys) and not is_original_copy
        param.requires_grad_(train)
        counts["trainable" if train else "frozen"] += param.numel()
    return counts


def lora_target_modules(model, targets=DEFAULT_LORA_TARGETS) -> list[str]:
    """Full names of the LLM's Linear layers whose last name part is in ``targets``.

    Excludes the encoders and aligners (:data:`LORA_EXCLUDED_KEYS`), so it can be given to
    PEFT's ``target_modules`` directly.
    """
    import torch

    names = []
    for name, module in model.named_modules():
        plain = _strip_peft_prefix(name)
        if not isinstance(module, torch.nn.Linear) or any(key in plain for key in LORA_EXCLUDED_KEYS):
            continue
        if plain.rsplit(".", 1)[-1] in targets:
            names.append(plain)
    if not names:
        raise ConfigError(f"no LLM Linear layer matches LoRA targets {list(targets)}")
    return names
