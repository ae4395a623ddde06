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
    proc = bench.AblationProcess(tmp_path, quick=True, seed=0)
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


def test_the_ablation_child_draws_the_same_benchmark_seed(tmp_path, monkeypatch):
    import subprocess

    bench = _load()
    started = []
    monkeypatch.setattr(subprocess, "Popen", lambda cmd, **_: started.append(cmd))
    bench.AblationProcess(tmp_path, quick=False, seed=3).start("model", [])
    (cmd,) = started
    assert cmd[cmd.index("--seed") + 1] == "3" and "--ablation-rounds" in cmd and "--quick" not in cmd
    assert "--video-fps" not in cmd  # the recipes' own frame rate
    bench.AblationProcess(tmp_path, quick=False, seed=3, video_fps=2.0).start("model", [])
    assert started[1][started[1].index("--video-fps") + 1] == "2.0"  # the child samples as the chain did


def test_a_run_folder_keeps_the_media_arguments_it_was_made_with(tmp_path):
    import json

    import pytest

    from vs2_plugin.errors import ConfigError

    bench = _load()
    bench.check_media(tmp_path / "run", {"video_fps": 2.0})
    assert json.loads((tmp_path / "run" / "media.json").read_text()) == {"video_fps": 2.0}
    bench.check_media(tmp_path / "run", {"video_fps": 2.0})  # a resume with the same ones
    with pytest.raises(
        ConfigError, match=r"made with media arguments \{'video_fps': 2.0\}.*not \{\}; give another --out"
    ):
        bench.check_media(tmp_path / "run", {})


def _judged(clip, task, rate, status="ok"):
    return {"video_id": clip, "task": task, "judgment": {"status": status, "total_rate": rate, "miss_rate": rate}}


def test_total_ratio_by_clip_by_hand():
    bench = _load()
    before = bench.rates_by_clip(
        [
            _judged("a", "global", 1.0),
            _judged("a", "local", 1.0),
            _judged("a", "local", 0.5),
            _judged("b", "global", 9.0, "failed"),
        ],
        "total_rate",
    )
    after = bench.rates_by_clip(
        [_judged("a", "global", 0.5), _judged("a", "local", 0.5), _judged("a", "local", 0.5)], "total_rate"
    )
    assert before == {"a": {"global": [1.0], "local": [1.0, 0.5]}}  # the failed judgment counts nowhere
    # before: (1.0 + 0.75) / 2 = 0.875; after: (0.5 + 0.5) / 2 = 0.5
    assert abs(bench.total_ratio(before, after, ["a"]) - 0.5 / 0.875) < 1e-12
    assert abs(bench.local_gap(before, after, ["a"]) - (0.5 - 0.75)) < 1e-12


def test_paired_clip_interval_is_exact_when_every_clip_moves_alike_and_spreads_when_not():
    bench = _load()
    clips = [f"c{i}" for i in range(12)]
    before = {c: {"global": [0.5 + 0.05 * i], "local": [0.4 + 0.05 * i]} for i, c in enumerate(clips)}
    scaled = {c: {t: [0.9 * v for v in vs] for t, vs in d.items()} for c, d in before.items()}
    # every caption's rate times 0.9: the ratio is 0.9 whatever clips are drawn
    assert bench.paired_clip_interval(before, scaled, bench.total_ratio) == [0.9, 0.9]
    # half the clips improve, half do not: the interval holds the point estimate and has width
    mixed = {c: (scaled[c] if i % 2 else before[c]) for i, c in enumerate(clips)}
    point = bench.total_ratio(before, mixed, clips)
    low, high = bench.paired_clip_interval(before, mixed, bench.total_ratio)
    assert low < point < high and 0.9 <= low and high <= 1.0
    # the same seed gives the same interval; a clip judged in one condition only is not drawn
    assert bench.paired_clip_interval(
        before, {**mixed, "extra": {"global": [5.0], "local": [5.0]}}, bench.total_ratio
    ) == [low, high]


