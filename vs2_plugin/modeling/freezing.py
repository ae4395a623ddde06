"""What trains in each stage (paper sec. 3.2, 4.1): the module groups LLaMA-Factory's freezing
options act on.

Always frozen: the visual encoder, the visual aligner (Qwen's merger), the Whisper encoder and
the LLM's own weights. Trainable:

* ``vs2_align``: the audio aligner (window Q-Former + projection + segment embedding + the
  ``markers`` offsets of the ``<|audio_start|>`` / ``<|audio_end|>`` input embeddings,
  which live in the aligner so that only these two rows, not the embedding matrix, train);
  the stage forces LLaMA-Factory's freezing options (``vs2_plugin.integrations.llamafactory``).
* ``sft`` / ``gdpo``: the audio aligner and LoRA adapters on the LLM (``lora_`` parameters).

With LoRA the reference model of DPO is the policy with its adapter disabled; a trainable
module outside the adapter would move the reference too. So in ``sft``/``gdpo`` the aligner
belongs in PEFT's ``modules_to_save`` (the recipes' ``additional_target: audio_aligner``), which
makes it part of the adapter (and of each round's merge).
"""

from __future__ import annotations

from vs2_plugin.modeling import MODEL_TYPE

#: Module-name substrings, as LLaMA-Factory's composite-model registry matches them
#: (``model.named_modules()`` of ``VideoSalmonn2ForConditionalGeneration``).
VISION_TOWER_KEYS = ["model.visual.patch_embed", "model.visual.blocks"]
VISUAL_PROJECTOR_KEYS = ["model.visual.merger"]
AUDIO_ENCODER_KEYS = ["model.audio_encoder"]
LANGUAGE_MODEL_KEYS = ["model.language_model", "lm_head"]
#: Never LoRA targets: the encoders and both aligners (their Linear layers would match q/k/v...).
LORA_EXCLUDED_KEYS = ["model.visual", "model.audio_encoder", "model.audio_aligner"]


def composite_model_spec(model_type: str = MODEL_TYPE) -> dict:
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
