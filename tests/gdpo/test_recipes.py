"""The gDPO round recipes: header, sections, keys LLaMA-Factory or the stage know; the tiny one runs."""

from __future__ import annotations

import dataclasses
import json

import pytest
import yaml

from tests.support.paths import REPO
from vs2_plugin.gdpo.config import GDPOArguments

RECIPES = [REPO / "recipes" / "gdpo_round.yaml", REPO / "recipes" / "tiny" / "gdpo_round.yaml"]
SECTIONS = ["### model", "### method", "### dataset", "### output", "### train"]


def _llamafactory_keys() -> set[str]:
    from llamafactory.hparams import DataArguments, FinetuningArguments, GeneratingArguments, ModelArguments
    from llamafactory.hparams.training_args import TrainingArguments

    classes = (ModelArguments, DataArguments, TrainingArguments, FinetuningArguments, GeneratingArguments)
    return {f.name for cls in classes for f in dataclasses.fields(cls)}


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: str(p.relative_to(REPO)))
def test_recipe_header_sections_and_keys(path):
    text = path.read_text()
    header = text.split("###", 1)[0]
    for word in ("Purpose:", "Needs:", "Command:", "llamafactory-cli train " + str(path.relative_to(REPO))):
        assert word in header, word
    positions = [text.index(section) for section in SECTIONS]
    assert positions == sorted(positions)
    args = yaml.safe_load(text)
    assert args["stage"] == "gdpo"
    gdpo = GDPOArguments.pop_from(args)  # validates the gDPO keys
    assert gdpo.gdpo_lambda == 0.1 and gdpo.gdpo_rounds
    unknown = set(args) - _llamafactory_keys()
    assert not unknown, unknown
    assert args["pref_beta"] == 0.1 and args["pref_loss"] == "sigmoid"


def test_paper_settings_in_the_7b_recipe():
    args = yaml.safe_load(RECIPES[0].read_text())
    assert (args["lora_rank"], args["lora_alpha"]) == (256, 512)  # paper r=256, scale 2.0
    assert args["per_device_train_batch_size"] == 1 and args["max_steps"] == 1000
    for config in ("ds_z2.json", "ds_z3.json"):
        stage = json.loads((REPO / "recipes" / "deepspeed" / config).read_text())["zero_optimization"]["stage"]
        assert stage == int(config[4])
    assert args["deepspeed"] == "recipes/deepspeed/ds_z2.json"


@pytest.mark.slow
def test_tiny_recipe_two_rounds_through_the_cli(tiny_model_dir, tmp_path, run_cli):

    out = tmp_path / "gdpo"
    overrides = [f"model_name_or_path={tiny_model_dir}", f"output_dir={out}", "max_steps=2", "save_steps=1"]
    for expected_rounds in (1, 2):
        proc = run_cli(["llamafactory-cli", "train", "recipes/tiny/gdpo_round.yaml", *overrides], cwd=REPO)
        assert proc.returncode == 0, proc.stderr[-4000:]
        state = json.loads((out / "rounds.json").read_text())
        assert [r["status"] for r in state["rounds"]] == ["done"] * expected_rounds
    assert state["rounds"][1]["merged_adapters"] == [str(out / "round-001")]
    assert (out / "round-002" / "adapter_model.safetensors").is_file()
    log = [json.loads(line) for line in (out / "round-002" / "trainer_log.jsonl").read_text().splitlines()]
    assert log and log[-1]["current_steps"] == 2


def test_recipes_use_warmup_steps_and_parse_without_a_deprecation_warning():
    """transformers 5 deprecates warmup_ratio (warned on every parse); warmup_steps below 1 is the same fraction."""
    import logging

    from tests.support.llamafactory_args import parse_llamafactory

    for path in sorted((REPO / "recipes").rglob("*.yaml")):
        args = yaml.safe_load(path.read_text()) or {}
        assert "warmup_ratio" not in {**args, **(args.get("train") or {})}, path
    messages: list[str] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: messages.append(record.getMessage())
    logger = logging.getLogger("transformers")
    logger.addHandler(handler)
    try:
        parse_llamafactory(yaml.safe_load(RECIPES[0].read_text()))
    finally:
        logger.removeHandler(handler)
    assert not [m for m in messages if "deprecated" in m], messages
    assert yaml.safe_load(RECIPES[0].read_text())["warmup_steps"] == 0.03
