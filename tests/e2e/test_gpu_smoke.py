"""scripts/gpu_smoke.sh: the --cpu variant runs every step in CI; the GPU variant's widths are the 7B ones."""

from __future__ import annotations

import json
import os
import subprocess

import pytest


def test_seven_b_widths_of_the_smoke_model():
    from tests.support.scripts import load_script
    from vs2_plugin.modeling.config import VideoSalmonn2Config

    smoke = load_script("scripts/gpu_smoke.py")
    config = VideoSalmonn2Config(**smoke.model_overrides(seven_b=True, layers=2))
    text, vision, audio = config.text_config, config.vision_config, config.audio_config
    assert (text.hidden_size, text.intermediate_size, text.num_attention_heads, text.num_key_value_heads) == (
        3584,
        18944,
        28,
        4,
    )
    assert text.num_hidden_layers == 2 and vision.depth == 2 and audio["n_audio_layer"] == 2
    head_dim = text.hidden_size // text.num_attention_heads
    assert sum(text.rope_parameters["mrope_section"]) * 2 == head_dim == 128
    assert (vision.hidden_size, vision.out_hidden_size) == (1280, 3584)
    assert (audio["n_audio_state"], audio["n_mels"]) == (1280, 128)
    tiny = smoke.model_overrides(seven_b=False, layers=2)
    assert tiny["text_config"]["hidden_size"] == 64 and tiny["audio_config"]["n_mels"] == 128


@pytest.mark.slow
def test_cpu_smoke_runs_every_step_and_prints_json(repo_root, tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(repo_root))
    saved = tmp_path / "smoke.json"
    proc = subprocess.run(
        ["bash", "scripts/gpu_smoke.sh", "--cpu", "--json", str(saved)],
        cwd=repo_root,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (line,) = [l for l in proc.stdout.splitlines() if l.startswith("VS2_SMOKE_JSON ")]
    result = json.loads(line.split(" ", 1)[1])
    written = json.loads(saved.read_text())
    assert written.pop("versions")["llamafactory"] == "0.9.5" and written == result
    assert result["ok"] is True and result["device"] == "cpu" and result["widths"] == "tiny"
    steps = result["steps"]
    assert list(steps) == ["build", "align", "sft", "gdpo_packed", "dpo_stock", "generate_audio"]
    for name in ("align", "sft", "gdpo_packed", "dpo_stock"):
        assert steps[name]["loss_finite"] is True and steps[name]["loss"] > 0, name
    assert steps["gdpo_packed"]["attention"] == "sdpa"  # no CUDA: the dense-mask fallback
    assert steps["dpo_stock"]["loss"] == pytest.approx(0.6931, abs=1e-3)  # stock DPO, policy = reference at step 1
    assert steps["generate_audio"]["new_tokens"] > 0 and steps["build"]["parameters"] > 0
    assert all(s["seconds"] > 0 and s["peak_mb"] > 0 for s in steps.values())


def test_recorded_gpu_run_passed_every_step(repo_root):
    """benchmarks/results/gpu_smoke.json: the bf16 run at the 7B widths on a GPU, every step finite."""
    recorded = json.loads((repo_root / "benchmarks" / "results" / "gpu_smoke.json").read_text())
    assert [run["layers"] for run in recorded["runs"]] == [2, 4]
    for run in recorded["runs"]:
        assert run["ok"] is True and run["dtype"] == "bfloat16" and run["widths"] == "7B"
        assert run["steps"]["gdpo_packed"]["attention"] == "vs2_packed_flex"
        assert all(step.get("loss_finite", True) for step in run["steps"].values())
