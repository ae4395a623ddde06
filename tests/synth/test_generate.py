"""`vs2 synth`: plans, rendered clips, determinism, datasets and the CLI's errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.support.paths import REPO
from tests.support.processes import run_cli
from vs2_plugin import cli
from vs2_plugin.data.media import read_media
from vs2_plugin.errors import ConfigError
from vs2_plugin.pipeline.config import DEFAULT_GLOBAL_PROMPT, DEFAULT_LOCAL_PROMPT
from vs2_plugin.pipeline.videos import load_videos
from vs2_plugin.synth.generate import (
    BACKGROUND,
    COLOUR_RGB,
    POSITION_XY,
    SAMPLE_RATE,
    TONE_HZ,
    SynthConfig,
    generate,
    plan_clip,
)
from vs2_plugin.synth.grammar import Event
from vs2_plugin.synth.judge import judge_caption

SMALL = {"seed": 7, "n_train": 3, "n_heldout": 2, "min_seconds": 4, "max_seconds": 7}


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth")
    generate(SynthConfig(out=str(out), **SMALL))
    return out


def _records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "clips.jsonl").read_text().splitlines()]


def _visible_at(timeline: list[dict], t: float) -> dict[tuple[str, str], str]:
    """(colour, shape) -> position of the shapes on screen at ``t`` (after any move has ended)."""
    on: dict[tuple[str, str], str] = {}
    for e in timeline:
        if e["kind"] in ("appear", "move", "disappear") and e["time"] <= t:
            key = (e["colour"], e["shape"])
            if e["kind"] == "disappear":
                on.pop(key, None)
            else:
                on[key] = e["position"]
    return on


# ------------------------------------------------------------------------------ plans


def test_plans_are_pure_consistent_and_split_independent():
    config = SynthConfig(out=".", **SMALL)
    assert plan_clip(7, "heldout", 1, config) == plan_clip(
        7, "heldout", 1, SynthConfig(out=".", **{**SMALL, "n_train": 40})
    )
    assert plan_clip(7, "train", 0, config) != plan_clip(8, "train", 0, config)
    for index in range(40):
        clip = plan_clip(3, "train", index, SynthConfig(out=".", seed=3))
        assert clip.duration in (4, 6, 8, 10, 12)
        assert {e.modality for e in clip.events} == {"visual", "audio"}
        on: dict[tuple[str, str], str] = {}
        seen = set()
        for e in clip.events:
            assert 1 <= e.time <= clip.duration - 1 and e.time == int(e.time)
            if e.modality != "visual":
                continue
            key = (e.colour, e.shape)
            if e.kind == "appear":
                assert key not in seen and e.position not in on.values()  # fresh object, free position
                seen.add(key)
                on[key] = e.position
            elif e.kind == "move":
                assert key in on and e.position not in on.values()
                on[key] = e.position
            else:
                assert key in on
                del on[key]
            assert len(on) <= 3
        # local intervals tile the clip, are cut at half seconds and each holds an event
        bounds = [a for a, _ in clip.local] + [clip.local[-1][1]]
        assert bounds[0] == 0 and bounds[-1] == clip.duration and len(clip.local) >= 2
        assert all(b % 1 == 0.5 for b in bounds[1:-1])
        assert all(any(a <= e.time < b for e in clip.events) for a, b in clip.local)


@pytest.mark.parametrize(
    "kwargs, bad",
    [
        ({"seed": -1}, "seed"),
        ({"n_train": 0, "n_heldout": 0}, r"n_train \+ n_heldout must be >= 1, got 0 \+ 0"),
        ({"min_seconds": 2}, "min_seconds"),
        ({"max_seconds": 99}, "max_seconds"),
        ({"min_seconds": 5.2, "max_seconds": 5.8}, "holds no even whole number of seconds"),
        ({"size": 63}, "63"),
        ({"fps": 0}, "fps"),
        ({"fps": 1}, "fps must be even"),  # frames at whole seconds: k + 0.5 s reads the next slot
        ({"fps": 3}, "fps must be even"),
        ({"n_train": "4"}, "'4'"),
    ],
)
def test_bad_settings_name_the_value(kwargs, bad):
    with pytest.raises(ConfigError, match=bad):
        SynthConfig(out=".", **kwargs)


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert cli.main(["synth", "--out", str(tmp_path), "--n-heldout", "-3"]) == 2
    assert "vs2 synth: error: n_heldout must be an integer >= 0, got -3" in capsys.readouterr().err
    assert not (tmp_path / "clips.jsonl").exists()
    # a path that cannot be a folder: the path and why, not a traceback (any command, through vs2's main)
    (tmp_path / "a-file").write_text("")
    assert cli.main(["synth", "--out", str(tmp_path / "a-file"), "--n-train", "1", "--n-heldout", "1"]) == 2
    err = capsys.readouterr().err
    assert err == f"vs2 synth: error: {tmp_path / 'a-file' / 'media'}: Not a directory\n"


# ------------------------------------------------------------------------------ files


def test_same_seed_same_files_and_frames(synth_dir, tmp_path):
    again = tmp_path / "again"
    assert (
        cli.main(["synth", "--out", str(again), "--quiet", *[f"--{k.replace('_', '-')}={v}" for k, v in SMALL.items()]])
        == 0
    )
    for name in (
        "clips.jsonl",
        "train.jsonl",
        "heldout.jsonl",
        "synth_align.json",
        "synth_sft.json",
        "synth_sft_heldout.json",
        "dataset_info.json",
        "manifest.json",
    ):
        assert (again / name).read_bytes() == (synth_dir / name).read_bytes(), name
    for r in _records(synth_dir):
        a, b = read_media(synth_dir / r["video"]), read_media(again / r["video"])
        assert np.array_equal(a.frames, b.frames) and np.array_equal(a.audio, b.audio)
    other = tmp_path / "other"
    generate(SynthConfig(out=str(other), **{**SMALL, "seed": 8}))
    assert (other / "clips.jsonl").read_bytes() != (synth_dir / "clips.jsonl").read_bytes()


def test_clips_show_and_sound_their_events(synth_dir):
    """Frames sampled at slot centres show each visible shape's colour at its position and the
    background elsewhere; each tone's strongest frequency is its pitch; gaps are silent."""
    for r in _records(synth_dir):
        media = read_media(synth_dir / r["video"])  # the model's sampler: 1 fps
        assert media.frame_times_s == [k + 0.5 for k in range(int(r["duration"]))]
        assert (
            media.info.has_video
            and media.info.has_audio
            and media.info.duration_s == pytest.approx(r["duration"], abs=0.1)
        )
        size = media.frames.shape[1]
        for t, frame in zip(media.frame_times_s, media.frames.astype(int)):
            on = _visible_at(r["timeline"], t)
            for (colour, _), position in on.items():
                x, y = (int(v * size) for v in POSITION_XY[position])
                assert np.abs(frame[y, x] - COLOUR_RGB[colour]).max() < 40, (r["id"], t, colour, position)
            for position, (fx, fy) in POSITION_XY.items():
                if position not in on.values():
                    assert np.abs(frame[int(fy * size), int(fx * size)] - BACKGROUND).max() < 30, (r["id"], t, position)
        audio = media.audio
        sounding = {int(e["time"]) for e in r["timeline"] if e["kind"] in ("tone", "noise", "speech")}
        for e in r["timeline"]:
            if e["kind"] == "tone":
                seg = audio[int(e["time"] * SAMPLE_RATE) + 800 : int(e["time"] * SAMPLE_RATE) + 8800]
                peak = np.fft.rfftfreq(len(seg), 1 / SAMPLE_RATE)[np.argmax(np.abs(np.fft.rfft(seg)))]
                assert peak == pytest.approx(TONE_HZ[e["pitch"]], abs=5)
            elif e["kind"] in ("noise", "speech"):
                seg = audio[int(e["time"] * SAMPLE_RATE) : int((e["time"] + 0.5) * SAMPLE_RATE)]
                assert np.sqrt(np.mean(seg**2)) > 0.02
        for second in range(1, int(r["duration"]) - 1):
            if second not in sounding:
                seg = audio[int((second + 0.1) * SAMPLE_RATE) : int((second + 0.9) * SAMPLE_RATE)]
                assert np.abs(seg).max() < 0.02, (r["id"], second)


