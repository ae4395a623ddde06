"""Encoder pretraining on synthetic clips: hand-worked labels, and a run that changes the
encoders only and makes their tokens tell clips apart."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from tests.support.processes import run_cli
from vs2_plugin.errors import ConfigError
from vs2_plugin.synth.encoders import (
    VISUAL_LABELS,
    EncoderPretrainConfig,
    audio_labels_list,
    audio_targets,
    visual_targets,
)
from vs2_plugin.synth.generate import Clip, SynthConfig, generate
from vs2_plugin.synth.grammar import Event


def test_visual_labels_mark_the_tokens_an_object_covers():
    # 4 s, 2 frames per token -> frames at 0.5, 1.5 (token group 0) and 2.5, 3.5 (group 1).
    # A square appearing at 1 s at the top left is centred at (28, 28) of the 112 canvas with a
    # half side of 0.85 * 0.14 * 112 = 13.3 px: it covers (13.3 / 28)^2 = 23 % of each of the four
    # top-left 28-px regions (>= 15 %) and nothing else. The blue circle appears at 3 s at the
    # centre: group 1 only, the four central regions.
    clip = Clip(
        "c",
        "train",
        4,
        [
            Event("appear", colour="red", shape="square", position="top left", time=1.0),
            Event("appear", colour="blue", shape="circle", position="centre", time=3.0),
        ],
    )
    y = visual_targets(clip, (2, 8, 8), merge=2, temporal=2).reshape(2, 4, 4, len(VISUAL_LABELS))
    idx = {name: i for i, name in enumerate(VISUAL_LABELS)}
    top_left = np.zeros((4, 4), bool)
    top_left[:2, :2] = True
    centre = np.zeros((4, 4), bool)
    centre[1:3, 1:3] = True
    for g in (0, 1):
        assert (y[g, :, :, idx["red"]].astype(bool) == top_left).all()
        assert (y[g, :, :, idx["square"]].astype(bool) == top_left).all()
        assert (y[g, :, :, idx["top left"]].astype(bool) == top_left).all()
    assert not y[0, :, :, idx["blue"]].any()
    assert (y[1, :, :, idx["blue"]].astype(bool) == centre).all()
    assert (y[1, :, :, idx["object"]].astype(bool) == (top_left | centre)).all()
    assert not y[:, :, :, idx["green"]].any()


def test_audio_labels_follow_the_sounds():
    clip = Clip(
        "c",
        "train",
        6,
        [
            Event("tone", pitch="high", time=1.0),
            Event("speech", word="apple", time=3.0),
            Event("appear", colour="red", shape="square", position="centre", time=1.0),
        ],
    )
    names = audio_labels_list(("apple", "river"))
    y = audio_targets(clip, 300, 0.02, ("apple", "river"))  # state k at (k + 0.5) * 20 ms
    col = {n: i for i, n in enumerate(names)}
    tone = np.flatnonzero(y[:, col["tone:high"]])
    assert (tone[0], tone[-1]) == (50, 79)  # 1.0 s <= t < 1.6 s
    word = np.flatnonzero(y[:, col["word:apple"]])
    assert (word[0], word[-1]) == (150, 179)
    assert (np.flatnonzero(y[:, col["sound"]]) == np.concatenate([tone, word])).all()
    assert not y[:, col["noise"]].any() and not y[:, col["word:river"]].any()


def test_bad_settings_name_the_value(tmp_path, tiny_model_dir):
    with pytest.raises(ConfigError, match="model must be a model directory"):
        EncoderPretrainConfig(model=str(tmp_path), data=str(tmp_path))
    with pytest.raises(ConfigError, match="clips.jsonl"):
        EncoderPretrainConfig(model=str(tiny_model_dir), data=str(tmp_path))
    (tmp_path / "clips.jsonl").write_text("")
    with pytest.raises(ConfigError, match="steps must be an integer >= 1, got 0"):
        EncoderPretrainConfig(model=str(tiny_model_dir), data=str(tmp_path), steps=0)


def test_a_sharded_model_is_refused_before_training(tmp_path):
    # the encoders are written back into one model.safetensors: a sharded checkpoint must fail
    # here, not after every step has run
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "model.safetensors.index.json").write_text("{}")
    (tmp_path / "clips.jsonl").write_text("")
    with pytest.raises(ConfigError, match="no single model.safetensors"):
        EncoderPretrainConfig(model=str(tmp_path), data=str(tmp_path))


def test_an_infer_recipe_that_is_no_mapping_is_one_line(tmp_path, capsys):
    from vs2_plugin.cli import main

    (tmp_path / "list.yaml").write_text("- video_fps: 1\n")
    argv = ["synth-encoders", "--model", str(tmp_path), "--data", str(tmp_path)]
    assert main([*argv, "--infer-recipe", str(tmp_path / "list.yaml")]) == 2
    assert "list.yaml: expected a mapping" in capsys.readouterr().err


@pytest.fixture(scope="module")
def warm(tmp_path_factory, tiny_model_dir):
    root = tmp_path_factory.mktemp("encoders")
    data = root / "data"
    generate(SynthConfig(out=str(data), seed=3, n_train=6, n_heldout=2, min_seconds=4, max_seconds=6))
    model = root / "model"
    shutil.copytree(tiny_model_dir, model)
    before = load_file(str(model / "model.safetensors"))
    # through the command, as a user runs it (media arguments from the tiny SFT recipe)
    proc = run_cli(["vs2", "synth-encoders", "--model", str(model), "--data", str(data), "--steps", "60"])
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    # library messages go to the log beside the model folder; the terminal shows the step
    assert "[INFO" not in proc.stdout + proc.stderr and "pretrain the encoders (60 steps)" in proc.stdout + proc.stderr
    assert "loading configuration file" in (root / "logs" / "synth_encoders.log").read_text()
    return data, model, before, load_file(str(model / "model.safetensors")), result


def test_pretraining_changes_the_encoders_only(warm):
    _, _, before, after, result = warm
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    encoders = {k for k in before if k.startswith(("model.visual.", "model.audio_encoder."))}
    assert changed and changed <= encoders
    # every trainable encoder tensor moved (the positional table of Whisper is a buffer-like
    # sinusoid parameter and may move too, that is allowed)
    assert len(changed) >= 0.9 * len(encoders)
    assert set(before) == set(after)
    assert result["steps"] == 60 and 0 <= result["heldout_visual_token_exact"] <= 1


def test_pretrained_audio_states_tell_sounds_apart(warm):
    """After pretraining, the Whisper states where a tone sounds differ from silence far more
    than before (random tiny encoders output mostly their positional table)."""
    import wave

    import whisper

    from vs2_plugin.modeling.whisper_encoder import WhisperAudioEncoder

    data, model_dir, before, after, _ = warm
    config = json.loads((model_dir / "config.json").read_text())
    record = next(
        json.loads(line)
        for line in (data / "clips.jsonl").read_text().splitlines()
        if any(e["kind"] in ("tone", "noise", "speech") for e in json.loads(line)["timeline"])
    )
    with wave.open(str(data / record["audio"])) as f:
        pcm = np.frombuffer(f.readframes(f.getnframes()), np.int16).astype(np.float32) / 32768.0
    mel = whisper.log_mel_spectrogram(whisper.pad_or_trim(torch.from_numpy(pcm)), config["audio_config"]["n_mels"])

    def contrast(state: dict) -> float:
        encoder = WhisperAudioEncoder.from_audio_config(config["audio_config"])
        prefix = "model.audio_encoder."
        encoder.load_state_dict({k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)})
        with torch.no_grad():
            states = encoder(mel[None])[0]
        sound = next(e for e in record["timeline"] if e["kind"] in ("tone", "noise", "speech"))
        k = int(sound["time"] / 0.02) + 5
        silent = [j for j in range(0, int(record["duration"] / 0.02), 10) if not _sounding(record, j * 0.02)]
        return float((states[k] - states[silent].mean(0)).norm() / states[silent].std(0).norm())

    assert contrast(after) > 2 * contrast(before)


def _sounding(record: dict, t: float) -> bool:
    return any(
        e["kind"] in ("tone", "noise", "speech") and e["time"] - 0.1 <= t < e["time"] + 1.0 for e in record["timeline"]
    )


def test_an_interrupted_pretraining_says_the_model_is_unchanged(tiny_model_dir, tmp_path, monkeypatch, capsys):
    from vs2_plugin.cli import main
    from vs2_plugin.synth import encoders

    def interrupted(config, progress=None):
        raise KeyboardInterrupt

    monkeypatch.setattr(encoders, "pretrain_encoders", interrupted)
    (tmp_path / "clips.jsonl").write_text("")
    assert main(["synth-encoders", "--model", str(tiny_model_dir), "--data", str(tmp_path)]) == 130
    err = capsys.readouterr().err
    assert "the model is unchanged" in err and "resumes" not in err


@pytest.mark.parametrize(
    "line, problem", [('{"id": "x"', "1: not valid JSON"), ('{"id": "x"}', "1: missing ['split', 'video'")]
)
def test_a_clips_file_that_is_not_vs2_synth_is_one_line(tmp_path, tiny_model_dir, capsys, line, problem):
    from vs2_plugin.cli import main

    (tmp_path / "clips.jsonl").write_text(line + "\n")
    assert main(["synth-encoders", "--model", str(tiny_model_dir), "--data", str(tmp_path), "--steps", "1"]) == 2
    assert f"clips.jsonl:{problem}" in capsys.readouterr().err
