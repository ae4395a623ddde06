"""The driver's ``train`` / ``infer`` mappings are checked at load against what their parsers take."""

from __future__ import annotations

import re

import pytest
import yaml

from tests.support.paths import REPO
from vs2_plugin.errors import ConfigError
from vs2_plugin.pipeline.config import MrDPOConfig, load_mrdpo_config

TINY = REPO / "recipes" / "tiny" / "mrdpo.yaml"
BASE = {"run_dir": "r", "model_name_or_path": "m", "train_videos": "t.jsonl"}


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("train.lerning_rate=1", "train.lerning_rate (did you mean learning_rate?)"),
        ("train.gdpo_lamda=0.2", "train.gdpo_lamda (did you mean gdpo_lambda"),
        ("infer.video_fsp=2", "infer.video_fsp (did you mean video_fps?)"),
        ("infer.learning_rate=1e-5", "infer.learning_rate;"),  # a training argument: sampling rejects it
        # a template outside LLaMA-Factory's registry: refused at load, not once the sampling model has loaded
        ("infer.template=nosuch", "infer.template: 'nosuch' is not registered with LLaMA-Factory"),
        (
            "train.template=qwen2vl",
            "train.template: 'qwen2vl' is not registered with LLaMA-Factory (did you mean qwen2_vl",
        ),
    ],
)
def test_a_typo_fails_at_load_naming_the_key_and_a_close_match(override, named, monkeypatch):
    monkeypatch.chdir(REPO)
    monkeypatch.delenv("ALLOW_EXTRA_ARGS", raising=False)
    with pytest.raises(ConfigError, match=re.escape(named)):
        load_mrdpo_config(TINY, ["rounds=1", "run_dir=outputs/x", override])


def test_a_typo_in_the_train_recipe_names_the_recipe(tmp_path, monkeypatch):
    monkeypatch.delenv("ALLOW_EXTRA_ARGS", raising=False)
    recipe = tmp_path / "round.yaml"
    recipe.write_text(yaml.safe_dump({"stage": "gdpo", "output_dir": "o", "lora_rnk": 8}))
    with pytest.raises(
        ConfigError, match=re.escape(f"train_recipe {recipe}: unknown argument(s) lora_rnk (did you mean lora_rank")
    ):
        MrDPOConfig(**BASE, train_recipe=str(recipe))


def test_plugin_keys_pass_and_allow_extra_args_lets_anything_through(monkeypatch):
    monkeypatch.delenv("ALLOW_EXTRA_ARGS", raising=False)
    train = {"learning_rate": 1e-5, "gdpo_pack_prompt": True, "vs2_bad_samples": "fail", "ray_num_workers": 1}
    assert MrDPOConfig(**BASE, train=train, infer={"video_fps": 2.0, "repetition_penalty": 1.2}).train == train
    monkeypatch.setenv("ALLOW_EXTRA_ARGS", "1")  # LLaMA-Factory's parser then takes any key; so does the driver
    assert MrDPOConfig(**BASE, train={"my_callback_key": 1}).train == {"my_callback_key": 1}


@pytest.mark.parametrize("path", ["recipes/mrdpo.yaml", "recipes/tiny/mrdpo.yaml"])
def test_shipped_driver_recipes_load(path, monkeypatch):
    monkeypatch.chdir(REPO)
    monkeypatch.delenv("ALLOW_EXTRA_ARGS", raising=False)
    cfg = load_mrdpo_config(REPO / path)
    assert cfg.train and cfg.infer


def test_train_and_infer_values_are_kept_as_typed(tmp_path, monkeypatch):
    """A whole number for a float field reaches the round's run and the sampling model as a float,
    from the config and from its train_recipe alike."""
    monkeypatch.delenv("ALLOW_EXTRA_ARGS", raising=False)
    recipe = tmp_path / "round.yaml"
    recipe.write_text(yaml.safe_dump({"stage": "gdpo", "output_dir": "o", "num_train_epochs": 2}))
    cfg = MrDPOConfig(
        **BASE, train={"learning_rate": 1}, infer={"temperature": 1, "top_k": 5}, train_recipe=str(recipe)
    )
    assert type(cfg.train["learning_rate"]) is float and type(cfg.train["num_train_epochs"]) is float
    assert type(cfg.infer["temperature"]) is float and type(cfg.infer["top_k"]) is int


def test_numbers_out_of_their_range_fail_at_load(monkeypatch):
    """Types alone pass lora_rank: 0 (PEFT refuses it once the model has loaded) and video_fps: -1."""
    monkeypatch.delenv("ALLOW_EXTRA_ARGS", raising=False)
    with pytest.raises(ConfigError, match=re.escape("train.lora_rank: 0 must be at least 1")):
        MrDPOConfig(**BASE, train={"lora_rank": 0})
    with pytest.raises(ConfigError, match=re.escape("infer.top_p: 1.5 must be in (0, 1]")):
        MrDPOConfig(**BASE, infer={"top_p": 1.5})
    from vs2_plugin.integrations.llamafactory import argument_names
    from vs2_plugin.pipeline.config import ARGUMENT_RANGES

    assert set(ARGUMENT_RANGES) <= argument_names("train") | argument_names("infer")  # no rule for a key no one reads
