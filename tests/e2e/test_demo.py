"""`vs2 demo`, the README's main command: every stage runs and changes the weights of the one before."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.slow

STAGES = [
    "tiny model",
    "encoder pretraining",
    "language pretraining",
    "alignment",
    "SFT",
    "mrDPO round 1",
    "mrDPO round 2",
    "rebirth",
    "gDPO after rebirth",
]


def test_demo_runs_every_stage_and_every_stage_changes_the_weights(tmp_path, run_cli, repo_root):
    out = tmp_path / "demo"
    res = run_cli(["vs2", "demo", "--out", str(out), "--no-progress"], cwd=repo_root, timeout=1500)
    assert res.returncode == 0, res.stderr[-3000:]
    assert (out / "DONE").is_file()
    # the auto caption budget: room for the longest reference of the demo's clips (236 tokens + EOS)
    budget = json.loads((out / "caption_budget.json").read_text())
    assert budget["max_new_tokens"] == 256 and budget["longest_reference_tokens"] + 1 <= 256
    assert budget["clip"].endswith(" of data/train.jsonl") or budget["clip"].endswith(" of data/heldout.jsonl")
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["stages_ran"] == STAGES
    changes = {c["stage"]: c for c in metrics["weight_changes"]}
    assert list(changes) == STAGES[1:]
    assert changes["alignment"]["changed_modules"] == ["audio_aligner"]  # only the aligner trains in alignment
    # encoder pretraining changes the encoders only (the model still cannot caption after it)
    assert changes["encoder pretraining"]["changed_modules"] == ["audio_encoder", "visual"]
    assert metrics["encoder_pretraining"]["steps"] > 0
    # text-only pretraining teaches the language model, never the visual or audio branch
    assert set(changes["language pretraining"]["changed_modules"]) <= {"language_model", "lm_head"}
    for stage in STAGES[1:]:
        assert changes[stage]["changed_tensors"] > 0 and changes[stage]["max_abs_change"] > 0, stage
    assert changes["rebirth"]["vs"] == "mrDPO round 2"
    rows = [r["stage"] for r in metrics["stages"]]
    assert rows[0] == "SFT" and rows[-1].startswith("gDPO after rebirth")
    # the table moves: SFT captions tell events (exact judge of the synthetic clips), and the
    # preference rounds change what the model writes
    sft = metrics["stages"][0]
    assert sft["global"]["miss"] < 0.95 and sft["local"]["miss"] < 0.95, sft
    after = [r for r in metrics["stages"][1:] if r["stage"].startswith("mrDPO")]
    assert any(r["global"] != sft["global"] or r["local"] != sft["local"] for r in after), metrics["stages"]
    # every mrDPO round selected pairs and trained on them
    assert all(r["pairs"] > 0 for r in metrics["stages"] if r["stage"].startswith(("mrDPO", "gDPO")))
    # rebirth relearns from greedy labels (the paper's): the reborn model writes natural captions
    # (labels sampled from the tiny model were misspelt, and every reborn caption was unnatural)
    reborn = next(r for r in metrics["stages"] if r["stage"] == "rebirth")
    assert reborn["global"]["unnatural"] <= 0.25, reborn
    assert metrics["rebirth"]["kept"] > 0, metrics["rebirth"]
    report = (out / "report.md").read_text()
    assert all(stage in report for stage in ["SFT", "mrDPO round 2", "rebirth", "gDPO after rebirth"])
    assert (out / "rounds.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "report:" in res.stdout
    # a rerun finds every stage done and changes nothing
    before = (out / "metrics.json").read_text()
    again = run_cli(["vs2", "demo", "--out", str(out), "--no-progress"], cwd=repo_root, timeout=900)
    assert again.returncode == 0, again.stderr[-3000:]
    assert json.loads((out / "metrics.json").read_text())["weight_changes"] == json.loads(before)["weight_changes"]
