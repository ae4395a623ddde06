"""benchmarks/interval_probe.py on a finished run folder (the demo's): every local reference of the
held-out clips is scored under the four inputs, and the scores are losses of the next token."""

from __future__ import annotations

import json
import math
import shutil

import pytest

from tests.support.scripts import load_script
from vs2_plugin.pipeline.videos import load_videos

pytestmark = pytest.mark.slow


def test_probe_on_the_demo_folder(demo_run, tmp_path):
    out = tmp_path / "demo"
    shutil.copytree(demo_run[0], out)  # the probe adds eval/rotated_media; the shared folder stays as it was
    result = load_script("benchmarks/interval_probe.py").probe(out)
    two_intervals = [v for v in load_videos(out / "data" / "heldout.jsonl") if len(v.local) == 2]
    assert two_intervals and result["references"] == 2 * len(two_intervals)
    losses = result["mean_loss"]
    assert set(losses) == {"own", "other_interval", "other_clip", "sound_moved"}
    assert all(math.isfinite(v) and v > 0 for v in losses.values())
    # the SFT model has learnt the captions' language: far below a uniform guess over the 1,024-token
    # vocabulary (6.9 nats), which logits shifted one token against their targets would not be
    assert losses["own"] < 1.0
    assert set(result["share_higher_than_own"]) == {"other_interval", "other_clip", "sound_moved"}
    assert len(list((out / "eval" / "rotated_media").glob("*.mp4"))) == len(load_videos(out / "data" / "heldout.jsonl"))
    json.dumps(result)  # what main() writes
