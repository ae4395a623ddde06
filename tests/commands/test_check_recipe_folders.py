"""``vs2 check-recipe``: a local model or adapter folder the run could not load is a problem, not ``ok``."""

from __future__ import annotations

import shutil

import pytest

from tests.support.paths import REPO
from vs2_plugin.pipeline.recipe_check import check_recipe


@pytest.fixture(scope="module")
def adapter(tiny_model_dir, tmp_path_factory, random_adapter):
    return random_adapter(tiny_model_dir, tmp_path_factory.mktemp("lora") / "sft", seed=1, aligner=True)


def _damaged(folder, tmp_path, damage):
    copy = shutil.copytree(folder, tmp_path / folder.name)
    marker = "adapter_config.json" if (copy / "adapter_config.json").is_file() else "config.json"
    if damage == "config":
        (copy / marker).write_text("{not json")
    else:
        for weights in copy.glob("*.safetensors"):
            weights.unlink()
    return copy


@pytest.mark.parametrize(
    "which, damage, named",
    [
        ("model", "config", "config.json is not readable JSON"),
        ("model", "weights", "no weights (model.safetensors or"),
        ("adapter", "config", "adapter_config.json is not readable JSON"),
        ("adapter", "weights", "no weights (adapter_model.safetensors or adapter_model.bin)"),
    ],
)
def test_a_folder_the_run_cannot_load_is_a_problem(
    tiny_model_dir, adapter, tmp_path, monkeypatch, which, damage, named
):
    monkeypatch.chdir(REPO)  # the recipe's dataset_dir is relative, as llamafactory-cli reads it
    model, adapters = tiny_model_dir, adapter
    if which == "model":
        model = _damaged(tiny_model_dir, tmp_path, damage)
    else:
        adapters = _damaged(adapter, tmp_path, damage)
    overrides = [f"model_name_or_path={model}", f"adapter_name_or_path={adapters}"]
    _, findings = check_recipe("recipes/tiny/av_sft.yaml", overrides)
    key = "model_name_or_path" if which == "model" else "adapter_name_or_path"
    target = model if which == "model" else adapters
    assert f"{key} {target}: {named}" in [
        f.text[: len(f"{key} {target}: {named}")] for f in findings if f.level == "problem"
    ]


def test_sound_folders_pass(tiny_model_dir, adapter, monkeypatch):
    monkeypatch.chdir(REPO)
    overrides = [f"model_name_or_path={tiny_model_dir}", f"adapter_name_or_path={adapter}"]
    _, findings = check_recipe("recipes/tiny/av_sft.yaml", overrides)
    assert not [f for f in findings if f.level == "problem"], findings


def test_an_empty_adapter_name_between_commas_is_a_problem(tiny_model_dir, adapter, monkeypatch):
    """LLaMA-Factory splits the list on commas and keeps the empty name, then loads it as an adapter."""
    monkeypatch.chdir(REPO)
    overrides = [f"model_name_or_path={tiny_model_dir}", f"adapter_name_or_path={adapter},"]
    _, findings = check_recipe("recipes/tiny/av_sft.yaml", overrides)
    problems = [f.text for f in findings if f.level == "problem"]
    assert problems == [f"adapter_name_or_path '{adapter},': an empty name between commas"]
