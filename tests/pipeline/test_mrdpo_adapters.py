"""Which adapters the mrDPO driver stacks after each round, and from where (a moved run folder)."""

from __future__ import annotations

import shutil

from vs2_plugin.pipeline.mrdpo import round_adapters
from vs2_plugin.pipeline.records import StepState


def _trained_run(run_dir):
    state = StepState(run_dir)
    state.mark(1, "train", {"gdpo_round": 1, "adapter": str(run_dir / "gdpo" / "round-001"), "pairs": 4})
    state.mark(2, "train", {"skipped": "no sample pair passed this round's thresholds"})
    state.mark(3, "train", {"gdpo_round": 2, "adapter": str(run_dir / "gdpo" / "round-002"), "pairs": 3})
    return state


def test_proxies_stack_and_a_skipped_round_adds_none(tmp_path):
    run = tmp_path / "run"
    state = _trained_run(run)
    sft = ["/models/sft-lora"]
    assert round_adapters(state, run, 0, sft, single_lora=False) == sft
    assert round_adapters(state, run, 2, sft, single_lora=False) == [*sft, str(run / "gdpo" / "round-001")]
    assert round_adapters(state, run, 3, sft, single_lora=False) == [
        *sft,
        str(run / "gdpo" / "round-001"),
        str(run / "gdpo" / "round-002"),
    ]
    # one LoRA kept across rounds: the last round's adapter holds every round
    assert round_adapters(state, run, 3, sft, single_lora=True) == [*sft, str(run / "gdpo" / "round-002")]


def test_a_moved_run_folder_uses_its_own_adapters(tmp_path):
    old = tmp_path / "scratch" / "run"
    _trained_run(old)
    new = tmp_path / "project" / "run"
    shutil.copytree(old, new)
    shutil.rmtree(old)
    moved = StepState(new)  # its records still name the old place
    assert str(old) in str(moved.result(1, "train"))
    assert round_adapters(moved, new, 3, [], single_lora=False) == [
        str(new / "gdpo" / "round-001"),
        str(new / "gdpo" / "round-002"),
    ]
