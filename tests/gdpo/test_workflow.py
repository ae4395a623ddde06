"""The gdpo stage end to end on a tiny text model: rounds, reference hand-over, crash + resume."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.support.gdpo import text_args

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    from vs2_plugin.modeling.tiny import build_tiny_text_model

    return build_tiny_text_model(tmp_path_factory.mktemp("text-model"), seed=0)


def _round_args(model_dir, out, **overrides):
    return text_args(model_dir, out, gdpo_rounds=True, max_steps=4, save_strategy="steps", save_steps=1, **overrides)


@pytest.fixture(scope="module")
def memory_rounds(model_dir, tmp_path_factory):
    """Two memory-mode rounds; returns (run folder, round-1 result)."""
    from vs2_plugin.gdpo.workflow import run_gdpo_from_dict

    out = tmp_path_factory.mktemp("memory-rounds")
    first = run_gdpo_from_dict(_round_args(model_dir, out))
    run_gdpo_from_dict(_round_args(model_dir, out))
    return out, first


def _adapter(folder: Path) -> dict:
    return load_file(str(folder / "adapter_model.safetensors"))


def _ref_cache(run: Path, index: int) -> dict:
    state = json.loads((run / "rounds.json").read_text())
    return torch.load(run / state["rounds"][index - 1]["ref_cache"])


def _policy_logps(trainer) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probs of every training pair under a trainer's current policy (adapter on)."""
    import dataclasses

    from vs2_plugin.gdpo.packing import packed_forward

    collate = dataclasses.replace(trainer.data_collator, use_gt=False)
    chosen, rejected = [], []
    trainer.model.eval()
    with torch.no_grad():
        for start in range(0, len(trainer.train_dataset), 2):
            rows = [trainer.train_dataset[i] for i in range(start, min(start + 2, len(trainer.train_dataset)))]
            batch = collate(rows)
            batch = {k: v for k, v in batch.items() if not k.startswith("gdpo_ref") and k != "gdpo_pair_index"}
            out = packed_forward(trainer.model, batch)
            chosen.append(out["chosen_logps"])
            rejected.append(out["rejected_logps"])
    return torch.cat(chosen), torch.cat(rejected)


def test_second_round_reference_is_first_round_policy(memory_rounds):
    run, first = memory_rounds
    state = json.loads((run / "rounds.json").read_text())
    assert [r["status"] for r in state["rounds"]] == ["done", "done"]
    assert state["rounds"][0]["merged_adapters"] == []
    assert state["rounds"][1]["merged_adapters"] == [str(run / "round-001")]
    assert [r["global_step"] for r in state["rounds"]] == [4, 4]

    policy_chosen, policy_rejected = _policy_logps(first.trainer)
    ref2 = _ref_cache(run, 2)
    assert torch.allclose(ref2["chosen"], policy_chosen, atol=1e-4)
    assert torch.allclose(ref2["rejected"], policy_rejected, atol=1e-4)
    ref1 = _ref_cache(run, 1)
    assert not torch.allclose(ref1["chosen"], ref2["chosen"], atol=1e-3)  # the reference moved

    a1, a2 = _adapter(run / "round-001"), _adapter(run / "round-002")
    assert a1.keys() == a2.keys()
    assert any(not torch.equal(a1[k], a2[k]) for k in a1)  # a fresh LoRA was trained


def test_finished_round_is_not_rerun(memory_rounds, model_dir):
    from vs2_plugin.gdpo.workflow import run_gdpo_from_dict

    run, _ = memory_rounds
    before = (run / "rounds.json").read_text()
    # and it says so: with new settings a silent exit 0 would seem to have trained
    with pytest.warns(UserWarning, match=r"gdpo round 2 is already finished .*nothing was trained.*gdpo_round=3"):
        result = run_gdpo_from_dict(_round_args(model_dir, run, gdpo_round=2))
    assert result.skipped and result.round == 2
    assert (run / "rounds.json").read_text() == before


def test_export_hook_rounds_agree_with_memory_rounds(memory_rounds, model_dir, tmp_path):
    from vs2_plugin.gdpo.workflow import run_gdpo_from_dict

    run, _ = memory_rounds
    out = tmp_path / "export-rounds"
    run_gdpo_from_dict(_round_args(model_dir, out, gdpo_round_hook="export"))
    run_gdpo_from_dict(_round_args(model_dir, out, gdpo_round_hook="export"))
    state = json.loads((out / "rounds.json").read_text())
    assert state["rounds"][1]["reference_model"] == str(out / "round-002" / "reference")
    assert (out / "round-002" / "reference" / "config.json").is_file()
    for index in (1, 2):
        ours, theirs = _ref_cache(out, index), _ref_cache(run, index)
        assert torch.allclose(ours["chosen"], theirs["chosen"], atol=1e-4)
        assert torch.allclose(ours["rejected"], theirs["rejected"], atol=1e-4)


