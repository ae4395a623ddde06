"""A demo folder whose rebirth has labelled with the last mrDPO round's model takes no other
number of rounds (the rounds would go on, and rebirth would hold what the other model made)."""

from __future__ import annotations

import json

import pytest

from vs2_plugin.errors import Vs2Error
from vs2_plugin.pipeline.demo import check_rounds, run_demo
from vs2_plugin.pipeline.plan import DEMO_PLAN


def test_another_number_of_rounds_after_rebirth_is_refused_before_any_work(tmp_path):
    out = tmp_path / "demo"
    (out / "mrdpo").mkdir(parents=True)
    (out / "mrdpo" / "config.json").write_text(json.dumps({"rounds": 2}))
    check_rounds(out, DEMO_PLAN)  # not labelled yet: the rounds may still change
    (out / "rebirth").mkdir()
    (out / "rebirth" / "labels.jsonl").write_text("")
    check_rounds(out, DEMO_PLAN)  # the same rounds resume
    with pytest.raises(
        Vs2Error, match=r"run with 2 mrDPO round\(s\), and its rebirth labelled with that model; 3 round"
    ):
        run_demo(out, rounds=3, progress=False)
    assert sorted(p.name for p in out.iterdir()) == ["mrdpo", "rebirth"]  # nothing generated or trained
