"""Module names a recipe asks LoRA to adapt or to train fully, checked against the model's own.

A misspelt name is not an error anywhere downstream. LLaMA-Factory adapts, in a composite model
(ours, Qwen2.5-VL), the modules whose name *contains* a ``lora_target`` entry, less those it keeps
out of LoRA in that run (the frozen towers, the aligner); in any other model PEFT adapts those whose
name *is* an entry or *ends with* ``.entry``; and PEFT trains an ``additional_target`` in full when
a module's name *ends with* it. A name that matches nothing is dropped while the others train: so
``lora_target: q_projj,v_proj`` adapts ``v_proj`` alone, and ``additional_target: audio_alinger``
trains and saves no aligner at all, in a run that ends without a word. :func:`target_problems`
names every entry that reaches no module by those rules (pure; tested by hand);
:func:`model_modules` lists a model folder's modules without reading a weight (the model is built
on PyTorch's meta device); :func:`module_target_problems` puts the two together for a recipe.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import Any

#: finetuning types that read ``lora_target`` / ``additional_target`` (LLaMA-Factory's default is lora)
ADAPTER_TYPES = ("lora", "oft")


def _tunes_adapters(args: dict[str, Any]) -> bool:
    return str(args.get("finetuning_type") or "lora") in ADAPTER_TYPES


def target_problems(
    args: dict[str, Any], modules: list[str], composite: bool = True, kept_out: Collection[str] = ()
) -> list[str]:
    """Each ``lora_target`` entry that adapts no module of ``modules`` and each ``additional_target``
    entry that no module name ends with, when ``args`` tune adapters. ``composite``: LoRA's entries
    match as parts of a name, less the modules whose name holds one of ``kept_out``; else as the
    name's last parts. ``all`` alone adapts every linear layer.

    >>> modules = ["model.visual.blocks.0.attn.qkv", "model.layers.0.self_attn.q_proj",
    ...            "model.layers.0.self_attn.v_proj", "model.audio_aligner"]
    >>> args = {"lora_target": "q_projj,v_proj,qkv", "additional_target": "audio_alinger"}
    >>> for problem in target_problems(args, modules, kept_out=["model.visual"]):
    ...     print(problem)
    lora_target q_projj: no module of the model has it in its name (did you mean q_proj, v_proj?)
    lora_target qkv: only in modules kept out of LoRA in this run (model.visual)
    additional_target audio_alinger: no module of the model ends with it (did you mean audio_aligner?)
    >>> target_problems({"lora_target": "proj"}, modules, composite=False)
    ['lora_target proj: no module of the model is named so or ends with .proj (did you mean v_proj, q_proj?)']
    >>> target_problems({"finetuning_type": "full", "lora_target": "nope"}, modules)
    []
    """
    from vs2_plugin.data.dataset_rows import split_names
    from vs2_plugin.errors import did_you_mean

    if not _tunes_adapters(args):
        return []
    last = sorted({m.rsplit(".", 1)[-1] for m in modules})
    problems = []
    entries = split_names(args.get("lora_target"))
    for target in [] if entries == ["all"] else entries:
        if problem := _lora_problem(target, modules, composite, kept_out):
            problems.append(problem + (did_you_mean(target, last) if "no module" in problem else ""))
    for target in split_names(args.get("additional_target")):
        if not any(m.endswith(target) for m in modules):
            problems.append(
                f"additional_target {target}: no module of the model ends with it{did_you_mean(target, last)}"
            )
    return problems


def _lora_problem(target: str, modules: list[str], composite: bool, kept_out: Collection[str]) -> str | None:
    """Why the ``lora_target`` entry ``target`` adapts no module (see :func:`target_problems`), or None."""
    if not composite:
        if any(m == target or m.endswith(f".{target}") for m in modules):
            return None
        return f"lora_target {target}: no module of the model is named so or ends with .{target}"
    named = [m for m in modules if target in m]
    if not named:
        return f"lora_target {target}: no module of the model has it in its name"
    if any(not any(k in m for k in kept_out) for m in named):
        return None
    keys = sorted({k for k in kept_out for m in named if k in m})
    return f"lora_target {target}: only in modules kept out of LoRA in this run ({', '.join(keys)})"


def model_modules(model_dir: str) -> tuple[str, list[str]] | None:
    """(model type, the names of its modules) of a local model folder, the model built on the meta
    device from its ``config.json`` (no weight is read, no code of the folder is run); None for a
    folder this cannot build (not a model folder, a model of remote code or of a type this
    transformers does not know, one whose construction needs its weights)."""
    if not (Path(model_dir) / "config.json").is_file():
        return None
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForImageTextToText

    from vs2_plugin.modeling import register_auto_classes

    register_auto_classes()
    try:
        config = AutoConfig.from_pretrained(model_dir, trust_remote_code=False)
    except (ValueError, KeyError, OSError):  # an unknown model type, a model of remote code
        return None
    for auto in (AutoModelForImageTextToText, AutoModelForCausalLM):
        if type(config) in auto._model_mapping:
            try:
                with torch.device("meta"):
                    model = auto.from_config(config)
            except Exception:  # noqa: BLE001 - a model that cannot be built without its weights: left to the run
                return None
            return config.model_type, [name for name, _ in model.named_modules() if name]
    return None


def module_target_problems(args: dict[str, Any]) -> list[str] | None:
    """:func:`target_problems` of ``args`` against its ``model_name_or_path``, with LLaMA-Factory's
    matching for that model type (:func:`vs2_plugin.integrations.llamafactory.lora_reach`); [] when
    there is nothing to check, None when the model cannot be built here (a hub id, remote code)."""
    if not _tunes_adapters(args) or not (args.get("lora_target") or args.get("additional_target")):
        return []
    built = model_modules(str(args.get("model_name_or_path") or ""))
    if built is None:
        return None
    from vs2_plugin.integrations.llamafactory import lora_reach

    model_type, modules = built
    composite, kept_out = lora_reach(model_type, args)
    return target_problems(args, modules, composite, kept_out)


def check_module_targets(args: dict[str, Any]) -> None:
    """Before a run loads its model: ConfigError naming every LoRA module name that reaches no module
    of ``model_name_or_path`` (:func:`module_target_problems`); nothing for a model this cannot build."""
    from vs2_plugin.errors import ConfigError

    problems = module_target_problems(args)
    if problems:
        raise ConfigError(f"{args.get('model_name_or_path')}: " + "; ".join(problems))