KILLER = textwrap.dedent(
    """
    import json, os, signal, sys
    from transformers import TrainerCallback
    from vs2_plugin.gdpo.workflow import run_gdpo_from_dict

    class KillAtStep(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 3:
                os.kill(os.getpid(), signal.SIGKILL)

    run_gdpo_from_dict(json.loads(sys.argv[1]), callbacks=[KillAtStep()])
    """
)


def test_kill_9_mid_round_then_rerun_ends_in_the_same_state(memory_rounds, model_dir, tmp_path, repo_root):
    from vs2_plugin.gdpo.workflow import run_gdpo_from_dict

    reference_run, _ = memory_rounds
    out = tmp_path / "killed"
    args = _round_args(model_dir, out)
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(repo_root))
    proc = subprocess.run(
        [sys.executable, "-c", KILLER, json.dumps(args)],
        cwd=repo_root,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == -9, proc.stderr[-3000:]
    state = json.loads((out / "rounds.json").read_text())
    assert state["rounds"][0]["status"] == "training"
    assert (out / "round-001" / "checkpoint-2" / "trainer_state.json").is_file()
    assert not (out / "round-001" / "checkpoint-3").exists()
    (out / "round-001" / "checkpoint-3").mkdir()  # as if killed while writing the next checkpoint
    (out / "round-001" / "checkpoint-3" / "adapter_model.safetensors").write_bytes(b"partial")

    result = run_gdpo_from_dict(args)
    assert result.round == 1 and not result.skipped
    assert result.trainer.ref_cache.computed is False  # reference log-probs read back from disk
    state = json.loads((out / "rounds.json").read_text())
    assert state["rounds"][0]["status"] == "done" and state["rounds"][0]["global_step"] == 4
    resumed, uninterrupted = _adapter(out / "round-001"), _adapter(reference_run / "round-001")
    for key in uninterrupted:
        assert torch.allclose(resumed[key], uninterrupted[key], atol=1e-6), key


def test_single_lora_mode_continues_one_lora_against_the_fixed_reference(model_dir, tmp_path):
    """The ablation without LoRA proxies: round 2 resumes round 1's LoRA (with learning rate 0 it
    ends exactly as round 1 left it) and keeps round 1's reference (nothing merged)."""
    from vs2_plugin.gdpo.workflow import run_gdpo_from_dict

    run = tmp_path / "single"
    run_gdpo_from_dict(_round_args(model_dir, run, gdpo_lora_mode="single"))
    run_gdpo_from_dict(_round_args(model_dir, run, gdpo_lora_mode="single", learning_rate=0.0))
    state = json.loads((run / "rounds.json").read_text())
    assert [r["merged_adapters"] for r in state["rounds"]] == [[], []]
    ref1, ref2 = _ref_cache(run, 1), _ref_cache(run, 2)
    assert torch.allclose(ref1["chosen"], ref2["chosen"], atol=1e-5)
    a1, a2 = _adapter(run / "round-001"), _adapter(run / "round-002")
    assert a1.keys() == a2.keys() and all(torch.equal(a1[k], a2[k]) for k in a1)
    # proxies, the same learning rate 0: round 2 is a fresh LoRA, not round 1's
    proxy = tmp_path / "proxy"
    run_gdpo_from_dict(_round_args(model_dir, proxy))
    run_gdpo_from_dict(_round_args(model_dir, proxy, learning_rate=0.0))
    p1, p2 = _adapter(proxy / "round-001"), _adapter(proxy / "round-002")
    assert any(not torch.equal(p1[k], p2[k]) for k in p1)


def test_single_lora_mode_needs_the_memory_hook():
    from vs2_plugin.errors import ConfigError
    from vs2_plugin.gdpo.config import GDPOArguments

    with pytest.raises(ConfigError, match="gdpo_lora_mode: single .* got 'export'"):
        GDPOArguments(gdpo_lambda=0.0, gdpo_lora_mode="single", gdpo_round_hook="export")
    with pytest.raises(ConfigError, match="gdpo_lora_mode must be one of proxy, single; got 'one'"):
        GDPOArguments(gdpo_lambda=0.0, gdpo_lora_mode="one")
