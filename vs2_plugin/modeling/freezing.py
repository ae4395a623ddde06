"""What trains in each stage (paper sec. 3.2, 4.1), as pure helpers.

Always frozen: the visual encoder, the visual aligner (Qwen's merger), the Whisper encoder and
the LLM's own weights. Trainable:

* ``audio_align``: the audio aligner (window Q-Former + projection + segment embedding + the
  ``markers`` offsets of the ``<|audio_start|>`` / ``<|audio_end|>`` input embeddings,
  which live in the aligner so that only these two rows, not the embedding matrix, train).
* ``sft`` / ``dpo``: the audio aligner and LoRA adapters on the LLM (``lora_`` parameters).

With LoRA the reference model of DPO is the policy with its adapter disabled; a trainable
module outside the adapter would move the reference too. So in ``sft``/``dpo`` the aligner
belongs in PEFT's ``modules_to_save`` (:func:`lora_modules_to_save`), which makes it part of
the adapter (and of each round's merge).
"""

from __future__ import annotations

from vs2_plugin.errors import ConfigError

STAGES = ("audio_align", "sft", "dpo")

#: Module-name substrings, as LLaMA-Factory's composite-model registry matches them
#: (``model.named_modules()`` of ``VideoSalmonn2ForConditionalGeneration``).
VISION_TOWER_KEYS = ["model.visual.patch_embed", "model.visual.blocks"]
VISUAL_PROJECTOR_KEYS = ["model.visual.merger"]
AUDIO_ENCODER_KEYS = ["model.audio_encoder"]
AUDIO_ALIGNER_KEYS = ["model.audio_aligner"]
LANGUAGE_MODEL_KEYS = ["model.language_model", "lm_head"]
#: Never LoRA targets: the encoders and both aligners (their Linear layers would match q/k/v...).
LORA_EXCLUDED_KEYS = ["model.visual", "model.audio_encoder", "model.audio_aligner"]
#: Public video-SALMONN 2 code: LoRA on q/k/v of the LLM.
DEFAULT_LORA_TARGETS = ("q_proj", "k_proj", "v_proj")


def composite_model_spec(model_type: str = "video_salmonn2") -> dict:
    """Arguments for LLaMA-Factory's ``_register_composite_model``.

    The Whisper encoder is listed with the vision tower so ``freeze_vision_tower`` (default
    true) freezes it too; the audio aligner is in no list, so freezing options never freeze
    it, and it is excluded from LoRA targets.
    """
    return dict(
        model_type=model_type,
        projector_keys=list(VISUAL_PROJECTOR_KEYS),
        vision_model_keys=VISION_TOWER_KEYS + AUDIO_ENCODER_KEYS,
        language_model_keys=list(LANGUAGE_MODEL_KEYS),
        lora_conflict_keys=list(LORA_EXCLUDED_KEYS),
    )


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
