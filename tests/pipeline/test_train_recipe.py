"""The mrDPO driver reuses the round recipe (train_recipe) and takes lambda from GDPOArguments."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.support.llamafactory_args import parse_llamafactory
from tests.support.paths import REPO
from vs2_plugin.errors import ConfigError
from vs2_plugin.pipeline.config import DRIVER_SET_KEYS, MrDPOConfig, load_mrdpo_config
from vs2_plugin.pipeline.mrdpo import round_train_args

BASE = {"run_dir": "r", "model_name_or_path": "m", "train_videos": "t.jsonl"}


@pytest.mark.parametrize("folder", ["recipes", "recipes/tiny"])
def test_driver_train_is_the_round_recipe_plus_overrides(folder, monkeypatch):
    monkeypatch.chdir(REPO)
    driver = yaml.safe_load((REPO / folder / "mrdpo.yaml").read_text())
    round_recipe = yaml.safe_load((REPO / folder / "gdpo_round.yaml").read_text())
    assert driver["train_recipe"] == f"{folder}/gdpo_round.yaml"
    assert "gdpo_lambda" not in driver  # written once, in the round recipe
    assert not set(driver["train"]) & {k for k, v in round_recipe.items() if driver["train"].get(k) == v}, (
        "the driver repeats a value of the round recipe"
    )
    cfg = load_mrdpo_config(REPO / folder / "mrdpo.yaml")
    expected = {k: v for k, v in round_recipe.items() if k not in DRIVER_SET_KEYS} | driver["train"]
    assert cfg.train == expected
    assert cfg.gdpo_lambda == round_recipe["gdpo_lambda"]
    args = round_train_args(cfg, "model", [], Path("r1"), 1)
    assert args["gdpo_lambda"] == round_recipe["gdpo_lambda"] and args["stage"] == "gdpo"
    assert args["lora_rank"] == round_recipe["lora_rank"] and args["dataset"] == "pairs"
    parse_llamafactory({k: v for k, v in args.items() if k != "adapter_name_or_path"})


def test_recipe_found_next_to_the_package_from_any_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the repository's (or a wheel's) recipes/ is the fallback
    cfg = MrDPOConfig(**BASE, train_recipe="recipes/tiny/gdpo_round.yaml")
    assert cfg.train["lora_rank"] == 8
    with pytest.raises(ConfigError, match="train_recipe recipes/nope.yaml: not found"):
        MrDPOConfig(**BASE, train_recipe="recipes/nope.yaml")


def test_lambda_default_lives_on_gdpo_arguments(tmp_path, monkeypatch):
    from vs2_plugin.gdpo.config import GDPOArguments

    monkeypatch.setattr(GDPOArguments.__dataclass_fields__["gdpo_lambda"], "default", 0.37)
    recipe = tmp_path / "round.yaml"
    recipe.write_text(yaml.safe_dump({"stage": "gdpo", "lora_rank": 4, "template": "video_salmonn2"}))
    driver = tmp_path / "mrdpo.yaml"
    driver.write_text(yaml.safe_dump({**BASE, "train_recipe": str(recipe)}))
    cfg = load_mrdpo_config(driver)
    assert cfg.gdpo_lambda == 0.37
    assert round_train_args(cfg, "model", [], tmp_path, 1)["gdpo_lambda"] == 0.37  # what `vs2 mrdpo` passes
    assert MrDPOConfig(**BASE).gdpo_lambda == 0.37
    # an explicit value wins: the driver's over the recipe's over the default
    assert load_mrdpo_config(driver, ["gdpo_lambda=0.5"]).gdpo_lambda == 0.5
    recipe.write_text(yaml.safe_dump({"stage": "gdpo", "gdpo_lambda": 0.2}))
    assert load_mrdpo_config(driver).gdpo_lambda == 0.2


def test_driver_keys_in_train_are_still_refused():
    with pytest.raises(ConfigError, match="train.output_dir is set by the driver"):
        MrDPOConfig(**BASE, train_recipe="recipes/tiny/gdpo_round.yaml", train={"output_dir": "x"})
