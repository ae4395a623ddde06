"""``vs2 demo``'s options are checked as the user gave them, before anything is made."""

from __future__ import annotations

import pytest

from vs2_plugin.cli import main as vs2_main


@pytest.mark.parametrize("rounds", ["0", "-1"])
def test_rounds_below_one_names_the_option(rounds, tmp_path, capsys):
    out = tmp_path / "demo"
    assert vs2_main(["demo", "--out", str(out), "--rounds", rounds]) == 2
    err = capsys.readouterr().err
    # the option typed, not the plan it fills (PipelinePlan.rounds)
    assert f"--rounds must be >= 1; got {rounds}" in err and "PipelinePlan" not in err, err
    assert len(err.strip().splitlines()) == 1, err
    assert not out.exists()  # refused before the output folder and its log are made


def test_python_callers_keep_the_plans_own_check():
    from vs2_plugin.errors import ConfigError
    from vs2_plugin.pipeline.plan import PipelinePlan

    with pytest.raises(ConfigError, match=r"PipelinePlan\.rounds must be an integer >= 1, got 0"):
        PipelinePlan(rounds=0)
