"""Bad samples in long runs: real broken files, the checks, the fail/skip policy, real CLI runs."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.support import bad_media
from tests.support.media_factory import requires_ffmpeg
from tests.support.paths import REPO, VENV_BIN
from vs2_plugin.data import dataset_rows, media, media_check, validate
from vs2_plugin.data.validate import DataCheckArguments, MediaLimits, check_media
from vs2_plugin.errors import ConfigError, DataError

pytestmark = requires_ffmpeg

PROMPT = "<video>Describe the video and its sound."
TAGS = {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant"}


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    return bad_media.build(tmp_path_factory.mktemp("media"))


# ----------------------------------------------------------------------------- media


@pytest.mark.parametrize(
    ("name", "kind", "expected"),
    [
        ("missing", "video", "file not found"),
        ("empty", "video", "file is empty (0 bytes)"),
        ("text", "video", "not a readable media file (Invalid data found when processing input)"),
        ("truncated_noindex", "video", "not a readable media file"),
        ("truncated", "video", "video data ends early (packets end at"),
        ("audio_only", "video", "no video stream (an audio-only file), but it is given as a <video>"),
        ("silent", "audio", "no audio stream, but it is given as an <audio>"),
        ("short", "video", "too short: 0.52 s (minimum 1 s, vs2_min_duration_s)"),
        ("short", "audio", "too short: 0.50 s"),
    ],
)
def test_bad_media_is_named_with_its_problem(files, name, kind, expected):
    assert expected in check_media(files[name], kind)


@pytest.mark.parametrize("name", ["good", "good2", "long", "vfr", "six_channel", "silent"])
def test_awkward_but_usable_media_passes(files, name):
    assert check_media(files[name], "video", MediaLimits(video_audio_tokens=True)) is None


def test_truncated_file_is_really_unreadable(files):
    # the check does not decode, but what it calls truncated does fail when decoded
    with pytest.raises(Exception, match="truncated|decoding failed|ends early"):
        media.read_media(files["truncated"])


def test_audio_required_and_long_media_limits(files):
    assert "audio is required" in check_media(files["silent"], "video", MediaLimits(require_video_audio=True))
    assert check_media(files["long"], "video", MediaLimits(max_duration_s=60)) == (
        "too long: 100.0 s (maximum 60 s, vs2_max_duration_s)"
    )
    # 30 frames (2,160 tokens at the default frame size) and 100 s of audio at 5 tokens/s cannot fit a
    # 2,500-token sequence: LLaMA-Factory would cut it inside the media tokens, so the clip is bad there
    item = [(str(files["long"]), "video")]
    path, reason = validate.tokens_problem(item, MediaLimits(max_media_tokens=2500, video_audio_tokens=True))
    assert path == str(files["long"])
    assert reason.startswith("too long for cutoff_len=2500: its media alone need 2660 tokens (2160 video + 500 audio)")
    # without the video's audio in the sequence the same clip fits: frames are capped at m
    assert validate.tokens_problem(item, MediaLimits(max_media_tokens=2500, video_audio_tokens=False)) is None


def test_damage_inside_a_file_needs_the_decode_check(files):
    assert check_media(files["damaged"], "video") is None  # metadata and the file's end look fine
    reason = check_media(files["damaged"], "video", MediaLimits(decode=True))
    assert reason.startswith("decoding failed")
    for name in ("good", "vfr", "six_channel", "long"):
        assert check_media(files[name], "video", MediaLimits(decode=True, video_audio_tokens=True)) is None
    with pytest.raises(Exception, match="decoding failed"):
        media.read_media(files["damaged"])  # what training would have hit mid-run


def test_checks_in_threads_equal_one_by_one(files):
    items = {(str(path), kind) for path in files.values() for kind in ("video", "audio")}
    limits = MediaLimits(decode=True, video_audio_tokens=True, max_media_tokens=2048)
    serial = validate.check_many(items, limits, workers=1)
    media_check._probe_and_tail.cache_clear()
    media_check._decode_problem.cache_clear()
    assert validate.check_many(items, limits, workers=4) == serial
    assert serial[(str(files["damaged"]), "video")].startswith("decoding failed")


def test_long_media_reads_m_frames_and_all_its_audio(files):
    got = media.read_media(files["long"], 1.0, 30)
    assert got.num_frames == 30  # capped at m although 100 s at 1 fps would be 100 frames
    assert len(got.audio) == media.audio_sample_count(100.0)  # 4 segments of 30 s, all kept
    assert np.allclose(got.frame_times_s[:2], [100 / 60, 100 / 20])


def test_variable_frame_rate_is_read_at_the_right_times(files):
    import av

    with av.open(str(files["vfr"])) as container:
        stream = container.streams.video[0]
        pts = sorted(float(p.pts * p.time_base) for p in container.demux(stream) if p.pts is not None)
    steps = np.round(np.diff(pts), 3)
    assert {0.04, 0.12} <= set(steps.tolist())  # 25 fps, then 8.33 fps: really variable
    got = media.read_media(files["vfr"], 2.0, 30, group_size=1)
    info = got.info
    assert got.num_frames == media.frame_count(info.duration_s, 2.0, 30, 1) == int(2 * info.duration_s)
    used = np.asarray(got.frame_pts_s)
    rgb = got.frames.reshape(got.num_frames, -1).mean(axis=1)
    shown = (rgb * 219 / 255 + 16 - 20) / 40  # the time each frame's luma encodes
    unclipped = rgb < 250
    assert np.allclose(shown[unclipped], used[unclipped], atol=0.06)  # each frame is the frame of its time
    # the frame used is a real frame of the file near its target: within the slot's local frame spacing
    spacing = np.where(used < 2.0, 0.04, 0.12)
    assert np.all(np.abs(used - np.asarray(got.frame_times_s)) <= spacing + 1e-6)
    assert all(any(abs(u - p) < 1e-6 for p in pts) for u in used)


def test_six_channel_48k_audio_is_downmixed_and_resampled(files):
    info = media.probe(files["six_channel"])
    assert (info.audio_channels, info.audio_sample_rate) == (6, 48000)
    got = media.read_media(files["six_channel"])
    assert got.audio.ndim == 1 and got.sample_rate == 16000
    assert len(got.audio) == media.audio_sample_count(info.audio_duration_s)
    spectrum = np.abs(np.fft.rfft(got.audio[4000:36000]))
    peak = np.fft.rfftfreq(32000, 1 / 16000)[int(np.argmax(spectrum))]
    assert abs(peak - 440) < 2  # the 440 Hz tone, not noise from a wrong channel layout


# ----------------------------------------------------------------------------- dataset rows


def _row(video, caption="A test pattern with a steady tone.", prompt=PROMPT, **extra):
    row = {"messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": caption}]}
    if video is not None:
        row["videos"] = video if isinstance(video, list) else [str(video)]
    row.update(extra)
    return row


def _write_dataset(folder: Path, rows: list, name: str = "mix", raw: bytes | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    text = json.dumps(rows, ensure_ascii=False, indent=1).encode()
    (folder / f"{name}.json").write_bytes(text if raw is None else raw)
    info = {
        name: {
            "file_name": f"{name}.json",
            "formatting": "sharegpt",
            "columns": {"messages": "messages", "videos": "videos"},
            "tags": TAGS,
        }
    }
    (folder / "dataset_info.json").write_text(json.dumps(info))
    return folder


def _mixed_rows(files) -> tuple[list, dict[int, str]]:
    """Good rows and one row per fault; returns the rows and {bad index: expected reason}."""
    rows, bad = [], {}

    def add(row, reason=None):
        if reason:
            bad[len(rows)] = reason
        rows.append(row)

    add(_row(files["good"]))
    add(_row(files["missing"]), "file not found")
    add(_row(files["text"]), "not a readable media file")
    add(_row(files["empty"]), "file is empty (0 bytes)")
    add(_row(files["good2"], id="g2"))
    add(_row(files["truncated"]), "video data ends early")
    add(_row(files["audio_only"]), "no video stream (an audio-only file)")
    add(_row(files["short"]), "too short: 0.52 s")
    add(_row(files["vfr"]))
    add(_row(files["good"], caption="   "), "empty caption (assistant message 1)")
    add(_row([str(files["good"])], prompt="<video><video>Compare."), "2 <video> placeholder(s) but 1 videos given")
    add({"videos": [str(files["good"])]}, "missing column 'messages'")
    add(_row(files["six_channel"]))
    add(
        {
            "messages": [{"role": "assistant", "content": "x"}, {"role": "user", "content": PROMPT}],
            "videos": [str(files["good"])],
        },
        "message roles out of order",
    )
    add(_row(None), "missing column 'videos' (1 <video> placeholder(s) in the prompt)")
    add(_row(files["good"], caption="CAPTION_NOT_UTF8"), "message 1 (assistant) is not valid UTF-8 (byte 0xe9")
    add(_row(files["long"]))
    return rows, bad


def _mixed_dataset(folder: Path, files) -> tuple[Path, list, dict[int, str]]:
    rows, bad = _mixed_rows(files)
    raw = json.dumps(rows, ensure_ascii=False, indent=1).encode().replace(b"CAPTION_NOT_UTF8", b"caf\xe9 latin-1")
    return _write_dataset(folder, rows, raw=raw), rows, bad


def test_every_bad_row_is_found_with_its_reason(files, tmp_path):
    folder, rows, expected = _mixed_dataset(tmp_path / "data", files)
    spec = dataset_rows.dataset_specs(["mix"], str(folder))[0]
    result = validate.check_dataset(spec, MediaLimits())
    got = {b.index: b for b in result.bad}
    assert sorted(got) == sorted(expected)
    for index, reason in expected.items():
        assert reason in got[index].reason, (index, got[index])
    assert got[1].file == str(files["missing"]) and got[9].file is None
    assert result.total == len(rows)
    assert len(result.good_rows) == len(rows) - len(expected)
    assert all(os.path.isabs(p) for r in result.good_rows for p in r["videos"])


def test_relative_media_paths_resolve_like_llamafactory(files, tmp_path):
    folder = tmp_path / "data"
    (folder / "clips").mkdir(parents=True)
    os.symlink(files["good"], folder / "clips" / "a.mp4")
    _write_dataset(folder, [_row("clips/a.mp4"), _row("clips/b.mp4"), _row("clips")])
    result = validate.check_dataset(dataset_rows.dataset_specs(["mix"], str(folder))[0], MediaLimits())
    assert [(b.index, b.file, b.reason) for b in result.bad] == [
        (1, "clips/b.mp4", "file not found"),
        (2, str(folder / "clips"), "a folder, not a media file"),  # not "clips: file not found"
    ]
    assert result.good_rows[0]["videos"] == [str(folder / "clips" / "a.mp4")]


def test_audio_column_rows(files, tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    rows = [
        {
            "messages": [
                {"role": "user", "content": "<audio>What do you hear?"},
                {"role": "assistant", "content": "A tone."},
            ],
            "audios": [str(p)],
        }
        for p in (files["audio_only"], files["silent"], files["six_channel"])
    ]
    (folder / "aud.json").write_text(json.dumps(rows))
    info = {
        "aud": {
            "file_name": "aud.json",
            "formatting": "sharegpt",
            "columns": {"messages": "messages", "audios": "audios"},
            "tags": TAGS,
        }
    }
    (folder / "dataset_info.json").write_text(json.dumps(info))
    result = validate.check_dataset(dataset_rows.dataset_specs(["aud"], str(folder))[0], MediaLimits())
    assert [(b.index, b.reason) for b in result.bad] == [(1, "no audio stream, but it is given as an <audio>")]


def test_arguments_parse_and_refuse_bad_values():
    raw = {
        "vs2_bad_samples": "SKIP",
        "vs2_max_duration_s": "600",
        "vs2_require_audio": "true",
        "vs2_check_decode": "yes",
        "lora_rank": 8,
    }
    args = DataCheckArguments.pop_from(raw)
    assert raw == {"lora_rank": 8}
    assert (args.vs2_bad_samples, args.vs2_max_duration_s, args.vs2_require_audio) == ("skip", 600.0, True)
    assert args.vs2_check_decode is True and DataCheckArguments().vs2_check_decode is False
    assert DataCheckArguments.pop_from({"vs2_max_duration_s": "none"}).vs2_max_duration_s is None
    with pytest.raises(ConfigError, match="vs2_bad_samples must be one of fail, skip, off; got 'ignore'"):
        DataCheckArguments(vs2_bad_samples="ignore")
    with pytest.raises(ConfigError, match="vs2_max_duration_s"):
        DataCheckArguments(vs2_max_duration_s=0.5)
    with pytest.raises(ConfigError, match="vs2_require_audio must be true or false"):
        DataCheckArguments(vs2_require_audio="maybe")


# ----------------------------------------------------------------------------- the pre-training pass


def _fake_model(tmp_path: Path) -> Path:
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"model_type": "video_salmonn2"}))
    return model


def _run_args(folder: Path, out: Path, model: Path, **extra) -> dict:
    return {
        "stage": "sft",
        "template": "video_salmonn2",
        "dataset": "mix",
        "dataset_dir": str(folder),
        "model_name_or_path": str(model),
        "output_dir": str(out),
        "use_audio_in_video": True,
        # room for the 100 s clip's media (its 128 frames at LLaMA-Factory's defaults and 500 audio
        # tokens): the samples under test are bad for other reasons
        "cutoff_len": 16384,
        **extra,
    }


def test_fail_policy_stops_with_one_line_and_lists_all(files, tmp_path):
    from vs2_plugin.data.train_check import check_training_data

    folder, rows, expected = _mixed_dataset(tmp_path / "data", files)
    out = tmp_path / "run"
    with pytest.raises(DataError) as info:
        check_training_data(_run_args(folder, out, _fake_model(tmp_path)))
    text = str(info.value)
    assert "\n" not in text
    assert text.startswith(
        f"bad training sample: dataset 'mix' (mix.json item 2): {files['missing']}: file not found; "
    )
    assert f"{len(expected)} of {len(rows)} samples are bad" in text and "vs2_bad_samples: skip" in text
    listed = [json.loads(line) for line in (out / "bad_samples.jsonl").read_text().splitlines()]
    assert sorted({r["index"] for r in listed}) == sorted(expected)


def test_skip_policy_points_the_run_at_a_filtered_copy(files, tmp_path):
    from vs2_plugin.data.train_check import check_training_data

    folder, rows, expected = _mixed_dataset(tmp_path / "data", files)
    out = tmp_path / "run"
    args = check_training_data(_run_args(folder, out, _fake_model(tmp_path), vs2_bad_samples="skip"))
    assert "vs2_bad_samples" not in args
    assert args["dataset_dir"] == str(out / "vs2_data" / "train")
    kept = json.loads((out / "vs2_data" / "train" / "mix.json").read_text(encoding="utf-8"))
    assert len(kept) == len(rows) - len(expected)
    info = json.loads((out / "vs2_data" / "train" / "dataset_info.json").read_text())
    assert info["mix"]["file_name"] == "mix.json" and info["mix"]["columns"]["videos"] == "videos"
    skipped = [json.loads(line) for line in (out / "skipped_samples.jsonl").read_text().splitlines()]
    assert sorted(r["index"] for r in skipped) == sorted(expected)
    summary = json.loads((out / "data_check.json").read_text())
    assert (summary["samples"], summary["skipped"]) == (len(rows), len(expected))


def test_skip_policy_in_a_gdpo_run_copies_pairs_and_ground_truth(files, tmp_path):
    from vs2_plugin.data.train_check import check_training_data

    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "clips").mkdir()
    os.symlink(files["good"], folder / "clips" / "good.mp4")
    reply = {"role": "assistant", "content": "A test pattern."}
    pairs = [
        {
            "messages": [{"role": "user", "content": PROMPT}],
            "chosen": reply,
            "rejected": {**reply, "content": "Hmm."},
            "videos": [v],
        }
        for v in ("clips/good.mp4", str(files["text"]), "clips/good.mp4")
    ]
    (folder / "pairs.json").write_text(json.dumps(pairs))
    (folder / "gt.json").write_text(json.dumps([_row("clips/good.mp4")]))
    info = {
        "pairs": {
            "file_name": "pairs.json",
            "formatting": "sharegpt",
            "ranking": True,
            "tags": TAGS,
            "columns": {"messages": "messages", "chosen": "chosen", "rejected": "rejected", "videos": "videos"},
        },
        "gt": {
            "file_name": "gt.json",
            "formatting": "sharegpt",
            "tags": TAGS,
            "columns": {"messages": "messages", "videos": "videos"},
        },
        "other": {"file_name": "other.json"},
    }
    (folder / "dataset_info.json").write_text(json.dumps(info))
    out = tmp_path / "run"
    args = check_training_data(
        _run_args(
            folder, out, _fake_model(tmp_path), stage="gdpo", dataset="pairs", gt_dataset="gt", vs2_bad_samples="skip"
        )
    )
    assert [
        (b["dataset"], b["index"]) for b in map(json.loads, (out / "skipped_samples.jsonl").read_text().splitlines())
    ] == [("pairs", 1)]
    assert args["dataset_dir"] == str(out / "vs2_data" / "train") and args["gt_dataset_dir"] == str(
        out / "vs2_data" / "gt"
    )
    assert args["media_dir"] == str(folder)  # datasets read from where they were still find their media
    kept = json.loads((out / "vs2_data" / "train" / "pairs.json").read_text())
    assert [r["videos"] for r in kept] == [[str(folder / "clips" / "good.mp4")]] * 2
    gt = json.loads((out / "vs2_data" / "gt" / "gt.json").read_text())
    assert gt[0]["videos"] == [str(folder / "clips" / "good.mp4")]
    copied = json.loads((out / "vs2_data" / "gt" / "dataset_info.json").read_text())
    assert copied["other"]["file_name"] == str(folder / "other.json")


def test_skip_policy_without_bad_samples_keeps_the_dataset(files, tmp_path):
    from vs2_plugin.data.train_check import check_training_data

    folder = _write_dataset(tmp_path / "data", [_row(files["good"]), _row(files["vfr"])])
    out = tmp_path / "run"
    args = check_training_data(_run_args(folder, out, _fake_model(tmp_path), vs2_bad_samples="skip"))
    assert args["dataset_dir"] == str(folder)
    assert (out / "skipped_samples.jsonl").read_text() == ""


def test_off_policy_checks_nothing(files, tmp_path):
    from vs2_plugin.data.train_check import check_training_data

    folder = _write_dataset(tmp_path / "data", [_row(files["missing"])])
    out = tmp_path / "run"
    args = check_training_data(_run_args(folder, out, _fake_model(tmp_path), vs2_bad_samples="off"))
    assert "vs2_bad_samples" not in args and args["dataset_dir"] == str(folder)
    assert not out.exists()


def test_all_rows_bad_is_an_error_even_when_skipping(files, tmp_path):
    from vs2_plugin.data.train_check import check_training_data

    folder = _write_dataset(tmp_path / "data", [_row(files["missing"]), _row(files["empty"])])
    with pytest.raises(DataError, match="all 2 samples are bad"):
        check_training_data(_run_args(folder, tmp_path / "run", _fake_model(tmp_path), vs2_bad_samples="skip"))


def test_runs_of_other_templates_are_left_alone():
    from vs2_plugin.integrations.llamafactory import uses_vs2

    assert not uses_vs2({"stage": "sft", "template": "qwen2_vl"})
    assert uses_vs2({"stage": "sft", "template": "video_salmonn2"})
    assert uses_vs2({"stage": "gdpo"}) and uses_vs2(["--stage", "vs2_align"])
    assert uses_vs2({"template": "qwen2_vl", "vs2_bad_samples": "skip"})


def test_command_line_lists_keep_their_items(files, tmp_path):
    from vs2_plugin.data.train_check import check_training_data
    from vs2_plugin.pipeline.run_args import args_to_dict
    from vs2_plugin.pipeline.run_args import as_arg_list as _as_arg_list

    folder, _, _ = _mixed_dataset(tmp_path / "data", files)
    out = tmp_path / "run"
    given = [
        "--stage",
        "sft",
        "--max_steps=2",
        "--do_train",
        "--vs2_bad_samples",
        "skip",
        "--dataset",
        "mix",
        "--dataset_dir",
        str(folder),
        "--template",
        "video_salmonn2",
        "--output_dir",
        str(out),
        "--model_name_or_path",
        str(_fake_model(tmp_path)),
    ]
    got = _as_arg_list(given, check_training_data(args_to_dict(given)))
    assert got[:4] == ["--stage", "sft", "--max_steps=2", "--do_train"]
    assert "--vs2_bad_samples" not in got and got[got.index("--dataset_dir") + 1] == str(out / "vs2_data" / "train")


# ----------------------------------------------------------------------------- mrDPO video lists


def _video_list(path: Path, files) -> Path:
    rows = [
        {"id": "ok", "video": str(files["good"]), "reference": "A test pattern."},
        {"id": "gone", "video": str(files["missing"]), "reference": "x"},
        {"id": "text", "video": str(files["text"]), "reference": "x"},
        {"id": "noref", "video": str(files["good2"])},
        {"id": "short", "video": str(files["short"]), "reference": "x"},
        {"id": "vfr", "video": str(files["vfr"]), "reference": "A grey ramp."},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_mrdpo_video_list_skips_and_lists_bad_videos(files, tmp_path):
    from vs2_plugin.pipeline.screen import screen_videos

    videos = _video_list(tmp_path / "videos.jsonl", files)
    good, bad = screen_videos(videos, tmp_path / "run", tag="train")
    assert len(bad) == 4
    assert [v.id for v in good] == ["ok", "vfr"]
    listed = [json.loads(line) for line in (tmp_path / "run" / "skipped_videos.jsonl").read_text().splitlines()]
    assert [(r["id"], r["index"]) for r in listed] == [("gone", 1), ("text", 2), ("noref", 3), ("short", 4)]
    reasons = {r["id"]: r["reason"] for r in listed}
    assert reasons["gone"] == "file not found" and listed[0]["file"] == str(files["missing"])
    assert "needs a 'reference' caption" in reasons["noref"] and "too short" in reasons["short"]
    with pytest.raises(
        DataError,
        match=r"bad video in .*videos.jsonl: dataset 'train' \(videos.jsonl line 2, id 'gone'\): .*missing.mp4: file not found; 4 bad",
    ):
        screen_videos(videos, tmp_path / "run2", policy="fail", tag="train")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    with pytest.raises(DataError, match=r"empty.jsonl: no videos listed$"):  # not "no usable videos (0 bad...)"
        screen_videos(empty, tmp_path / "run3", tag="train")


def test_bad_rows_are_named_by_the_line_an_editor_shows(files, tmp_path):
    """Blank lines (a leading one too) count: the position is the file's own line number."""
    from vs2_plugin.pipeline.screen import screen_videos

    videos = tmp_path / "videos.jsonl"
    ok = json.dumps({"id": "ok", "video": str(files["good"]), "reference": "A test pattern."})
    gone = json.dumps({"id": "gone", "video": str(files["missing"]), "reference": "x"})
    videos.write_text(f"\n{ok}\n\n{gone}\n{{not json\n", encoding="utf-8")
    _, bad = screen_videos(videos, tmp_path / "run", tag="train")
    assert [(b.position, b.id) for b in bad] == [("line 4", "gone"), ("line 5", None)]
    assert bad[0].message().startswith("dataset 'train' (videos.jsonl line 4, id 'gone'): ")
    assert bad[1].message().startswith("dataset 'train' (videos.jsonl line 5): not valid JSON")
    listed = [json.loads(line) for line in (tmp_path / "run" / "skipped_videos.jsonl").read_text().splitlines()]
    assert [r["position"] for r in listed] == ["line 4", "line 5"]


