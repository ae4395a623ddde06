"""gDPO rounds under torchrun: two CPU ranks (gloo), plain DDP and DeepSpeed ZeRO-2.

Every rank runs the round code; only rank 0 may write the shared files (``rounds.json``,
the reference log-prob cache, the adapter, the Trainer's logs). A second writer shows up
as a duplicated round record, a doubled training log, a second cache file or a stray temp
file; a wrong gather of the reference pass shows up as log-probs that differ from the
one-process run. The runs go through ``llamafactory-cli train`` exactly as documented:
``FORCE_TORCHRUN=1 NPROC_PER_NODE=2``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.support.paths import REPO, VENV_BIN
from tests.support.processes import run_cli

pytestmark = pytest.mark.slow

RECIPE = "recipes/tiny/gdpo_round.yaml"
PAIRS = json.loads((REPO / "vs2_plugin" / "assets" / "demo_data" / "gdpo" / "vs2_demo_gdpo_pairs.json").read_text())
#: per-device batch 1 x accumulation 2 x 2 ranks
GLOBAL_BATCH = 4


def _env(port: int, **extra: str) -> dict:
    return {
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",  # the launcher runs `torchrun`
        "OMP_NUM_THREADS": "1",
        "FORCE_TORCHRUN": "1",
        "NPROC_PER_NODE": "2",
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(port),
        **extra,
    }


def _round(model: Path, out: Path, env: dict | None, *extra: str):
    overrides = [f"model_name_or_path={model}", f"output_dir={out}", "max_steps=2", "save_steps=1", *extra]
    proc = run_cli(["llamafactory-cli", "train", RECIPE, *overrides], cwd=REPO, env=env)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-6000:]
    return proc


def _ref_cache(out: Path, record: dict) -> dict:
    return torch.load(out / record["ref_cache"], map_location="cpu")


def _check_written_once(out: Path, rounds: int) -> list[dict]:
    """rounds.json has one record per round, each round folder one cache and one clean log."""
    state = json.loads((out / "rounds.json").read_text())
    records = state["rounds"]
    assert [r["round"] for r in records] == list(range(1, rounds + 1))
    assert [r["status"] for r in records] == ["done"] * rounds
    assert [r["global_step"] for r in records] == [2] * rounds
    stray = sorted(str(p.relative_to(out)) for p in out.rglob("*") if ".tmp-" in p.name)
    assert not stray, stray  # an interrupted or competing atomic write
    for record in records:
        folder = out / record["dir"]
        assert [p.name for p in (folder / "ref_logps").iterdir()] == [Path(record["ref_cache"]).name]
        log = [json.loads(line) for line in (folder / "trainer_log.jsonl").read_text().splitlines() if line.strip()]
        assert [e["current_steps"] for e in log if "loss" in e] == [1, 2]  # one writer: no doubled lines
        # both ranks trained and checkpointed their RNG state; the adapter itself is saved once
        assert sorted(p.name for p in (folder / "checkpoint-2").glob("rng_state_*.pth")) == [
            "rng_state_0.pth",
            "rng_state_1.pth",
        ]
        adapter = load_file(folder / "adapter_model.safetensors")
        assert adapter and all(torch.isfinite(t).all() for t in adapter.values())
        lora_b = [t for name, t in adapter.items() if "lora_B" in name]
        assert lora_b and any(t.abs().sum() > 0 for t in lora_b), "the round's LoRA did not train"
        last = load_file(folder / "checkpoint-2" / "adapter_model.safetensors")
        assert set(last) == set(adapter) and all(torch.equal(last[k], adapter[k]) for k in adapter)
    return records


def _check_two_ranks(proc) -> None:
    log = proc.stdout + proc.stderr
    assert "world size: 2" in log, log[-3000:]
    assert f"Total train batch size (w. parallel, distributed & accumulation) = {GLOBAL_BATCH}" in log


@pytest.fixture(scope="module")
def one_process_round(tiny_model_dir, tmp_path_factory) -> tuple[Path, dict]:
    """Round 1 in one process: the reference log-probs the two-rank runs must reproduce."""
    out = tmp_path_factory.mktemp("gdpo-one-process")
    # one process even where the launcher would go distributed by itself (several GPUs visible)
    _round(tiny_model_dir, out, {"OMP_NUM_THREADS": "1", "FORCE_TORCHRUN": "0", "CUDA_VISIBLE_DEVICES": ""})
    record = json.loads((out / "rounds.json").read_text())["rounds"][0]
    return out, record


def _check_reference_like_one_process(out: Path, record: dict, one_process_round) -> None:
    """The cache of the two-rank reference pass is gathered into dataset order, all pairs once."""
    single_out, single_record = one_process_round
    assert Path(record["ref_cache"]).name == Path(single_record["ref_cache"]).name  # same data, same reference
    ours, theirs = _ref_cache(out, record), _ref_cache(single_out, single_record)
    for side in ("chosen", "rejected"):
        assert ours[side].shape == (len(PAIRS),)
        torch.testing.assert_close(ours[side], theirs[side], rtol=1e-4, atol=1e-3)


def test_two_rounds_under_two_rank_torchrun(tiny_model_dir, tmp_path, one_process_round):
    out = tmp_path / "gdpo"
    env = _env(29541)
    proc = _round(tiny_model_dir, out, env)
    _check_two_ranks(proc)
    (first,) = _check_written_once(out, rounds=1)
    assert first["merged_adapters"] == [] and first["reference_model"] == str(tiny_model_dir)
    _check_reference_like_one_process(out, first, one_process_round)

    # round 2 on round 1's output: both ranks stack round 1's LoRA under the reference
    _round(tiny_model_dir, out, env)
    first, second = _check_written_once(out, rounds=2)
    assert second["merged_adapters"] == [str(out / "round-001")]
    assert second["ref_cache"] != first["ref_cache"]  # a different reference, a different cache key


DS_Z2 = REPO / "recipes" / "deepspeed" / "ds_z2.json"


def _deepspeed_missing() -> str:
    if importlib.util.find_spec("deepspeed") is None:
        return "deepspeed is not installed (pip install -e '.[deepspeed]', or .ci/setup)"
    if not (os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++")):
        return "no C++ compiler: DeepSpeed compiles its CPU communication op on first use"
    return ""


@pytest.mark.skipif(bool(_deepspeed_missing()), reason=_deepspeed_missing() or "-")
def test_round_under_deepspeed_zero2_on_cpu(tiny_model_dir, tmp_path, one_process_round):
    out = tmp_path / "gdpo-ds"
    # DeepSpeed picks its accelerator at import; on a machine without GPUs it is the CPU one (gloo)
    proc = _round(tiny_model_dir, out, _env(29543, DS_ACCELERATOR="cpu"), f"deepspeed={DS_Z2}")
    _check_two_ranks(proc)
    (record,) = _check_written_once(out, rounds=1)
    _check_reference_like_one_process(out, record, one_process_round)
    args = torch.load(out / "round-001" / "training_args.bin", weights_only=False)
    assert args.deepspeed == str(DS_Z2) and args.hf_deepspeed_config.config["zero_optimization"]["stage"] == 2