def test_captions_are_exact_for_the_exact_judge(synth_dir):
    for r in _records(synth_dir):
        assert len(r["events"]) == len(r["timeline"])
        verdict = judge_caption(r["events"], r["reference"])
        assert (verdict.missed, verdict.incorrect, verdict.hallucinated) == ([], {}, [])
        audio = judge_caption(r["audio_events"], r["audio_caption"])
        assert (audio.missed, audio.incorrect, audio.hallucinated) == ([], {}, [])
        assert len(r["audio_events"]) == sum(Event.from_dict(e).modality == "audio" for e in r["timeline"])
        for iv in r["local"]:
            local = judge_caption(iv["events"], iv["reference"])
            assert (local.missed, local.incorrect, local.hallucinated) == ([], {}, [])
        # every event is told once, in exactly one local interval
        assert sum(len(iv["events"]) for iv in r["local"]) == len(r["events"])


def test_datasets_and_video_lists(synth_dir):
    info = json.loads((synth_dir / "dataset_info.json").read_text())
    assert sorted(info) == ["synth_align", "synth_sft", "synth_sft_heldout"]
    assert info["synth_align"]["columns"] == {"messages": "messages", "audios": "audios"}
    assert info["synth_sft"]["columns"] == {"messages": "messages", "videos": "videos"}
    records = {r["id"]: r for r in _records(synth_dir)}
    train = load_videos(synth_dir / "train.jsonl")
    held = load_videos(synth_dir / "heldout.jsonl")
    assert [v.id for v in train] == ["synth_train_0000", "synth_train_0001", "synth_train_0002"]
    assert [v.id for v in held] == ["synth_heldout_0000", "synth_heldout_0001"]
    for v in train + held:
        assert v.events == records[v.id]["events"] and v.reference == records[v.id]["reference"]
        assert [(iv.start, iv.end, iv.events) for iv in v.local] == [
            (iv["start"], iv["end"], iv["events"]) for iv in records[v.id]["local"]
        ]
    sft = json.loads((synth_dir / "synth_sft.json").read_text())
    assert len(sft) == sum(1 + len(records[v.id]["local"]) for v in train)
    prompts = [row["messages"][0]["content"] for row in sft]
    assert prompts.count("<video>" + DEFAULT_GLOBAL_PROMPT) == 3
    iv = records["synth_train_0000"]["local"][1]
    assert "<video>" + DEFAULT_LOCAL_PROMPT.format(start=iv["start"], end=iv["end"]) in prompts
    assert all((synth_dir / row["videos"][0]).is_file() for row in sft)
    held_ids = {f"media/{v.id}.mp4" for v in held}
    assert not held_ids & {row["videos"][0] for row in sft}
    align = json.loads((synth_dir / "synth_align.json").read_text())
    assert {row["messages"][0]["content"] for row in align} <= {
        "<audio>Describe the audio in order.",
        "<audio>Transcribe the speech.",
    }
    assert all(set(row) == {"messages", "audios"} and (synth_dir / row["audios"][0]).is_file() for row in align)
    audio_only = [row for row in align if "in order" in row["messages"][0]["content"]]
    assert [row["messages"][1]["content"] for row in audio_only] == [records[v.id]["audio_caption"] for v in train]