def test_mrdpo_video_list_skips_a_row_whose_interval_lies_past_the_video(files, tmp_path):
    from vs2_plugin.pipeline.screen import screen_videos
    from vs2_plugin.pipeline.videos import media_duration

    duration = media_duration(files["good"])
    local = [{"start": 0, "end": duration / 2, "reference": "A test pattern."}]
    rows = [
        {"id": "inside", "video": str(files["good"]), "reference": "x", "local": local},
        # rounded hand-written ends are let through (5.3 on a 5.28 s clip), 3 s past is not
        {
            "id": "rounded",
            "video": str(files["good"]),
            "reference": "x",
            "local": [{**local[0], "end": duration + 0.2}],
        },
        {
            "id": "past",
            "video": str(files["good"]),
            "reference": "x",
            "local": [*local, {**local[0], "end": duration + 3}],
        },
    ]
    videos = tmp_path / "videos.jsonl"
    videos.write_text("".join(json.dumps(r) + "\n" for r in rows))
    good, bad = screen_videos(videos, tmp_path / "run", tag="train")
    assert [v.id for v in good] == ["inside", "rounded"]
    assert [(b.id, b.reason) for b in bad] == [
        ("past", f"local[1] (start 0, end {duration + 3:g}) is past the video's end ({duration:.2f} s)")
    ]


