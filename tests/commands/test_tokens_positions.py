"""``vs2 tokens --positions``: audio M-RoPE positions of a real clip, and the model uses the same ones."""

from __future__ import annotations

import json

import pytest
import torch

from tests.support.media_factory import make_audio, make_video, requires_ffmpeg
from vs2_plugin.cli import main


def tokens(capsys, *args) -> dict:
    assert main(["tokens", *map(str, args)]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.fixture(scope="module")
def clip_61s(tmp_path_factory):
    # 61 s with sound, tiny frames at 2 fps: cheap to write, and the length is not a multiple of 30 s
    return make_video(tmp_path_factory.mktemp("clip") / "61s.mp4", 61.0, size="64x48", fps=2, audio_rate=16000)


@requires_ffmpeg
def test_61s_clip_audio_is_off_the_video_grid_and_in_time_order(clip_61s, capsys):
    report = tokens(capsys, clip_61s, "--positions")
    video = [tuple(p) for p in report["video_positions"]]
    audio = [tuple(p) for p in report["audio_positions"]]
    assert len(video) == report["visual_tokens_total"] and len(audio) == report["audio_tokens_total"] >= 305
    assert not set(audio) & set(video)  # no audio token shares a video patch's 3D position
    times = [t for t, _, _ in audio]
    assert times == sorted(times)  # audio time positions never decrease along the input
    # each 0.2 s window has its own time: window j starts at 0.2 j s -> floor(0.2 j * 2 steps/s)
    assert times == [(2 * j) // 5 for j in range(len(audio))]
    assert times[-1] == 121 and len(set(times)) == 122  # 60.8 s..61 s -> step 121; one step per 0.5 s
    # video: 15 groups of 61/15 s; group g at floor(g * 61/15 * 2); every audio token between its
    # group's time and the next group's
    group_t = [int(g * 61 / 15 * 2) for g in range(15)]
    assert sorted({t for t, _, _ in video}) == group_t
    k = 0
    for g, count in enumerate(report["audio_tokens_per_group"]):
        upper = group_t[g + 1] if g + 1 < len(group_t) else times[-1]
        assert all(group_t[g] <= t <= upper for t in times[k : k + count]), g
        k += count
    rows = max(h for _, h, _ in video) + 1
    cols = max(w for _, _, w in video) + 1
    assert rows * cols == report["visual_tokens_per_group"][0]
    assert set((h, w) for _, h, w in audio) == {(rows, cols)}  # the cell just past the frame's last patch


@requires_ffmpeg
def test_audio_only_positions_are_one_dimensional(tmp_path, capsys):
    report = tokens(capsys, make_audio(tmp_path / "a.wav", 2.0), "--positions")
    assert report["video_positions"] == []
    assert report["audio_positions"] == [[k, k, k] for k in range(report["audio_tokens_total"])]


def test_positions_are_only_added_when_asked(shared_media, capsys):
    report = tokens(capsys, shared_media / "4_av.mp4")
    assert "video_positions" not in report and "audio_positions" not in report


@pytest.fixture(scope="module")
def tiny_model_half_second_windows(tmp_path_factory):
    from vs2_plugin.modeling.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-0.5s"), seed=0, audio_window_s=0.5)


@pytest.mark.parametrize(
    "model, name",
    [
        ("tiny_model_dir", "4_av.mp4"),
        ("tiny_model_dir", "bigbuckbunny.mp4"),
        ("tiny_model_half_second_windows", "bigbuckbunny.mp4"),
    ],
)
def test_model_forward_positions_equal_the_report(request, shared_media, capsys, model, name):
    """The model's get_rope_index on the real plugin's input equals what ``vs2 tokens`` prints
    (window settings read from the model directory by both)."""
    from llamafactory.data import get_template_and_fix_tokenizer
    from llamafactory.hparams import get_train_args
    from llamafactory.model import load_tokenizer

    from vs2_plugin.modeling.model import VideoSalmonn2ForConditionalGeneration

    tiny_model_dir = request.getfixturevalue(model)
    args = {
        "model_name_or_path": str(tiny_model_dir),
        "stage": "sft",
        "do_train": True,
        "finetuning_type": "lora",
        "dataset": "unused",
        "template": "video_salmonn2",
        "output_dir": "/tmp/vs2-unused",
        "video_fps": 1.0,
        "video_maxlen": 30,
        "video_max_pixels": 12544,
        "use_audio_in_video": True,
        "report_to": "none",
        "use_cpu": True,
    }
    model_args, data_args, *_ = get_train_args(args)
    tok_module = load_tokenizer(model_args)
    tokenizer, processor = tok_module["tokenizer"], tok_module["processor"]
    plugin = get_template_and_fix_tokenizer(tokenizer, data_args).mm_plugin
    path = str(shared_media / name)
    content = plugin.process_messages([{"role": "user", "content": "Hi <video>Describe."}], [], [path], [], processor)
    ids = tokenizer.encode(content[0]["content"], add_special_tokens=False)
    mm = plugin.get_mm_inputs([], [path], [], [0], [1], [0], [ids], processor)
    model = VideoSalmonn2ForConditionalGeneration.from_pretrained(tiny_model_dir)
    positions, _ = model.get_rope_index(
        torch.tensor([ids]), video_grid_thw=mm["video_grid_thw"], second_per_grid_ts=mm.get("second_per_grid_ts")
    )
    pos = positions[:, 0].T
    config = model.config
    is_video, is_audio = torch.tensor(ids) == config.video_token_id, torch.tensor(ids) == config.audio_token_id
    start = pos[is_video][0, 0]  # the video's first token: offset 0 in the report
    capsys.readouterr()  # drop the loaders' log lines
    report = tokens(capsys, path, "--positions", "--model", tiny_model_dir, "--video-max-pixels", 12544)
    assert report["audio_tokens_total"] > 0 and report["settings"]["window_s"] == config.audio_window_s
    assert (pos[is_video] - start).tolist() == report["video_positions"]
    assert (pos[is_audio] - start).tolist() == report["audio_positions"]


def test_time_scale_comes_from_the_model_directory(shared_media, tmp_path, capsys):
    (tmp_path / "config.json").write_text(json.dumps({"vision_config": {"tokens_per_second": 4}}))
    report = tokens(capsys, shared_media / "4_av.mp4", "--positions", "--model", tmp_path)
    assert report["settings"]["tokens_per_second"] == 4
    # 0.2 s windows at 4 steps per second: floor(0.8 j)
    assert [t for t, _, _ in report["audio_positions"]] == [(4 * j) // 5 for j in range(report["audio_tokens_total"])]
