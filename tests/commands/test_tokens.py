"""``vs2 tokens``: JSON for every shared media file, model-directory settings, bad input."""

from __future__ import annotations

import json

import pytest

from tests.support.media_factory import FFMPEG, make_video
from vs2_plugin.cli import main
from vs2_plugin.modeling.interleave import audio_token_count

SHARED = ["1.mp4", "3.mp4", "4.mp4", "2.avi", "4_av.mp4", "bigbuckbunny.mp4", "1.mp3", "4.mp3", "2.wav", "3.flac"]


def tokens(capsys, *args) -> dict:
    assert main(["tokens", *map(str, args)]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("name", SHARED)
def test_every_shared_file(shared_media, capsys, name):
    report = tokens(capsys, shared_media / name)
    frames = report["frame_times_s"]
    if report["has_video"]:
        assert len(frames) % 2 == 0 and len(frames) >= 2
        assert len(report["audio_tokens_per_frame"]) == len(frames) == len(report["visual_tokens_per_frame"])
        assert len(report["audio_tokens_per_group"]) == len(frames) // 2 == len(report["visual_tokens_per_group"])
        assert sum(report["visual_tokens_per_frame"]) == report["visual_tokens_total"] > 0
    else:
        assert frames == [] and report["visual_tokens_total"] == 0
        slots = report["slots_s"]
        assert len(report["audio_tokens_per_frame"]) == len(slots)  # one entry per 1 s slot
        assert slots[-1][1] == pytest.approx(report["duration_s"])
    assert (
        sum(report["audio_tokens_per_frame"]) == sum(report["audio_tokens_per_group"]) == report["audio_tokens_total"]
    )
    if report["has_audio"]:
        assert report["audio_segments"] == 1
        assert report["audio_tokens_total"] == audio_token_count(report["audio_duration_s"])
    else:
        assert report["audio_tokens_total"] == 0 and report["audio_segments"] == 0
    assert report["total_tokens"] == report["visual_tokens_total"] + report["audio_tokens_total"]
    assert sum(n for _, n in report["layout"]) == report["total_tokens"]


def test_bigbuckbunny_hand_worked(shared_media, capsys):
    report = tokens(capsys, shared_media / "bigbuckbunny.mp4")
    assert report["duration_s"] == 5.28 and report["audio_duration_s"] == 5.312
    assert report["frame_times_s"] == [0.66, 1.98, 3.3, 4.62]  # 4 frames, slots of 1.32 s
    assert report["audio_tokens_per_frame"] == [7, 7, 6, 7]  # 27 windows of 0.2 s
    assert report["audio_tokens_per_group"] == [14, 13]
    assert report["visual_tokens_per_group"] == [144, 144] and report["visual_tokens_per_frame"] == [72] * 4
    assert report["total_tokens"] == 288 + 27
    assert report["layout"] == [["video", 144], ["audio", 14], ["video", 144], ["audio", 13]]


def test_flags_change_the_arithmetic(shared_media, capsys):
    report = tokens(capsys, shared_media / "4_av.mp4", "--fps", 2, "--window", 0.5, "--max-frames", 6)
    # 5 s at 2 fps = 10 frames, capped at 6; audio 5.0416 s -> 11 windows of 0.5 s
    assert report["frame_times_s"] == pytest.approx([5 / 6 * (i + 0.5) for i in range(6)], abs=1e-6)
    assert report["audio_tokens_total"] == 11
    # slots of 5/6 s: starts 0, .5 | 1.0, 1.5 | 2.0 | 2.5, 3.0 | 3.5, 4.0 | 4.5, 5.0 (past the end)
    assert report["audio_tokens_per_frame"] == [2, 2, 1, 2, 2, 2]
    audio_only = tokens(capsys, shared_media / "2.wav", "--fps", 2)
    assert len(audio_only["slots_s"]) == 6 and audio_only["slots_s"][1] == [0.5, 1.0]


def test_silent_video_has_no_audio_tokens(shared_media, capsys):
    report = tokens(capsys, shared_media / "1.mp4")  # 9.72 s, 640x360
    assert report["frame_times_s"] == pytest.approx([9.72 / 8 * (i + 0.5) for i in range(8)], abs=1e-6)
    assert report["audio_tokens_per_group"] == [0, 0, 0, 0]
    assert report["layout"] == [["video", 4 * report["visual_tokens_per_group"][0]]]


def _write_model_dir(root, processor_file: str):
    root.mkdir()
    (root / "config.json").write_text(
        json.dumps(
            {
                "model_type": "video_salmonn2",
                "audio_window_s": 0.5,
                "audio_queries_per_window": 2,
                "segment_s": 30.0,
                "vision_config": {"patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2},
                "video_salmonn2": {"video_fps": 2.0, "video_maxlen": 8},
            }
        )
    )
    video_processor = {
        "patch_size": 14,
        "merge_size": 2,
        "temporal_patch_size": 2,
        "size": {"shortest_edge": 3136, "longest_edge": 12544},
    }
    if processor_file == "processor_config.json":
        (root / processor_file).write_text(json.dumps({"video_processor": video_processor}))
    elif processor_file == "preprocessor_config.json":
        (root / processor_file).write_text(
            json.dumps({"patch_size": 14, "merge_size": 2, "min_pixels": 3136, "max_pixels": 12544})
        )
    else:
        (root / processor_file).write_text(json.dumps(video_processor))
    return root


@pytest.mark.parametrize(
    "processor_file", ["processor_config.json", "video_preprocessor_config.json", "preprocessor_config.json"]
)
def test_model_directory_settings(shared_media, capsys, tmp_path, processor_file):
    model = _write_model_dir(tmp_path / "model", processor_file)
    report = tokens(capsys, shared_media / "bigbuckbunny.mp4", "--model", model)
    settings = report["settings"]
    assert (settings["window_s"], settings["queries_per_window"], settings["fps"], settings["max_frames"]) == (
        0.5,
        2,
        2.0,
        8,
    )
    assert (settings["min_pixels"], settings["max_pixels"]) == (3136, 12544)
    # 5.28 s at 2 fps = 10.56 -> capped at 8 frames; 5.312 s audio -> 11 windows x 2 queries
    assert len(report["frame_times_s"]) == 8 and report["audio_tokens_total"] == 22
    # 341x192 under max 12544: scaled by sqrt(65472 / 12544), floored to 84x140 -> 3 * 5
    assert report["visual_tokens_per_group"] == [15] * 4
    # a flag beats the model directory
    report = tokens(capsys, shared_media / "bigbuckbunny.mp4", "--model", model, "--window", 0.2)
    assert report["settings"]["window_s"] == 0.2 and report["audio_tokens_total"] == 54


def test_tiny_model_directory(shared_media, capsys, tiny_model_dir):
    """The directory ``vs2 build-tiny`` writes is understood (window, processor pixels)."""
    config = json.loads((tiny_model_dir / "config.json").read_text())
    report = tokens(capsys, shared_media / "4_av.mp4", "--model", tiny_model_dir)
    assert report["settings"]["window_s"] == config["audio_window_s"]
    assert report["audio_tokens_total"] == audio_token_count(report["audio_duration_s"], config["audio_window_s"])
    assert report["settings"]["max_pixels"] != 768 * 28 * 28  # read from the saved video processor


def test_bad_model_directory(shared_media, capsys, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    assert main(["tokens", str(shared_media / "2.wav"), "--model", str(broken)]) == 2
    assert "config.json: not readable JSON" in capsys.readouterr().err


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad")
    (d / "empty.mp4").write_bytes(b"")
    (d / "corrupt.mkv").write_bytes(b"\x1a\x45\xdf\xa3" + bytes(range(256)) * 40)
    return d


@pytest.mark.parametrize(
    "name, problem",
    [("missing.mp4", "file not found"), ("empty.mp4", "file is empty"), ("corrupt.mkv", "not a readable media file")],
)
def test_bad_input_is_one_line_naming_the_file(bad_files, capsys, name, problem):
    path = bad_files / name
    assert main(["tokens", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"vs2 tokens: error: {path}: {problem}") and "\n" not in err


def test_console_script_end_to_end(shared_media, bad_files, run_cli):
    ok = run_cli(["vs2", "tokens", str(shared_media / "4_av.mp4")], timeout=300)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["audio_tokens_total"] == 26  # 5.0416 s / 0.2 s windows
    bad = run_cli(["vs2", "tokens", str(bad_files / "corrupt.mkv")], timeout=300)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert f"{bad_files / 'corrupt.mkv'}: not a readable media file" in bad.stderr


def test_generated_long_clip(tmp_path, capsys):
    if FFMPEG is None:
        pytest.skip("ffmpeg is not installed")
    clip = make_video(tmp_path / "long.mp4", 61.0, size="32x32", fps=5)
    report = tokens(capsys, clip)
    assert report["duration_s"] == 61.0
    assert len(report["frame_times_s"]) == 30 and report["audio_segments"] == 3
    assert report["audio_tokens_total"] == audio_token_count(report["audio_duration_s"])
    assert report["audio_tokens_per_group"][:3] == [21, 20, 20]  # 61/30 s slots, see test_interleave


def test_too_short_clip_is_rejected_like_read_media(tmp_path, capsys):
    if FFMPEG is None:
        pytest.skip("ffmpeg is not installed")
    clip = make_video(tmp_path / "short.mp4", 0.6)
    assert main(["tokens", str(clip)]) == 2
    assert f"{clip}: too short: 0.60 s (minimum 1 s)" in capsys.readouterr().err
    report = tokens(capsys, clip, "--min-duration", 0.5)
    assert report["frame_times_s"] == pytest.approx([0.15, 0.45], abs=0.01)


@pytest.mark.parametrize(
    "flags, named",
    [
        (["--video-max-pixels", "0"], "video_max_pixels must be a whole number >= 1, got 0"),
        (["--window", "0.25"], "window_s=0.25 is not a whole number of encoder frames"),  # as vs2 build refuses it
        (["--window", "inf"], "window_s must be a positive number of seconds, got inf"),
        (["--fps", "0"], "error: fps must be a finite number > 0, got 0.0"),  # the setting, not a class, named
        (["--fps", "inf"], "fps must be a finite number > 0, got inf"),
        (["--max-frames", "1"], "max_frames must be at least group_size (2 frames make one temporal group), got 1"),
    ],
)
def test_settings_the_model_would_refuse_are_refused(shared_media, capsys, flags, named):
    assert main(["tokens", str(shared_media / "4_av.mp4"), *flags]) == 2
    assert named in capsys.readouterr().err