def test_mrdpo_config_knows_the_policy(tmp_path):
    from vs2_plugin.pipeline.config import MrDPOConfig

    cfg = MrDPOConfig(run_dir=str(tmp_path), model_name_or_path="m", train_videos="v.jsonl")
    assert cfg.bad_samples == "skip"
    with pytest.raises(ConfigError, match="bad_samples must be one of skip, fail; got 'drop'"):
        MrDPOConfig(run_dir=str(tmp_path), model_name_or_path="m", train_videos="v.jsonl", bad_samples="drop")


# ----------------------------------------------------------------------------- real CLI runs


def _cli_env() -> dict:
    return {"PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}", "OMP_NUM_THREADS": "1"}


def _cli_dataset(folder: Path, files, damaged: bool = False) -> tuple[Path, int, dict[int, str]]:
    """Real demo clips (good) mixed with one row per kind of bad file or row (``damaged``: also a
    file damaged inside, which only the decode check finds)."""
    demo = json.loads((REPO / "vs2_plugin/assets/demo_data/vs2_demo_av_sft.json").read_text())
    for row in demo:
        row["videos"] = [str(REPO / "vs2_plugin/assets/demo_data" / v) for v in row["videos"]]
    rows, bad = [demo[0]], {}
    for name, reason in (
        ("missing", "file not found"),
        ("text", "not a readable media file"),
        ("truncated", "video data ends early"),
        ("audio_only", "no video stream"),
        ("short", "too short"),
    ):
        bad[len(rows)] = reason
        rows.append(_row(files[name]))
    rows.append(demo[1])
    bad[len(rows)] = "empty caption"
    rows.append(_row(files["good"], caption=""))
    bad[len(rows)] = "2 <video> placeholder(s) but 1 videos given"
    rows.append(_row([str(files["good"])], prompt="<video> and <video>?"))
    rows.append(_row(files["vfr"]))
    rows.append(_row(files["six_channel"]))
    if damaged:
        bad[len(rows)] = "decoding failed"
        rows.append(_row(files["damaged"]))
    return _write_dataset(folder, rows), len(rows), bad


