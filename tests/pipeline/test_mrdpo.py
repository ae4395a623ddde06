"""The mrDPO driver on the tiny model: a full round, and SIGKILL at every step then resume."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.support.paths import REPO
from tests.support.processes import kill_when

pytestmark = pytest.mark.slow


def _config(tmp_path: Path, tiny_model_dir: Path, name: str) -> Path:
    cfg = yaml.safe_load((REPO / "recipes" / "tiny" / "mrdpo.yaml").read_text())
    cfg.update(
        run_dir=str(tmp_path / name),
        model_name_or_path=str(tiny_model_dir),
        rounds=1,
        train_videos=str(REPO / "vs2_plugin/assets/demo_data/vs2_demo_rl.jsonl"),
        heldout_videos=str(REPO / "vs2_plugin/assets/demo_data/vs2_demo_heldout.jsonl"),
    )
    cfg["sampling"]["max_new_tokens"] = 16
    cfg["thresholds"] = [{"delta_e_global": -1.0, "delta_r_global": -1.0, "delta_e_local": -1.0, "delta_r_local": -1.0}]
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _start(cfg: Path) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.Popen(
        [sys.executable, "-m", "vs2_plugin.cli", "mrdpo", str(cfg), "--no-progress"],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(cfg: Path) -> None:
    proc = _start(cfg)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]


def _kill_when(cfg: Path, condition, what: str, timeout: float = 300) -> None:
    kill_when(_start(cfg), condition, what, timeout)


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def _state(run: Path) -> dict:
    p = run / "pipeline_state.json"
    return json.loads(p.read_text()) if p.exists() else {"rounds": {}}


def _steps(run: Path, r: int) -> dict:
    return _state(run)["rounds"].get(str(r), {}).get("steps", {})


def _adapter(run: Path):
    from safetensors.torch import load_file

    return load_file(str(run / "gdpo" / "round-001" / "adapter_model.safetensors"))


def test_killed_at_every_step_resumes_to_the_uninterrupted_result(tmp_path, tiny_model_dir):
    clean = _config(tmp_path, tiny_model_dir, "clean")
    _finish(clean)
    clean_run = tmp_path / "clean"
    assert (clean_run / "report.md").is_file() and (clean_run / "rounds.png").stat().st_size > 1000
    metrics = json.loads((clean_run / "metrics.json").read_text())
    assert [s["stage"] for s in metrics["stages"]] == ["start", "round 1"]
    assert _steps(clean_run, 1).keys() >= {"sample", "judge", "pairs", "train", "eval", "hook"}

    cfg = _config(tmp_path, tiny_model_dir, "killed")
    run = tmp_path / "killed"
    samples = run / "round-001" / "samples.jsonl"
    # 1) during sampling: some captions written, not all
    _kill_when(cfg, lambda: 1 <= len(_lines(samples)) < 12, "sampling")
    before = {r["key"]: r["time"] for r in _lines(samples)}
    # 2) during judging: sampling marked done, judging not
    _kill_when(cfg, lambda: "sample" in _steps(run, 1) and "judge" not in _steps(run, 1), "judging")
    after = {r["key"]: r["time"] for r in _lines(samples)}
    assert all(after[k] == t for k, t in before.items()), "finished captions were sampled again"
    # 3) during training: a checkpoint of the round exists, the round is not done
    ckpt = run / "gdpo" / "round-001" / "checkpoint-2"
    _kill_when(cfg, lambda: ckpt.is_dir() and "train" not in _steps(run, 1), "training", timeout=400)
    _finish(cfg)

    assert [r["caption"] for r in _lines(samples)] == [
        r["caption"] for r in _lines(clean_run / "round-001" / "samples.jsonl")
    ]
    assert len({r["key"] for r in _lines(samples)}) == len(_lines(samples))
    strip = lambda rows: [(r["key"], r["judgment"].get("total_rate")) for r in rows]
    assert strip(_lines(run / "round-001" / "judged.jsonl")) == strip(_lines(clean_run / "round-001" / "judged.jsonl"))
    assert _state(run)["rounds"]["1"]["results"]["pairs"] == _state(clean_run)["rounds"]["1"]["results"]["pairs"]
    a, b = _adapter(run), _adapter(clean_run)
    assert a.keys() == b.keys()
    import torch

    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-6), k
    rounds = json.loads((run / "gdpo" / "rounds.json").read_text())
    assert [r["status"] for r in rounds["rounds"]] == ["done"]


def test_held_out_summary_of_a_judge_that_leaves_a_count_unmeasured():
    """A judge may leave hallucinations unmeasured (Judgment.unmeasured): the summary says None for
    what it did not measure on every item, rather than failing on the missing rates."""
    from vs2_plugin.judge.types import Judgment
    from vs2_plugin.pipeline.mrdpo import summarize_judged

    judgments = [
        Judgment(id="a", judge="third", n_events=2, missed=["e"]),
        Judgment(id="b", judge="third", n_events=2, unmeasured=["hallucinated"]),
    ]
    judged = [{"task": "global", "caption": "A tone sounds.", "judgment": j.to_dict()} for j in judgments]
    summary = summarize_judged(judged)["global"]
    assert summary["miss"] == 0.25 and summary["hall"] is None and summary["total"] is None
    assert summary["n"] == 2 and summary["failed"] == 0 and summary["unnatural"] == 0.0
