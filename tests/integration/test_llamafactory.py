"""Registration into LLaMA-Factory and stage dispatch, from unit level to real CLI runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.paths import REPO, VENV_BIN
from tests.support.processes import run_cli
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
    for needle in (
        "template: video_salmonn2",
        "stage: gdpo, vs2_align",
        "mm_plugin: video_salmonn2",
        "composite_model: video_salmonn2",
        "vs2_plugin.judge.offline",
        "vs2_register_judges",
    ):
        assert needle in out.stdout, out.stdout
    data = json.loads(run_cli(["vs2", "plugins", "--json"]).stdout)
    assert data["llamafactory_plugins"]["vs2_plugin=vs2_plugin.integrations.llamafactory:register"] == "ok"


def _cli_env() -> dict:
    return {"PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}", "OMP_NUM_THREADS": "1"}


@pytest.mark.slow
def _train_tiny(recipe: str, model_dir: Path, out_dir: Path, **env: str):
    """``llamafactory-cli train recipes/tiny/RECIPE`` on ``model_dir`` for 2 steps into ``out_dir``."""
    return run_cli(
        [
            "llamafactory-cli",
            "train",
            f"recipes/tiny/{recipe}",
            f"model_name_or_path={model_dir}",
            f"output_dir={out_dir}",
            "max_steps=2",
        ],
        cwd=REPO,
        env=_cli_env() | env,
    )


def test_tiny_sft_via_llamafactory_cli_writes_an_adapter(tiny_model_dir, tmp_path):
    out_dir = tmp_path / "sft"
    res = _train_tiny("av_sft.yaml", tiny_model_dir, out_dir)
    assert res.returncode == 0, res.stderr[-3000:]
    assert (out_dir / "adapter_model.safetensors").stat().st_size > 0
    _assert_only_trainable_weights_moved(tiny_model_dir, out_dir)


def _digest(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def _assert_only_trainable_weights_moved(base_dir: Path, out_dir: Path) -> None:
    """The SFT adapter holds LoRA factors of the LLM and a trained copy of the audio aligner, nothing else."""
    import torch
    from safetensors.torch import load_file

    base = load_file(str(base_dir / "model.safetensors"))
    adapter = load_file(str(out_dir / "adapter_model.safetensors"))
    lora_b = {k: v for k, v in adapter.items() if "lora_B" in k}
    aligner = {k: v for k, v in adapter.items() if "audio_aligner" in k and "lora_" not in k}
    others = set(adapter) - set(lora_b) - set(aligner) - {k for k in adapter if "lora_A" in k}
    assert not others, f"unexpected trainable weights: {sorted(others)[:5]}"
    assert lora_b and all(("language_model" in k or "model.layers" in k) for k in lora_b), sorted(lora_b)[:5]
    assert not any(k for k in lora_b if "visual" in k or "audio_encoder" in k or "audio_aligner" in k)
    assert any(v.abs().sum() > 0 for v in lora_b.values()), "LoRA B is still zero: nothing trained"
    moved = 0
    for key, value in aligner.items():
        # PEFT stores a modules_to_save copy as <module>.modules_to_save.default.<param> (or under the bare name)
        name = key.replace("base_model.model.", "").replace("modules_to_save.default.", "")
        match = [b for b in base if b.endswith(name) or name.endswith(b)]
        assert match, f"no base weight for {key}"
        moved += not torch.equal(value.to(base[match[0]].dtype), base[match[0]])
    assert moved > 0, "the audio aligner did not change"


def test_alignment_stage_changes_only_the_audio_aligner(tiny_model_dir, tmp_path):
    """vs2_align through llamafactory-cli: a full checkpoint whose only changed tensors are the aligner's."""
    import torch
    from safetensors.torch import load_file

    before = _digest(tiny_model_dir / "model.safetensors")
    out_dir = tmp_path / "align"
    res = _train_tiny("audio_align.yaml", tiny_model_dir, out_dir)
    assert res.returncode == 0, res.stderr[-3000:]
    assert _digest(tiny_model_dir / "model.safetensors") == before, "the base checkpoint was written to"
    base = load_file(str(tiny_model_dir / "model.safetensors"))
    trained = load_file(str(out_dir / "model.safetensors"))
    assert trained.keys() == base.keys()
    changed = sorted(k for k in base if not torch.equal(base[k], trained[k].to(base[k].dtype)))
    assert changed and all("audio_aligner" in k for k in changed), changed[:5]


@pytest.mark.slow
def test_tiny_sft_under_two_rank_torchrun(tiny_model_dir, tmp_path):
    out_dir = tmp_path / "sft_ddp"
    res = _train_tiny(
        "av_sft.yaml", tiny_model_dir, out_dir, FORCE_TORCHRUN="1", NPROC_PER_NODE="2", MASTER_PORT="29533"
    )
    assert res.returncode == 0, res.stderr[-3000:]
    assert (out_dir / "adapter_model.safetensors").stat().st_size > 0
    log = [json.loads(line) for line in (out_dir / "trainer_log.jsonl").read_text().splitlines()]
    assert log[-1]["current_steps"] == 2


def test_a_misspelt_lora_module_stops_llamafactory_cli_train(tiny_model_dir, tmp_path):
    """PEFT would train without the module and say nothing; the run stops before the model loads."""
    out_dir = tmp_path / "sft"
    res = run_cli(
        [
            "llamafactory-cli",
            "train",
            "recipes/tiny/av_sft.yaml",
            f"model_name_or_path={tiny_model_dir}",
            f"output_dir={out_dir}",
            "additional_target=audio_alinger",
        ],
        cwd=REPO,
        env=_cli_env(),
    )
    assert res.returncode != 0
    assert "additional_target audio_alinger: no module of the model ends with it" in res.stderr
    assert not (out_dir / "adapter_model.safetensors").exists()
