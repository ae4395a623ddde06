"""Registration into LLaMA-Factory and stage dispatch, from unit level to real CLI runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, VENV_BIN, run_cli
from vs2_plugin.errors import ConfigError, UnsupportedLlamaFactory
from vs2_plugin.integrations import llamafactory as integ


def test_unsupported_version_is_a_clear_error():
    with pytest.raises(UnsupportedLlamaFactory, match=r"0\.9\.4 is installed.*llamafactory==0\.9\.5"):
        integ.check_version("0.9.4")
    assert integ.check_version("0.9.5") == "0.9.5"


def test_unsupported_version_is_reported_by_the_loader(tmp_path):
    # A process whose LLaMA-Factory claims another version: the host still imports, and the
    # user is told why our template is missing.
    code = (
        "import warnings, llamafactory.extras.env as env\n"
        "env.VERSION = '0.9.4'\n"
        "import llamafactory\nllamafactory.__version__ = '0.9.4'\n"
        "from vs2_plugin import autoload\nautoload._loaded_plugins.clear()\n"
        "with warnings.catch_warnings(record=True) as w:\n"
        "    warnings.simplefilter('always')\n"
        "    autoload.load_plugins()\n"
        "print([str(x.message) for x in w])\n"
    )
    env = dict(os.environ, LLAMAFACTORY_PLUGINS_DISABLE="1")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "0.9.4 is installed" in out.stdout and "vs2_plugin" in out.stdout


def test_stage_is_found_in_dicts_and_argument_lists():
    assert integ.stage_of({"stage": "gdpo"}) == "gdpo"
    assert integ.stage_of(["--model_name_or_path", "x", "--stage", "gdpo"]) == "gdpo"
    assert integ.stage_of(["--stage=vs2_align"]) == "vs2_align"
    assert integ.stage_of(["--do_train"]) is None


def test_argument_lists_become_dicts():
    got = integ.args_to_dict(["--stage", "gdpo", "--gdpo-lambda=0.2", "--do_train", "--dataset", "a,b"])
    assert got == {"stage": "gdpo", "gdpo_lambda": "0.2", "do_train": "true", "dataset": "a,b"}
    with pytest.raises(ConfigError, match="'oops'"):
        integ.args_to_dict(["oops"])


def test_forced_stage_settings_reject_conflicts():
    spec = integ.STAGES["vs2_align"]
    args = {"stage": "vs2_align"}
    integ._apply_forced(spec, args)
    assert args["freeze_language_model"] is True and args["finetuning_type"] == "full"
    with pytest.raises(ConfigError, match="finetuning_type='full'.*'lora'"):
        integ._apply_forced(spec, {"finetuning_type": "lora"})


def test_registrations_are_idempotent():
    from llamafactory.data import template
    from llamafactory.extras import constants

    before = dict(constants.TRAINING_STAGES)
    integ._register_constants(constants)
    integ._register_template(template)
    integ._register_constants(constants)
    assert constants.TRAINING_STAGES == before
    assert "video_salmonn2" in template.TEMPLATES
    assert "video_salmonn2" in constants.MROPE_MODELS


def test_vs2_plugins_lists_registrations():
    out = run_cli(["vs2", "plugins"])
    assert out.returncode == 0, out.stderr
    for needle in ("template: video_salmonn2", "stage: gdpo, vs2_align", "mm_plugin: video_salmonn2",
                   "composite_model: video_salmonn2", "vs2_plugin.judge.offline", "vs2_judge_captions"):
        assert needle in out.stdout, out.stdout
    data = json.loads(run_cli(["vs2", "plugins", "--json"]).stdout)
    assert data["llamafactory_plugins"]["vs2_plugin=vs2_plugin.integrations.llamafactory:register"] == "ok"


def _cli_env() -> dict:
    return {"PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}", "OMP_NUM_THREADS": "1"}


@pytest.mark.slow
def test_tiny_sft_via_llamafactory_cli_writes_an_adapter(tiny_model_dir, tmp_path):
    out_dir = tmp_path / "sft"
    res = run_cli(
        ["llamafactory-cli", "train", "recipes/tiny/av_sft.yaml", f"model_name_or_path={tiny_model_dir}",
         f"output_dir={out_dir}", "max_steps=2"],
        cwd=REPO, env=_cli_env(),
    )
    assert res.returncode == 0, res.stderr[-3000:]
    assert (out_dir / "adapter_model.safetensors").stat().st_size > 0


@pytest.mark.slow
def test_tiny_sft_under_two_rank_torchrun(tiny_model_dir, tmp_path):
    out_dir = tmp_path / "sft_ddp"
    env = _cli_env() | {"FORCE_TORCHRUN": "1", "NPROC_PER_NODE": "2", "MASTER_PORT": "29533"}
    res = run_cli(
        ["llamafactory-cli", "train", "recipes/tiny/av_sft.yaml", f"model_name_or_path={tiny_model_dir}",
         f"output_dir={out_dir}", "max_steps=2"],
        cwd=REPO, env=env,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    assert (out_dir / "adapter_model.safetensors").stat().st_size > 0
    log = [json.loads(line) for line in (out_dir / "trainer_log.jsonl").read_text().splitlines()]
    assert log[-1]["current_steps"] == 2