@pytest.mark.slow
def test_cli_fail_policy_exits_naming_the_file(files, tiny_model_dir, tmp_path, run_cli):
    folder, total, bad = _cli_dataset(tmp_path / "data", files)
    out = tmp_path / "sft_fail"
    res = run_cli(
        [
            "llamafactory-cli",
            "train",
            "recipes/tiny/av_sft.yaml",
            f"model_name_or_path={tiny_model_dir}",
            f"output_dir={out}",
            "max_steps=2",
            "dataset=mix",
            f"dataset_dir={folder}",
        ],
        cwd=REPO,
        env=_cli_env(),
    )
    assert res.returncode != 0 and "Traceback" not in res.stderr, res.stderr[-3000:]
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith("vs2_plugin: error: bad training sample: ")
    assert f"bad training sample: dataset 'mix' (mix.json item 2): {files['missing']}: file not found" in last
    assert f"{len(bad)} of {total} samples are bad" in last
    assert not (out / "adapter_model.safetensors").exists()
    # the model with another template: refused before anything, since its audio would be dropped
    res = run_cli(
        ["llamafactory-cli", "train", "recipes/tiny/av_sft.yaml", f"model_name_or_path={tiny_model_dir}"]
        + [f"output_dir={out}", "template=qwen2_vl"],
        cwd=REPO,
        env=_cli_env(),
    )
    last = res.stderr.strip().splitlines()[-1]
    assert res.returncode != 0 and last.startswith("vs2_plugin: error: template: 'qwen2_vl' with "), last


