"""LlamaBoard's launch path for our stages, without a browser.

The web UI turns its form into arguments (``Runner._parse_train_args``), writes them with
``save_cmd`` and starts ``llamafactory-cli train <yaml>`` in a fresh process. That process
knows our stages and template only through the autoloader, so this test builds the real UI,
fills the form the way a user would, and runs exactly the command the UI would run.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from tests.support.paths import REPO, VENV_BIN

pytestmark = pytest.mark.slow

GDPO_DATA = REPO / "vs2_plugin" / "assets" / "demo_data" / "gdpo"
DEMO_DATA = REPO / "vs2_plugin" / "assets" / "demo_data"
GDPO_LABEL = "video-SALMONN 2 gDPO (DPO + lambda * NLL on ground truth)"
ALIGN_LABEL = "video-SALMONN 2 audio alignment (only the audio aligner trains)"
#: keys the form has no field for; what a user types into the "Extra arguments" box
CPU_EXTRA = {"max_steps": 2, "use_cpu": True, "bf16": False, "preprocessing_num_workers": 1, "report_to": "none"}


@pytest.fixture(scope="module")
def board(tmp_path_factory):
    """The real LlamaBoard UI built in a scratch working directory: (its Engine, that directory)."""
    workdir = tmp_path_factory.mktemp("llamaboard")
    old_cwd = os.getcwd()
    os.chdir(workdir)  # LlamaBoard writes llamaboard_cache/ and saves/ relative to the cwd
    try:
        from llamafactory.webui.engine import Engine
        from llamafactory.webui.interface import create_ui

        demo = create_ui()
    finally:
        os.chdir(old_cwd)
    engines = {getattr(block_fn.fn, "__self__", None) for block_fn in demo.fns.values()}
    engines = [e for e in engines if isinstance(e, Engine)]
    assert len(engines) == 1, f"expected one Engine behind the UI's callbacks, found {len(engines)}"
    return engines[0], workdir


def form_data(engine, values: dict[str, object]) -> dict:
    """Every input's default value, then the user's edits (by LlamaBoard element id)."""
    data = {}
    for elem in engine.manager.get_elem_list():
        if hasattr(elem, "value"):
            data[elem] = elem.value
    for elem_id, value in values.items():
        data[engine.manager.get_elem_by_id(elem_id)] = value
    return data


def test_stage_and_template_are_offered(board):
    engine, _ = board
    stages = engine.manager.get_elem_by_id("train.training_stage").choices
    labels = [choice[0] if isinstance(choice, tuple) else choice for choice in stages]
    assert GDPO_LABEL in labels and ALIGN_LABEL in labels
    templates = engine.manager.get_elem_by_id("top.template").choices
    assert "video_salmonn2" in [choice[0] if isinstance(choice, tuple) else choice for choice in templates]


def test_pairwise_datasets_listed_for_gdpo(board):
    from llamafactory.webui.control import list_datasets

    offered = list_datasets(str(GDPO_DATA), GDPO_LABEL).choices
    names = {choice[0] if isinstance(choice, tuple) else choice for choice in offered}
    assert "vs2_demo_gdpo_pairs" in names and "vs2_demo_gdpo_gt" not in names  # only ranking data
    offered = list_datasets(str(DEMO_DATA), ALIGN_LABEL).choices
    assert "vs2_demo_align" in {choice[0] if isinstance(choice, tuple) else choice for choice in offered}


def run_like_the_ui(engine, workdir: Path, values: dict[str, object]) -> tuple[dict, Path, subprocess.CompletedProcess]:
    """Parse the form, save the YAML and run the UI's exact command; returns (args, out, proc)."""
    from llamafactory.webui.common import save_cmd

    data = form_data(engine, values)
    assert engine.runner._initialize(data, do_train=True, from_preview=False) == ""
    old_cwd = os.getcwd()
    os.chdir(workdir)  # the UI's paths (llamaboard_cache/, saves/) are relative to its cwd
    try:
        args = engine.runner._parse_train_args(data)
        yaml_path = save_cmd(args)  # relative to the cwd, as in the UI
        env = dict(os.environ)
        env["LLAMABOARD_ENABLED"] = "1"
        env["LLAMABOARD_WORKDIR"] = args["output_dir"]
        env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
        env["OMP_NUM_THREADS"] = "1"
        proc = subprocess.run(
            ["llamafactory-cli", "train", yaml_path], env=env, cwd=workdir, capture_output=True, text=True, timeout=600
        )
    finally:
        os.chdir(old_cwd)
    return args, workdir / args["output_dir"], proc


