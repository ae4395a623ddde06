"""``vs2 tokens``: a ``--model`` folder that is not a model directory and a minimum duration that is no
number of seconds are refused, not read as defaults."""

from __future__ import annotations

import json

import pytest

from tests.support.paths import REPO
from vs2_plugin.cli import main

CLIP = REPO / "vs2_plugin" / "assets" / "demo_data" / "media" / "bigbuckbunny.mp4"


@pytest.mark.parametrize("adapter", [False, True])
def test_a_folder_without_config_json_is_refused(tmp_path, capsys, adapter):
    folder = tmp_path / "sft"
    folder.mkdir()
    # a LoRA run folder holds the processor but not the model's config: its window would be the default's
    (folder / "preprocessor_config.json").write_text(json.dumps({"patch_size": 14, "merge_size": 2}))
    if adapter:
        (folder / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA"}))
    assert main(["tokens", str(CLIP), "--model", str(folder)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"vs2 tokens: error: --model {folder}: no config.json (not a model directory)")
    assert ("give its base model" in err) == adapter and "\n" not in err


@pytest.mark.parametrize("value", ["nan", "-1", "inf"])
def test_a_minimum_duration_that_rejects_nothing_or_everything_is_refused(capsys, value):
    """``--min-duration nan`` let every clip through, however short; inf would refuse all."""
    assert main(["tokens", str(CLIP), "--min-duration", value]) == 2
    assert "min_duration_s must be a finite number of seconds >= 0, got" in capsys.readouterr().err
