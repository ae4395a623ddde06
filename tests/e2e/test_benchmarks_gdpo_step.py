"""benchmarks/gdpo_step.py: the 7B variant's model, the child-process plumbing, a spawned CPU run."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import subprocess
import sys

import pytest

from tests.support.scripts import load_script


def test_the_7b_variant_is_qwen25_7b_language_model():
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from vs2_plugin.modeling.config import QWEN25VL_7B_TEXT

    with torch.device("meta"):
        model = Qwen2ForCausalLM(Qwen2Config(**QWEN25VL_7B_TEXT, tie_word_embeddings=False))
    assert sum(p.numel() for p in model.parameters()) == 7_615_616_512  # Qwen2.5-7B's count


def test_a_child_that_dies_is_an_error_not_a_hang():
    bench = load_script("benchmarks/gdpo_step.py")
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    proc = ctx.Process(target=os._exit, args=(3,))
    proc.start()
    with pytest.raises(SystemExit, match="the dpo run failed \\(exit status 3\\)"):
        bench._child_result(proc, queue, "the dpo run")


@pytest.mark.slow
def test_spawned_runs_measure_both_sides(repo_root, tmp_path):
    """The start method used with CUDA (spawn), on the CPU at a small scale, round hooks skipped."""
    out = tmp_path / "gdpo_step.json"
    command = [sys.executable, "benchmarks/gdpo_step.py", "--scale", "0.05", "--pairs", "2", "--repeats", "1"]
    command += ["--hook-repeats", "0", "--start-method", "spawn", "--out", str(out)]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(repo_root))
    proc = subprocess.run(command, cwd=repo_root, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert (result["widths"], result["device"], result["dtype"]) == ("tiny", "cpu", "float32")
    assert result["round_hook_export_vs_memory"] is None and result["round_hook_memory_s"] is None
    assert len(result["gdpo_step_s"]["runs"]) == len(result["dpo_step_s"]["runs"]) == 1
    assert result["gdpo_vs_dpo_epoch_ratio"] > 0 and result["peak_mem_ratio"] > 0
