"""LoRA's module names in a recipe against the model's own (vs2_plugin.modeling.targets)."""

from __future__ import annotations

import doctest
import json

import pytest

from tests.support.paths import REPO
from vs2_plugin.errors import ConfigError
from vs2_plugin.modeling import targets
from vs2_plugin.pipeline.config import load_yaml


def test_doctests():
    assert doctest.testmod(targets).failed == 0


def test_rules_are_those_of_llamafactory_and_peft():
    modules = ["model.language_model.layers.0.mlp.up_proj", "model.audio_aligner", "model.audio_aligner.qformer"]
    # composite models (LLaMA-Factory): a module whose name contains the entry and is not kept out
    assert targets.target_problems({"lora_target": "mlp.up_proj"}, modules) == []
    assert targets.target_problems({"lora_target": "all"}, modules) == []  # every linear layer
    assert targets.target_problems({"lora_target": "up_proj,all"}, modules) == [  # not alone: a name
        "lora_target all: no module of the model has it in its name"
    ]
    kept = targets.target_problems({"lora_target": "qformer"}, modules, kept_out=["model.audio_aligner"])
    assert kept == ["lora_target qformer: only in modules kept out of LoRA in this run (model.audio_aligner)"]
    # other models (PEFT): the name itself or its last parts
    assert targets.target_problems({"lora_target": "up_proj"}, modules, composite=False) == []
    assert targets.target_problems({"lora_target": "mlp.up"}, modules, composite=False) != []
    # trained in full: a module whose name ends with the entry (PEFT's modules_to_save)
    assert targets.target_problems({"additional_target": ["audio_aligner"]}, modules) == []
    assert targets.target_problems({"additional_target": "audio"}, modules) == [
        "additional_target audio: no module of the model ends with it"
    ]
    # not read unless adapters are tuned
    assert targets.target_problems({"finetuning_type": "freeze", "additional_target": "nope"}, modules) == []


def test_modules_of_the_tiny_model_without_loading_it(tiny_model_dir, tmp_path):
    model_type, names = targets.model_modules(str(tiny_model_dir))
    assert model_type == "video_salmonn2"
    assert "model.audio_aligner" in names and any(n.endswith("self_attn.q_proj") for n in names)
    assert targets.model_modules(str(tmp_path)) is None  # no config.json: nothing to build
    # a folder of remote code is not built: its code is never run, and nothing asks whether to run it
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "no_such_type", "auto_map": {"AutoConfig": "x.C"}}))
    assert targets.model_modules(str(tmp_path)) is None


def test_the_runs_frozen_towers_are_out_of_loras_reach(tiny_model_dir):
    """The vision tower (and the Whisper encoder with it) is frozen by default, so LoRA skips its qkv."""
    args = {"model_name_or_path": str(tiny_model_dir), "lora_target": "q_proj,qkv"}
    (problem,) = targets.module_target_problems(args)
    assert (
        problem.startswith("lora_target qkv: only in modules kept out of LoRA in this run (")
        and "model.visual" in problem
    )
    assert targets.module_target_problems({**args, "lora_target": "q_proj"}) == []
    assert targets.module_target_problems({**args, "model_name_or_path": "org/a-hub-model"}) is None


@pytest.mark.parametrize("folder", ["recipes", "recipes/tiny"])
def test_every_shipped_recipe_names_modules_the_model_has(folder, tiny_model_dir):
    """The 7B recipes too: the tiny model has the 7B model's modules at another size."""
    checked = 0
    for path in sorted((REPO / folder).glob("*.yaml")):
        recipe = load_yaml(path)
        if recipe.get("lora_target") or recipe.get("additional_target"):
            assert targets.module_target_problems({**recipe, "model_name_or_path": str(tiny_model_dir)}) == [], path
            checked += 1
    assert checked >= 2


def test_a_misspelt_target_stops_the_run_before_loading(tiny_model_dir):
    args = {"model_name_or_path": str(tiny_model_dir), "lora_target": "q_proj", "additional_target": "audio_alinger"}
    with pytest.raises(ConfigError, match=r"additional_target audio_alinger: .*\(did you mean audio_aligner\?\)"):
        targets.check_module_targets(args)
    targets.check_module_targets({**args, "additional_target": "audio_aligner"})
    targets.check_module_targets({**args, "model_name_or_path": "org/a-hub-model"})  # not built here: not read
