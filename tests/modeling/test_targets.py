"""LoRA's module names in a recipe against the model's own (vs2_plugin.modeling.targets)."""

from __future__ import annotations

import doctest

import pytest

from tests.support.paths import REPO
from vs2_plugin.errors import ConfigError
from vs2_plugin.modeling import targets
from vs2_plugin.pipeline.config import load_yaml


def test_doctests():
    assert doctest.testmod(targets).failed == 0


def test_rules_are_those_of_llamafactory_and_peft():
    modules = ["model.language_model.layers.0.mlp.up_proj", "model.audio_aligner", "model.audio_aligner.qformer"]
    # LoRA: a module whose name contains the entry (LLaMA-Factory's rule for composite models); all: any model
    assert targets.target_problems({"lora_target": "mlp.up_proj,all"}, modules) == []
    # trained in full: a module whose name ends with the entry (PEFT's modules_to_save)
    assert targets.target_problems({"additional_target": ["audio_aligner"]}, modules) == []
    assert targets.target_problems({"additional_target": "audio"}, modules) == [
        "additional_target audio: no module of the model ends with it"
    ]
    # not read unless adapters are tuned
    assert targets.target_problems({"finetuning_type": "freeze", "additional_target": "nope"}, modules) == []


def test_module_names_of_the_tiny_model_without_loading_it(tiny_model_dir, tmp_path):
    names = targets.module_names(str(tiny_model_dir))
    assert "model.audio_aligner" in names and any(n.endswith("self_attn.q_proj") for n in names)
    assert targets.module_names(str(tmp_path)) is None  # no config.json: nothing to build


@pytest.mark.parametrize("folder", ["recipes", "recipes/tiny"])
def test_every_shipped_recipe_names_modules_the_model_has(folder, tiny_model_dir):
    """The 7B recipes too: the tiny model has the 7B model's modules at another size."""
    names = targets.module_names(str(tiny_model_dir))
    checked = 0
    for path in sorted((REPO / folder).glob("*.yaml")):
        recipe = load_yaml(path)
        if recipe.get("lora_target") or recipe.get("additional_target"):
            assert targets.target_problems(recipe, names) == [], path
            checked += 1
    assert checked >= 2


def test_a_misspelt_target_stops_the_run_before_loading(tiny_model_dir):
    args = {"model_name_or_path": str(tiny_model_dir), "lora_target": "q_proj", "additional_target": "audio_alinger"}
    with pytest.raises(ConfigError, match=r"additional_target audio_alinger: .*\(did you mean audio_aligner\?\)"):
        targets.check_module_targets(args)
    targets.check_module_targets({**args, "additional_target": "audio_aligner"})
    targets.check_module_targets({**args, "model_name_or_path": "org/a-hub-model"})  # not built here: not read