@pytest.mark.slow
def test_llamafactory_trains_on_the_synthetic_datasets(synth_dir, tiny_model_dir, tmp_path):
    """Alignment and SFT read the generated datasets through `llamafactory-cli train` (1 step each)."""
    for recipe, dataset in (("audio_align", "synth_align"), ("av_sft", "synth_sft")):
        proc = run_cli(
            [
                "llamafactory-cli",
                "train",
                f"recipes/tiny/{recipe}.yaml",
                f"model_name_or_path={tiny_model_dir}",
                f"dataset={dataset}",
                f"dataset_dir={synth_dir}",
                "max_steps=1",
                f"output_dir={tmp_path / recipe}",
            ],
            cwd=REPO,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert "train_loss" in proc.stdout + proc.stderr


def test_text_corpus_holds_captions_of_clips_never_rendered(tmp_path):
    out = tmp_path / "text"
    manifest = generate(
        SynthConfig(out=str(out), seed=3, n_train=1, n_heldout=1, n_text=4, min_seconds=4, max_seconds=6)
    )
    assert manifest["clips"] == {"train": 1, "heldout": 1, "text": 4}
    info = json.loads((out / "dataset_info.json").read_text())
    assert info["synth_text"] == {"file_name": "synth_text.json", "columns": {"prompt": "text"}}
    rows = json.loads((out / "synth_text.json").read_text())
    expected = []
    for i in range(4):  # each text clip: its global, local and audio-only captions, in that order
        plan = plan_clip(3, "text", i, SynthConfig(out=str(out), seed=3, min_seconds=4, max_seconds=6))
        assert plan.id == f"synth_text_{i:04d}"
        expected += [1 + len(plan.local) + 1]
    assert len(rows) == sum(expected) and all(set(r) == {"text"} and r["text"] for r in rows)
    assert rows[0]["text"].startswith("The video shows coloured shapes")
    # nothing of the text clips is rendered, and they are not the training or held-out clips
    assert sorted(p.name for p in (out / "media").iterdir()) == [
        "synth_heldout_0000.mp4",
        "synth_heldout_0000.wav",
        "synth_train_0000.mp4",
        "synth_train_0000.wav",
    ]
    train_ref = json.loads((out / "train.jsonl").read_text().splitlines()[0])["reference"]
    assert train_ref not in {r["text"] for r in rows}


@pytest.mark.slow
def test_language_pretraining_recipe_trains_every_language_weight(tmp_path, tiny_model_dir):
    """recipes/tiny/pretrain_text.yaml: stage pt, full fine-tuning on synth_text; the language
    model moves and the audio / visual branches do not."""
    from safetensors.torch import load_file

    data = tmp_path / "data"
    generate(SynthConfig(out=str(data), n_train=0, n_heldout=1, n_text=20, min_seconds=4, max_seconds=6))
    out = tmp_path / "pt"
    proc = run_cli(
        [
            "llamafactory-cli",
            "train",
            "recipes/tiny/pretrain_text.yaml",
            f"model_name_or_path={tiny_model_dir}",
            f"dataset_dir={data}",
            "max_steps=3",
            f"output_dir={out}",
        ],
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    before, after = load_file(Path(tiny_model_dir) / "model.safetensors"), load_file(out / "model.safetensors")
    changed = {k for k in before if not bool((before[k] == after[k]).all())}
    assert any(".language_model." in k for k in changed) and "lm_head.weight" in changed
    assert not [k for k in changed if ".visual." in k or "audio" in k]


def test_an_existing_dataset_info_keeps_its_other_datasets(tmp_path, capsys):
    # the output folder is a dataset_dir: `vs2 pairs` adds its pairs there, and a rerun of vs2 synth
    # must not drop them (its own entries are replaced, a stale synth_text dropped)
    out = tmp_path / "data"
    out.mkdir()
    pairs = {"file_name": "round1.json", "ranking": True}
    (out / "dataset_info.json").write_text(json.dumps({"round1": pairs, "synth_text": {"file_name": "old.json"}}))
    generate(SynthConfig(out=str(out), seed=1, n_train=1, n_heldout=0, min_seconds=4, max_seconds=4))
    info = json.loads((out / "dataset_info.json").read_text())
    assert sorted(info) == ["round1", "synth_align", "synth_sft"] and info["round1"] == pairs
    # a broken one stops the run before any clip is rendered, in one line
    other = tmp_path / "other"
    other.mkdir()
    (other / "dataset_info.json").write_text("[1, 2]")
    assert cli.main(["synth", "--out", str(other), "--n-train", "1", "--n-heldout", "0", "--quiet"]) == 2
    assert "dataset_info.json: expected a JSON object of datasets, got list" in capsys.readouterr().err
    assert not (other / "media").exists()


def test_an_interrupted_run_says_it_starts_over(tmp_path, monkeypatch, capsys):
    from vs2_plugin.synth import generate as gen

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(gen, "generate", interrupted)
    assert cli.main(["synth", "--out", str(tmp_path), "--quiet"]) == 130
    err = capsys.readouterr().err
    assert "run it again" in err and "resumes" not in err  # vs2 synth does not resume
