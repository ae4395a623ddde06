"""What each stage of the pipeline changed in the weights: the merged model of a stage against
the previous stage's (tiny models only: everything fits in memory)."""

from __future__ import annotations

from typing import Any


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
