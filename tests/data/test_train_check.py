"""The bad-sample pass before training: samples that the multimodal plugin or LLaMA-Factory's
truncation would break mid-run are named before the run starts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.paths import REPO
from vs2_plugin.data import dataset_rows, media_check, validate
from vs2_plugin.data.train_check import check_training_data, media_limits
from vs2_plugin.errors import ConfigError, DataError

DEMO_DATA = REPO / "vs2_plugin" / "assets" / "demo_data"
MEDIA = DEMO_DATA / "media"
VIDEOS = ["bigbuckbunny.mp4", "drawing.mp4", "baby_book.mp4", "living_room.mp4"]  # the first two have sound
AUDIOS = ["cough.wav", "reading.flac", "speech.mp3"]
TAGS = {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant"}
#: the frame settings of recipes/tiny/av_sft.yaml, and others
TINY_RECIPE = {"video_fps": 1.0, "video_maxlen": 30, "video_max_pixels": 12544}
MORE_FRAMES = {"video_fps": 2.0, "video_maxlen": 8, "video_max_pixels": 50000}


def _run_args(model_dir, out: Path, **extra) -> dict:
    return {
        "stage": "sft",
        "template": "video_salmonn2",
        "model_name_or_path": str(model_dir),
        "dataset": "vs2_demo_av_sft",
        "dataset_dir": str(DEMO_DATA),
        "output_dir": str(out),
        "use_audio_in_video": True,
        **TINY_RECIPE,
        **extra,
    }


def _limits(args: dict):
    from vs2_plugin.integrations.llamafactory import argument_default

    def given(name):
        return argument_default(name) if args.get(name) is None else args[name]

    return media_limits(args, validate.DataCheckArguments(), given)


def _plugin(model_dir, settings: dict):
    from llamafactory.data import get_template_and_fix_tokenizer
    from llamafactory.hparams import get_infer_args
    from llamafactory.model import load_tokenizer

    model_args, data_args, _, _ = get_infer_args(
        {"model_name_or_path": str(model_dir), "template": "video_salmonn2", "infer_backend": "huggingface", **settings}
    )
    tok = load_tokenizer(model_args)
    template = get_template_and_fix_tokenizer(tok["tokenizer"], data_args)
    return template.mm_plugin, tok["processor"], tok["tokenizer"]


def _listed(out: Path, name: str) -> list[dict]:
    return [json.loads(line) for line in (out / name).read_text().splitlines()]


@pytest.mark.parametrize(
    "settings",
    [
        {**TINY_RECIPE, "use_audio_in_video": True},
        {**MORE_FRAMES, "use_audio_in_video": True},
        {**TINY_RECIPE, "use_audio_in_video": False},  # with the opt-out: frames only
    ],
    ids=["tiny-recipe", "other-frame-settings", "frames-only"],
)
def test_counted_tokens_are_the_placeholders_the_plugin_writes(tiny_model_dir, settings, monkeypatch):
    monkeypatch.setenv("VS2_IGNORE_VIDEO_AUDIO", "1")
    plugin, processor, tokenizer = _plugin(tiny_model_dir, settings)
    limits = _limits({"model_name_or_path": str(tiny_model_dir), **settings})
    pads = [tokenizer.convert_tokens_to_ids(t) for t in ("<|video_pad|>", "<|audio_pad|>")]
    for name, kind in [(v, "video") for v in VIDEOS] + [(a, "audio") for a in AUDIOS]:
        path = str(MEDIA / name)
        videos, audios = ([path], []) if kind == "video" else ([], [path])
        message = [{"role": "user", "content": f"<{kind}>Describe it."}]
        text = plugin.process_messages(message, [], videos, audios, processor)[0]["content"]
        ids = tokenizer.encode(text, add_special_tokens=False)
        written = tuple(ids.count(pad) for pad in pads)
        assert media_check.media_tokens(path, kind, limits) == written, name
        if kind == "audio":
            assert written[0] == 0 < written[1]
        else:  # the sound of the first two becomes tokens only with use_audio_in_video
            assert written[0] > 0 and (written[1] > 0) == (settings["use_audio_in_video"] and name in VIDEOS[:2])


def _dataset(folder: Path, rows: list[dict]) -> Path:
    folder.mkdir()
    (folder / "rows.json").write_text(json.dumps(rows))
    columns = {"messages": "messages", "videos": "videos", "audios": "audios"}
    info = {"rows": {"file_name": "rows.json", "formatting": "sharegpt", "columns": columns, "tags": TAGS}}
    (folder / "dataset_info.json").write_text(json.dumps(info))
    return folder


def _row(prompt: str, videos=(), audios=()) -> dict:
    messages = [{"role": "user", "content": prompt}, {"role": "assistant", "content": "A caption."}]
    return {
        "messages": messages,
        "videos": [str(MEDIA / v) for v in videos],
        "audios": [str(MEDIA / a) for a in audios],
    }


def test_samples_whose_media_reach_cutoff_len_are_named_and_left_out(tiny_model_dir, tmp_path):
    # with MORE_FRAMES drawing.mp4 takes 64 video + 26 audio = 90 placeholder tokens (as the plugin
    # writes them, checked above): at cutoff_len=90 LLaMA-Factory would cut inside them; the whole
    # second sample, 15 of them for cough.wav, is 62 tokens long
    rows = [
        _row("<video>Describe the video.", videos=["drawing.mp4"]),
        _row("<audio>What is it?", audios=["cough.wav"]),
    ]
    folder = _dataset(tmp_path / "data", rows)
    out = tmp_path / "fail"
    with pytest.raises(DataError, match=r"drawing.mp4: too long for cutoff_len=90: its media alone need 90 tokens"):
        check_training_data(
            _run_args(tiny_model_dir, out, dataset="rows", dataset_dir=str(folder), cutoff_len=90, **MORE_FRAMES)
        )
    listed = _listed(out, validate.BAD_FILE)
    assert [(r["index"], r["file"]) for r in listed] == [(0, str(MEDIA / "drawing.mp4"))]
    assert listed[0]["reason"] == (
        "too long for cutoff_len=90: its media alone need 90 tokens (64 video + 26 audio), so the sequence "
        "would be cut inside them (raise cutoff_len, or lower video_maxlen, video_max_pixels or video_fps, "
        "or leave out long clips with vs2_max_duration_s)"
    )

    out = tmp_path / "skip"
    args = check_training_data(
        _run_args(
            tiny_model_dir,
            out,
            dataset="rows",
            dataset_dir=str(folder),
            cutoff_len=90,
            vs2_bad_samples="skip",
            **MORE_FRAMES,
        )
    )
    kept = json.loads((Path(args["dataset_dir"]) / "rows.json").read_text())
    assert [r["audios"] for r in kept] == [[str(MEDIA / "cough.wav")]]
    assert [r["index"] for r in _listed(out, validate.SKIPPED_FILE)] == [0]


def test_the_media_of_one_sample_are_added_up(tiny_model_dir, tmp_path):
    rows = [
        _row("<video><audio>Describe both.", videos=["drawing.mp4"], audios=["cough.wav"]),
        _row("<audio>What is it?", audios=["cough.wav"]),
    ]
    folder = _dataset(tmp_path / "data", rows)
    limits = _limits(
        {"model_name_or_path": str(tiny_model_dir), "use_audio_in_video": True, "cutoff_len": 70, **TINY_RECIPE}
    )
    video = media_check.media_tokens(str(MEDIA / "drawing.mp4"), "video", limits)
    audio = media_check.media_tokens(str(MEDIA / "cough.wav"), "audio", limits)
    assert sum(video) < 70 and sum(audio) < 70 <= sum(video) + sum(audio)  # each fits, together they do not
    result = validate.check_dataset(dataset_rows.dataset_specs(["rows"], str(folder))[0], limits)
    assert [(b.index, b.file) for b in result.bad] == [(0, None)]  # the sample, not one of its files
    assert result.bad[0].reason.startswith(
        f"too long for cutoff_len=70: its 2 media files alone need {sum(video) + sum(audio)} tokens "
        f"({video[0]} video + {video[1] + audio[1]} audio)"
    )
    assert len(result.good_rows) == 1


def test_a_video_whose_audio_the_run_would_drop_is_bad_as_the_plugin_says(tiny_model_dir, tmp_path, monkeypatch):
    from vs2_plugin.data import mm_plugin

    plugin, processor, _ = _plugin(tiny_model_dir, {**TINY_RECIPE, "use_audio_in_video": False})
    for opt_out in ("", "1", "0", "yes"):
        monkeypatch.setenv(mm_plugin.IGNORE_VIDEO_AUDIO_ENV, opt_out)
        for name in VIDEOS:
            path = str(MEDIA / name)
            try:
                plugin.process_messages([{"role": "user", "content": "<video>x"}], [], [path], [], processor)
                refused = None
            except DataError as exc:
                refused = str(exc)
            limits = _limits({"model_name_or_path": str(tiny_model_dir), **TINY_RECIPE, "use_audio_in_video": False})
            problem = media_check.check_media(path, "video", limits)
            assert (problem is None) == (refused is None), (opt_out, name, problem, refused)
    monkeypatch.delenv(mm_plugin.IGNORE_VIDEO_AUDIO_ENV)
    out = tmp_path / "run"
    with pytest.raises(
        DataError, match=r"bigbuckbunny.mp4: the video has an audio track .* use_audio_in_video is false"
    ):
        check_training_data(_run_args(tiny_model_dir, out, use_audio_in_video=False))
    listed = _listed(out, validate.BAD_FILE)
    rows = json.loads((DEMO_DATA / "vs2_demo_av_sft.json").read_text())
    assert len(listed) == len(rows)  # every demo clip has sound
    assert all(r["reason"].endswith("or VS2_IGNORE_VIDEO_AUDIO=1 to use the frames only") for r in listed)
    monkeypatch.setenv(mm_plugin.IGNORE_VIDEO_AUDIO_ENV, "1")
    check_training_data(_run_args(tiny_model_dir, tmp_path / "opted-out", use_audio_in_video=False))


def test_check_recipe_names_what_the_run_would_stop_on(tiny_model_dir, monkeypatch):
    from vs2_plugin.pipeline.recipe_check import check_recipe

    monkeypatch.chdir(REPO)  # the recipe's dataset_dir is relative
    monkeypatch.delenv("VS2_IGNORE_VIDEO_AUDIO", raising=False)
    rows = json.loads((DEMO_DATA / "vs2_demo_av_sft.json").read_text())
    recipe, model = "recipes/tiny/av_sft.yaml", f"model_name_or_path={tiny_model_dir}"
    for override, named in (
        ("cutoff_len=40", "too long for cutoff_len=40"),
        ("use_audio_in_video=false", "audio track"),
    ):
        _, findings = check_recipe(recipe, [model, override], data=True)
        problems = [f.text for f in findings if f.level == "problem"]
        assert len(problems) == len(rows) and all(named in p for p in problems), problems
        assert f"data (fail): {len(rows)} samples checked, {len(rows)} bad" in [f.text for f in findings]


def test_the_media_token_limit_refuses_nonsense():
    with pytest.raises(ConfigError, match="max_media_tokens must be a number >= 1, got 0"):
        media_check.MediaLimits(max_media_tokens=0)
