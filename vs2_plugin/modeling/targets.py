"""Module names a recipe asks LoRA to adapt or to train fully, checked against the model's own.

A misspelt name is not an error anywhere downstream: LLaMA-Factory picks LoRA's modules of a
composite model (ours, Qwen2.5-VL) as those whose name *contains* a ``lora_target`` entry, and
PEFT trains an ``additional_target`` in full when a module's name *ends with* it. So
``lora_target: q_projj,v_proj`` adapts ``v_proj`` alone, and ``additional_target: audio_alinger``
trains and saves no aligner at all, in a run that ends without a word. :func:`target_problems`
names every entry no module matches by those rules (pure; tested by hand) and
:func:`module_names` lists a model folder's modules without loading a weight (the model is built
on PyTorch's meta device).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

#: finetuning types that read ``lora_target`` / ``additional_target`` (LLaMA-Factory's default is lora)
ADAPTER_TYPES = ("lora", "oft")


def _names(value: Any) -> list[str]:
    """A recipe's comma-separated (or listed) module names, as LLaMA-Factory splits them."""
    if value is None:
        return []
    items = value if isinstance(value, (list, tuple)) else str(value).split(",")
    return [str(v).strip() for v in items if str(v).strip()]


def target_problems(args: dict[str, Any], modules: list[str]) -> list[str]:
    """Each ``lora_target`` entry that no module name contains and each ``additional_target`` entry
    that no module name ends with, when ``args`` tune adapters; ``all`` matches every model.

    >>> modules = ["model.layers.0.self_attn.q_proj", "model.layers.0.self_attn.v_proj", "audio_aligner"]
    >>> for problem in target_problems({"lora_target": "q_projj,v_proj", "additional_target": "audio_alinger"}, modules):
    ...     print(problem)
    lora_target q_projj: no module of the model has it in its name (did you mean q_proj, v_proj?)
    additional_target audio_alinger: no module of the model ends with it (did you mean audio_aligner?)
    >>> target_problems({"finetuning_type": "full", "lora_target": "nope"}, modules)
    []
    """
    from vs2_plugin.errors import did_you_mean

    if str(args.get("finetuning_type") or "lora") not in ADAPTER_TYPES:
        return []
    last = sorted({m.rsplit(".", 1)[-1] for m in modules})
    problems = []
    for target in _names(args.get("lora_target")):
        if target != "all" and not any(target in m for m in modules):
            problems.append(
                f"lora_target {target}: no module of the model has it in its name{did_you_mean(target, last)}"
            )
    for target in _names(args.get("additional_target")):
        if not any(m == target or m.endswith(target) for m in modules):
            problems.append(
                f"additional_target {target}: no module of the model ends with it{did_you_mean(target, last)}"
            )
    return problems


def module_names(model_dir: str) -> list[str] | None:
    """The names of a local model folder's modules (``named_modules``), the model built on the meta
    device from its ``config.json`` (no weight is read); None for a folder this cannot build (not a
    folder, a model of remote code or of a type this transformers does not know)."""
    if not (Path(model_dir) / "config.json").is_file():
        return None
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForImageTextToText

    from vs2_plugin.modeling import register_auto_classes

    register_auto_classes()
    try:
        config = AutoConfig.from_pretrained(model_dir)
    except (ValueError, KeyError, OSError):  # an unknown model type, a model of remote code
        return None
    for auto in (AutoModelForImageTextToText, AutoModelForCausalLM):
        if type(config) in auto._model_mapping:
            try:
                with torch.device("meta"):
                    model = auto.from_config(config)
            except Exception:  # noqa: BLE001 - a model that cannot be built without its weights: left to the run
                return None
            return [name for name, _ in model.named_modules() if name]
    return None


def check_module_targets(args: dict[str, Any]) -> None:
    """Before a run loads its model: ConfigError naming every ``lora_target`` / ``additional_target``
    entry that no module of ``model_name_or_path`` matches (:func:`target_problems`); nothing for a
    model this cannot build without loading it (a hub id, remote code)."""
    from vs2_plugin.errors import ConfigError

    if str(args.get("finetuning_type") or "lora") not in ADAPTER_TYPES:
        return
    if not (args.get("lora_target") or args.get("additional_target")):
        return
    modules = module_names(str(args.get("model_name_or_path") or ""))
    problems = target_problems(args, modules) if modules is not None else []
    if problems:
        raise ConfigError(f"{args.get('model_name_or_path')}: " + "; ".join(problems))