@pytest.mark.slow
def test_cli_skip_policy_trains_and_lists_exactly_the_bad_rows(files, tiny_model_dir, tmp_path, run_cli):
    folder, total, bad = _cli_dataset(tmp_path / "data", files, damaged=True)
    out = tmp_path / "sft_skip"
    res = run_cli(
        [
            "llamafactory-cli",
            "train",
            "recipes/tiny/av_sft.yaml",
            f"model_name_or_path={tiny_model_dir}",
            f"output_dir={out}",
            "max_steps=2",
            "dataset=mix",
            f"dataset_dir={folder}",
            "vs2_bad_samples=skip",
            "vs2_check_decode=true",
        ],
        cwd=REPO,
        env=_cli_env(),
    )
    assert res.returncode == 0, res.stderr[-3000:]
    assert (out / "adapter_model.safetensors").stat().st_size > 0
    skipped = [json.loads(line) for line in (out / "skipped_samples.jsonl").read_text().splitlines()]
    assert sorted(r["index"] for r in skipped) == sorted(bad)
    for r in skipped:
        assert bad[r["index"]] in r["reason"], r
    assert f"left out {len(bad)} of {total} samples" in res.stderr
    summary = json.loads((out / "data_check.json").read_text())
    assert summary["skipped"] == len(bad)
    log = [json.loads(line) for line in (out / "trainer_log.jsonl").read_text().splitlines()]
    assert log[-1]["current_steps"] == 2


