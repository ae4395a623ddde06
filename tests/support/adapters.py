"""LoRA adapters with random weights on a model directory, for the export and inference tests."""

from __future__ import annotations

from pathlib import Path

import torch


def random_adapter(base_dir: Path, out: Path, seed: int, aligner: bool) -> Path:
    """A LoRA adapter with random (non-zero) weights, optionally training the audio aligner as a
    whole (``modules_to_save``), as the SFT and gDPO rounds do."""
    from peft import LoraConfig, get_peft_model

    from vs2_plugin.modeling.export import merged_model

    model = merged_model(base_dir, [])
    config = LoraConfig(
        r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], modules_to_save=["audio_aligner"] if aligner else None
    )
    peft_model = get_peft_model(model, config)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_" in name or "modules_to_save" in name:
                param.add_(0.05 * torch.randn(param.shape, generator=generator))
    peft_model.save_pretrained(out)
    return out
