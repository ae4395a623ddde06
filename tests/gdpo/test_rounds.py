"""The round record (rounds.json) and atomic folders of the round hook (its rounds: test_workflow.py)."""

from __future__ import annotations

import json

import pytest

from vs2_plugin.errors import ConfigError
from vs2_plugin.gdpo.rounds import RoundState, atomic_directory


def test_atomic_directory_leaves_nothing_on_failure(tmp_path):
    final = tmp_path / "merged"
    with pytest.raises(RuntimeError):
        with atomic_directory(final) as tmp:
            (tmp / "part.bin").write_bytes(b"x")
            raise RuntimeError("killed")
    assert not final.exists() and not list(tmp_path.iterdir())
    with atomic_directory(final) as tmp:
        (tmp / "ok.bin").write_bytes(b"y")
    assert (final / "ok.bin").read_bytes() == b"y"
    assert [p.name for p in tmp_path.iterdir()] == ["merged"]


def test_round_state_order_and_resume(tmp_path):
    state = RoundState.load_or_create(tmp_path, "base", "memory", ["sft-lora"])
    assert state.next_round() == 1
    record = state.begin(1)
    state.update(record, status="training")
    reopened = RoundState.load_or_create(tmp_path, "base", "memory", ["sft-lora"])
    assert reopened.next_round() == 1  # unfinished round is resumed, not skipped
    with pytest.raises(ConfigError, match="round 1 is not finished"):
        reopened.begin(2)
    reopened.update(reopened.record(1), status="done", adapter="round-001")
    assert reopened.next_round() == 2
    assert reopened.adapters_before(2) == ["sft-lora", str(tmp_path / "round-001")]
    data = json.loads((tmp_path / "rounds.json").read_text())
    assert data["rounds"][0]["status"] == "done"
    with pytest.raises(ConfigError, match="other-base"):
        RoundState.load_or_create(tmp_path, "other-base", "memory", ["sft-lora"])
    with pytest.raises(ConfigError, match="export"):
        RoundState.load_or_create(tmp_path, "base", "export", ["sft-lora"])