# ----------------------------------------------------------------------------- mrDPO: failures while sampling


def test_sampling_failures_are_dropped_and_listed(tmp_path):
    from vs2_plugin.pipeline.screen import drop_failed

    rows = [
        {"key": "a/global/0", "video_id": "a", "video": "/v/a.mp4", "caption": "x"},
        {"key": "b/global/0", "video_id": "b", "video": "/v/b.mp4", "caption": None, "error": "decoding failed (x)"},
        {"key": "b/local/0", "video_id": "b", "video": "/v/b.mp4", "caption": None, "error": "decoding failed (x)"},
    ]
    kept, failed = drop_failed(rows, tmp_path, "train sampling round-001")
    assert [r["key"] for r in kept] == ["a/global/0"] and failed == {"b"}
    listed = [json.loads(line) for line in (tmp_path / "skipped_videos.jsonl").read_text().splitlines()]
    assert listed == [
        {"dataset": "train sampling round-001", "reason": "decoding failed (x)", "file": "/v/b.mp4", "id": "b"}
    ]
    with pytest.raises(
        DataError, match=r"bad video 'b' while sampling \(train sampling round-001\): /v/b.mp4: decoding failed"
    ):
        drop_failed(rows, tmp_path, "train sampling round-001", "fail")


def test_sampling_records_an_unreadable_video_and_goes_on(files, tiny_model_dir, tmp_path):
    from vs2_plugin.pipeline.config import SamplingConfig
    from vs2_plugin.pipeline.records import JsonlLog
    from vs2_plugin.pipeline.sampling import SampleTask, sample

    tasks = [
        SampleTask("t/damaged/global/0", "damaged", "global", "Describe.", str(files["damaged"]), 0),
        SampleTask("t/good/global/0", "good", "global", "Describe.", str(files["good"]), 0),
    ]
    infer = {
        "template": "video_salmonn2",
        "video_fps": 1.0,
        "video_maxlen": 30,
        "video_max_pixels": 12544,
        "use_audio_in_video": True,
    }
    out = tmp_path / "samples.jsonl"
    rows = sample(
        tasks,
        out,
        model=str(tiny_model_dir),
        adapters=[],
        infer=infer,
        cfg=SamplingConfig(max_new_tokens=4),
        seed=1,
        progress=False,
    )
    assert rows[0]["caption"] is None and rows[0]["error"].startswith("decoding failed")
    assert isinstance(rows[1]["caption"], str) and "error" not in rows[1]
    # a rerun retries the unreadable video only
    sample(
        tasks,
        out,
        model=str(tiny_model_dir),
        adapters=[],
        infer=infer,
        cfg=SamplingConfig(max_new_tokens=4),
        seed=1,
        progress=False,
    )
    assert [r["key"] for r in JsonlLog(out).rows()] == ["t/damaged/global/0", "t/good/global/0", "t/damaged/global/0"]


