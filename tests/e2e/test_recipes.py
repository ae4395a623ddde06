"""Every recipe parses against LLaMA-Factory's argument classes plus ours (no model is loaded)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.support.llamafactory_args import parse_llamafactory
from tests.support.paths import REPO

RECIPES = sorted(p for p in (REPO / "recipes").rglob("*.yaml"))
DRIVER = {"mrdpo.yaml"}  # configs of `vs2 mrdpo`, not of llamafactory-cli


def test_every_stage_has_a_full_and_a_tiny_recipe():
    names = {"audio_align.yaml", "av_sft.yaml", "gdpo_round.yaml", "mrdpo.yaml", "rebirth_sft.yaml"}
    assert names <= {p.name for p in (REPO / "recipes").glob("*.yaml")}
    assert names <= {p.name for p in (REPO / "recipes" / "tiny").glob("*.yaml")}
    assert (REPO / "recipes" / "inference" / "video_salmonn2.yaml").is_file()
    assert (REPO / "recipes" / "tiny" / "inference" / "video_salmonn2.yaml").is_file()
    assert (REPO / "recipes" / "deepspeed" / "ds_z2.json").is_file() and (
        REPO / "recipes" / "deepspeed" / "ds_z3.json"
    ).is_file()


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: str(p.relative_to(REPO)))
def test_recipe_header_and_parse(path: Path):
    text = path.read_text()
    header = text.split("###", 1)[0]
    for word in ("Purpose:", "Needs:", "Command:"):
        assert word in header, f"{path.name}: header lacks {word}"
    args = yaml.safe_load(text)
    if path.parent.name == "inference":  # llamafactory-cli chat / webchat / api
        from llamafactory.hparams.parser import _INFER_ARGS, HfArgumentParser

        assert "### model" in text and "### generation" in text
        assert args["template"] == "video_salmonn2" and args["use_audio_in_video"] is True
        HfArgumentParser(_INFER_ARGS).parse_dict(args, allow_extra_keys=False)
    elif path.name in DRIVER:
        from vs2_plugin.pipeline.config import MrDPOConfig

        cfg = MrDPOConfig(**args)
        train = {
            **cfg.train,
            "stage": "gdpo",
            "model_name_or_path": cfg.model_name_or_path,
            "dataset": "x",
            "output_dir": "o",
            "gt_dataset": "g",
            "do_train": True,
        }
        parse_llamafactory(train)
    else:
        assert "### model" in text and "### method" in text and "### dataset" in text
        parse_llamafactory(args)


def test_mrdpo_config_rejects_bad_values():
    from vs2_plugin.errors import ConfigError
    from vs2_plugin.pipeline.config import MrDPOConfig

    base = {"run_dir": "r", "model_name_or_path": "m", "train_videos": "t.jsonl"}
    with pytest.raises(ConfigError, match="rounds must be an integer >= 1; got 0"):
        MrDPOConfig(**base, rounds=0)
    with pytest.raises(ConfigError, match="samples_per_video must be an integer >= 2; got 1"):
        MrDPOConfig(**base, sampling={"samples_per_video": 1})
    with pytest.raises(ConfigError, match="train.output_dir is set by the driver"):
        MrDPOConfig(**base, train={"output_dir": "x"})
    with pytest.raises(ConfigError, match="unknown key.*tempreature"):
        MrDPOConfig(**base, sampling={"tempreature": 1.0})