def test_interval_selectivity_by_hand():
    bench = _load()
    first, second = ["A red square appears at the top left.", 'A voice says "apple".'], ["A high tone sounds."]
    videos = {
        "v": VideoEntry(
            id="v",
            video="v.mp4",
            events=first + second,
            local=[
                Interval(start=0.0, end=2.5, events=first, reference=None),
                Interval(start=2.5, end=5.0, events=second, reference=None),
            ],
        )
    }

    def local(start, end, caption):
        return {
            "video_id": "v",
            "task": "local",
            "start": start,
            "end": end,
            "caption": caption,
            "judgment": {"status": "ok"},
        }

    # the first interval's caption tells its own two events and not the tone; the second interval's
    # caption is the whole clip: its own tone is told, and so are both events of the other interval
    judged = [
        local(0.0, 2.5, 'A red square appears at the top left. Then a voice says "apple".'),
        local(2.5, 5.0, 'A red square appears at the top left. Then a voice says "apple". Then a high tone sounds.'),
        {**local(0.0, 2.5, ""), "judgment": {"status": "failed"}},  # a failed judgment counts nowhere
    ]
    # own: 0 of 2 + 0 of 1 missed; other: 1 of 1 (tone) + 0 of 2 missed
    assert bench.interval_selectivity(judged, videos) == {
        "captions": 2,
        "own_interval_miss": 0.0,
        "other_interval_miss": round(1 / 3, 4),
    }


def test_interval_probe_summary_by_hand():
    probe = load_script("benchmarks/interval_probe.py")
    losses = [
        {"own": 0.1, "other_interval": 0.3, "other_clip": 0.5, "sound_moved": 0.1},
        {"own": 0.3, "other_interval": 0.2, "other_clip": 0.6, "sound_moved": 0.4},
    ]
    assert probe.summarise(losses) == {
        "references": 2,
        "mean_loss": {"own": 0.2, "other_interval": 0.25, "other_clip": 0.55, "sound_moved": 0.25},
        # equal is not higher: the first reference's loss with the sound moved stays 0.1
        "share_higher_than_own": {"other_interval": 0.5, "other_clip": 1.0, "sound_moved": 0.5},
    }


def test_exact_captions_time_gap_by_hand():
    bench = _load()
    square = {"kind": "appear", "time": 0.0, "colour": "red", "shape": "square", "position": "top left"}
    tone = {"kind": "tone", "time": 1.0, "pitch": "high"}
    voice = {"kind": "speech", "time": 3.0, "word": "apple"}
    clip = {
        "id": "synth_heldout_0000",
        "split": "heldout",
        "duration": 4.0,
        "timeline": [square, tone, voice],
        "local": [{"start": 0.0, "end": 2.0}, {"start": 2.0, "end": 4.0}],
    }
    # rotated by half the clip (2 s): the tone moves to 3 s, the voice to 1 s, the square stays.
    # [0, 2): square told, the voice in place of the tone: the tone is missed (1 of 2);
    # [2, 4): the tone in place of the voice: the voice is missed (1 of 1). Mean Miss 0.75.
    assert bench.exact_captions_time_gap([clip]) == 0.75
    # two sounds of one kind and pitch swapping places: told exactly in both intervals, no gap
    same = {**clip, "timeline": [square, tone, {**tone, "time": 3.0}]}
    assert bench.exact_captions_time_gap([same]) == 0.0
    # another pitch of the same kind is an incorrect detail, not a missed event
    other_pitch = {**clip, "timeline": [square, tone, {**tone, "time": 3.0, "pitch": "low"}]}
    assert bench.exact_captions_time_gap([other_pitch]) == 0.0
    assert bench.exact_captions_time_gap([]) is None


def test_recorded_results_come_from_the_plan_in_the_code(repo_root):
    """learning.json / learning_seed1.json are the runs of the benchmark as it ships (a changed
    plan without a new run leaves the results of another benchmark behind)."""
    import json
    from dataclasses import asdict, replace

    bench = _load()
    for name, seed in (("learning.json", 0), ("learning_seed1.json", 1)):
        recorded = json.loads((repo_root / "benchmarks" / "results" / name).read_text())
        assert recorded["quick"] is False
        assert recorded["plan"] == asdict(replace(bench.FULL_PLAN, seed=seed)), name
        assert recorded["seconds"] <= 2400, name