@pytest.mark.slow
def test_mrdpo_round_goes_on_without_bad_videos(files, tiny_model_dir, tmp_path, run_cli):
    """A real tiny mrDPO round whose video list holds a missing, a text and a damaged video."""
    import yaml

    demo = REPO / "vs2_plugin/assets/demo_data"
    rows = [json.loads(line) for line in (demo / "vs2_demo_rl.jsonl").read_text().splitlines() if line.strip()]
    for row in rows:
        row["video"] = str(demo / row["video"])
    rows[2:] = []  # two good videos keep the round short
    for vid, path in (("gone", files["missing"]), ("text", files["text"]), ("damaged", files["damaged"])):
        rows.append(
            {
                "id": vid,
                "video": str(path),
                "reference": "A test pattern with a steady tone.",
                "local": [{"start": 0.0, "end": 2.0, "reference": "A test pattern."}],
            }
        )
    videos = tmp_path / "videos.jsonl"
    videos.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = yaml.safe_load((REPO / "recipes/tiny/mrdpo.yaml").read_text())
    run = tmp_path / "run"
    cfg.update(
        run_dir=str(run),
        model_name_or_path=str(tiny_model_dir),
        rounds=1,
        train_videos=str(videos),
        heldout_videos=str(videos),
    )
    cfg["sampling"]["max_new_tokens"] = 8
    cfg["train"]["max_steps"] = 1
    cfg["thresholds"] = [{"delta_e_global": -1.0, "delta_r_global": -1.0, "delta_e_local": -1.0, "delta_r_local": -1.0}]
    path = tmp_path / "mrdpo.yaml"
    path.write_text(yaml.safe_dump(cfg))
    res = run_cli(
        [sys.executable, "-m", "vs2_plugin.cli", "mrdpo", str(path), "--no-progress"],
        cwd=REPO,
        env=_cli_env(),
        timeout=900,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    listed = [json.loads(line) for line in (run / "skipped_videos.jsonl").read_text().splitlines()]
    by_step = {}
    for r in listed:
        by_step.setdefault(r["dataset"], set()).add(r["id"])
    # screening finds the missing and the unreadable file; the damaged one fails while sampling
    assert by_step["train"] == by_step["heldout"] == {"gone", "text"}
    assert by_step["train sampling round-001"] == {"damaged"}
    assert by_step["heldout sampling round-000"] == {"damaged"}
    gt = json.loads((run / "data" / "vs2_gt.json").read_text())
    assert not any("damaged" in r["videos"][0] for r in gt)
    judged = [json.loads(line) for line in (run / "round-001" / "judged.jsonl").read_text().splitlines()]
    assert {r["video_id"] for r in judged} == {"drawing", "bunny"}
    assert (run / "gdpo" / "round-001" / "adapter_model.safetensors").is_file()


@pytest.mark.parametrize(
    ("limits", "message"),
    [
        ({"token_settings": (("window_s", -1),)}, "window_s must be a positive number of seconds, got -1"),
        ({"token_settings": (("fps", 0),)}, "fps must be a finite number > 0, got 0"),
        ({"token_settings": (("max_frames", 0),)}, "max_frames must be an integer >= 1, got 0"),
        ({"token_settings": (("group_size", 0),)}, "group_size must be a whole number >= 1, got 0"),
        ({"min_duration_s": -5}, "min_duration_s must be a number >= 0, got -5"),
        ({"max_media_tokens": 0}, "max_media_tokens must be a number >= 1, got 0"),
    ],
)
def test_media_limits_refuse_impossible_values(limits, message):
    with pytest.raises(ConfigError, match=message):
        MediaLimits(**limits)


def test_the_decode_check_samples_frames_as_the_run_does_and_counting_reuses_the_probe(files, tmp_path, monkeypatch):
    """One description of the run's frame sampling (``token_settings``) drives both the token count
    and the decode check; counting a checked file's tokens reads its probe from the check."""
    import shutil

    clip = shutil.copy(files["good"], tmp_path / "fresh.mp4")  # a file version no cache has seen
    calls = {"probe": 0, "read_media": []}
    real_probe = media.probe

    def counting_probe(path):
        calls["probe"] += 1
        return real_probe(path)

    monkeypatch.setattr(media, "probe", counting_probe)
    monkeypatch.setattr(media, "read_media", lambda path, *args, **kwargs: calls["read_media"].append((args, kwargs)))
    run = (("fps", 2.0), ("max_frames", 8), ("group_size", 4), ("video_max_pixels", 4096))
    limits = MediaLimits(decode=True, token_settings=run, max_media_tokens=100_000)
    assert check_media(clip, "video", limits) is None
    ((args, kwargs),) = calls["read_media"]
    assert args == (2.0, 8) and (kwargs["group_size"], kwargs["max_pixels"]) == (4, 4096)
    assert media_check.media_tokens(clip, "video", limits)[0] > 0
    assert calls["probe"] == 1
