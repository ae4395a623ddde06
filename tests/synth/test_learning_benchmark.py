"""benchmarks/learning.py: how it counts missed events per modality and the held-out Total."""

from __future__ import annotations

from tests.support.scripts import load_script
from vs2_plugin.pipeline.videos import Interval, VideoEntry


def _load():
    return load_script("benchmarks/learning.py")


EVENTS = [
    "A red square appears at the top left.",
    "At the same time, a high tone sounds.",
    'A voice says "apple".',
    "A high tone sounds.",
    "The red square disappears.",
]
VIDEOS = {
    "v": VideoEntry(
        id="v", video="v.mp4", events=EVENTS, local=[Interval(start=0.0, end=2.5, events=EVENTS[:2], reference=None)]
    )
}


def _row(task, missed, start=None, end=None, status="ok"):
    return {
        "video_id": "v",
        "task": task,
        "start": start,
        "end": end,
        "judgment": {"status": status, "missed": missed},
    }


def test_missed_events_are_pooled_per_modality_by_hand():
    bench = _load()
    judged = [
        # global: 2 visual (1 missed), 3 audio (both high tones missed: duplicates count once each)
        _row("global", ["The red square disappears.", "A high tone sounds.", "At the same time, a high tone sounds."]),
        # local 0-2.5 s: 1 visual (missed), 1 audio (told)
        _row("local", ["A red square appears at the top left."], start=0.0, end=2.5),
        _row("global", EVENTS, status="failed"),  # a failed judgment counts nowhere
    ]
    assert bench.miss_by_modality(judged, VIDEOS) == {"audio": round(2 / 4, 4), "visual": round(2 / 3, 4)}
    assert bench.miss_by_modality(judged, VIDEOS, task="local") == {"audio": 0.0, "visual": 1.0}


def test_total_is_the_mean_of_global_and_local():
    bench = _load()
    assert abs(bench.total({"global": {"total": 0.8}, "local": {"total": 0.4}}) - 0.6) < 1e-12


def test_ablation_process_reports_a_failed_child_and_reads_a_finished_one(tmp_path):
    import json
    import subprocess
    import sys

    import pytest

    bench = _load()
    proc = bench.AblationProcess(tmp_path, quick=True)
    with pytest.raises(RuntimeError, match="never started"):
        proc.result()
    proc.proc = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    with pytest.raises(RuntimeError, match=r"exit 3\); see .*ablation_rounds.log"):
        proc.result()
    rows = {"lambda_0": [{"stage": "round 0"}], "one_lora": [{"stage": "round 0"}]}
    writer = (
        f"import json, pathlib; pathlib.Path({str(tmp_path / bench.ABLATIONS_JSON)!r}).write_text({json.dumps(rows)!r})"
    )
    proc.proc = subprocess.Popen([sys.executable, "-c", writer])
    assert proc.result() == rows