def logged_loss_steps(output_dir: Path) -> list[int]:
    """Steps with a loss in trainer_log.jsonl (the last line is the run summary, without one)."""
    lines = (output_dir / "trainer_log.jsonl").read_text().splitlines()
    return [entry["current_steps"] for entry in map(json.loads, filter(str.strip, lines)) if "loss" in entry]


def base_values(tiny_model_dir: Path, stage_label: str, dataset_dir: Path, dataset: str, output: str, extra: dict):
    return {
        "top.lang": "en",
        "top.model_name": "Custom",
        "top.model_path": str(tiny_model_dir),
        "top.finetuning_type": "lora",
        "top.template": "video_salmonn2",
        "train.training_stage": stage_label,
        "train.dataset_dir": str(dataset_dir),
        "train.dataset": [dataset],
        "train.output_dir": output,
        "train.batch_size": 1,
        "train.gradient_accumulation_steps": 1,
        "train.logging_steps": 1,
        "train.extra_args": json.dumps(extra),
    }


def test_gdpo_run_from_the_ui_trains(board, tiny_model_dir):
    engine, workdir = board
    extra = {**CPU_EXTRA, "gdpo_lambda": 0.1, "gt_dataset": "vs2_demo_gdpo_gt_text"}
    values = base_values(tiny_model_dir, GDPO_LABEL, GDPO_DATA, "vs2_demo_gdpo_pairs_text", "gdpo_run", extra)
    args, out, proc = run_like_the_ui(engine, workdir, values)
    assert args["stage"] == "gdpo" and args["template"] == "video_salmonn2"
    saved = yaml.safe_load((out / "training_args.yaml").read_text())
    assert saved["stage"] == "gdpo" and saved["gt_dataset"] == "vs2_demo_gdpo_gt_text"
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"llamafactory-cli train failed:\n{log[-6000:]}"
    assert (out / "adapter_model.safetensors").is_file(), sorted(p.name for p in out.iterdir())
    assert logged_loss_steps(out) == [1, 2]  # what LlamaBoard's progress bar and loss plot read
    history = json.loads((out / "trainer_state.json").read_text())["log_history"]
    assert all("gdpo/nll_loss" in entry for entry in history if "loss" in entry)  # eq. 11's trainer ran


def test_alignment_run_from_the_ui_trains_only_the_aligner(board, tiny_model_dir):
    engine, workdir = board
    values = base_values(tiny_model_dir, ALIGN_LABEL, DEMO_DATA, "vs2_demo_align", "align_run", CPU_EXTRA)
    values["top.finetuning_type"] = "full"  # the stage requires it; "lora" is refused by name
    args, out, proc = run_like_the_ui(engine, workdir, values)
    assert args["stage"] == "vs2_align" and args["template"] == "video_salmonn2"
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"llamafactory-cli train failed:\n{log[-6000:]}"
    assert (out / "model.safetensors").is_file(), sorted(p.name for p in out.iterdir())
    assert logged_loss_steps(out) == [1, 2]
    before = load_file(tiny_model_dir / "model.safetensors")
    after = load_file(out / "model.safetensors")
    assert set(before) == set(after)
    changed = {name for name in before if not torch.equal(before[name], after[name])}
    assert changed and all(name.startswith("model.audio_aligner.") for name in changed), sorted(changed)[:5]
