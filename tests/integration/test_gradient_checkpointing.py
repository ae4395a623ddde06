"""The tiny recipes train without gradient checkpointing, and that changes no weight.

LLaMA-Factory recomputes each layer's forward pass in the backward pass unless told not to; on a
tiny model it only costs time (benchmarks/gradient_checkpointing.py). Turning it off must leave
training exactly as it was, or every recorded figure of the learning benchmark would move.
"""

from __future__ import annotations

import pytest
import torch
import yaml
from safetensors.torch import load_file

from tests.support.paths import REPO

TRAINING_RECIPES = ["audio_align", "av_sft", "gdpo_round", "pretrain_text", "rebirth_sft"]


@pytest.mark.parametrize("name", TRAINING_RECIPES)
def test_tiny_training_recipes_turn_checkpointing_off(name):
    assert yaml.safe_load((REPO / "recipes" / "tiny" / f"{name}.yaml").read_text())["disable_gradient_checkpointing"]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["av_sft", "gdpo_round"])
def test_same_weights_with_and_without_checkpointing(name, tiny_model_dir, tmp_path, run_cli):
    weights = {}
    for off in (True, False):
        out = tmp_path / f"off-{off}"
        args = [f"model_name_or_path={tiny_model_dir}", f"output_dir={out}", "max_steps=3"]
        args.append(f"disable_gradient_checkpointing={str(off).lower()}")
        proc = run_cli(["llamafactory-cli", "train", f"recipes/tiny/{name}.yaml", *args], cwd=REPO)
        assert proc.returncode == 0, proc.stderr[-4000:]
        files = sorted(out.rglob("adapter_model.safetensors")) or sorted(out.rglob("model*.safetensors"))
        assert files, f"no weights saved under {out}"
        weights[off] = load_file(str(files[-1]))
    assert weights[True].keys() == weights[False].keys()
    changed = [k for k in weights[True] if not torch.equal(weights[True][k], weights[False][k])]
    assert not changed, f"{len(changed)} tensors differ, e.g. {changed[:3]}"
    # and the runs trained something: a LoRA B matrix starts at zero
    assert any(t.abs().sum() > 0 for k, t in weights[True].items() if "lora_B" in k)
