"""The audio geometry is written once (modeling/geometry.py) and a model's own values win everywhere."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

import vs2_plugin
from vs2_plugin.cli import main
from vs2_plugin.errors import ConfigError
from vs2_plugin.modeling.geometry import AUDIO_DEFAULTS, AudioGeometry, read_model_config

PACKAGE = Path(vs2_plugin.__file__).parent


def _numeric_constants(value: float) -> list[str]:
    """``file:line`` of every numeric literal equal to ``value`` in the package's code (docstrings
    and comments are text, so examples there do not count)."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.relative_to(PACKAGE).parts[0] == "synth":
            continue  # the synthetic-clip generator: event probabilities and timings, no audio geometry
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and type(node.value) is type(value) and node.value == value:
                found.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
    return found


def test_paper_geometry_hand_worked():
    # sec. 4.1: 30 s -> 1500 encoder states; 0.2 s windows of 10 states, one query -> 150 tokens
    g = AUDIO_DEFAULTS
    assert (g.window_s, g.queries_per_window, g.segment_s) == (0.2, 1, 30.0)
    assert (g.segment_frames, g.window_frames, g.tokens_per_segment) == (1500, 10, 150)
    assert AudioGeometry(window_s=0.5, queries_per_window=2).tokens_per_segment == 120  # 60 windows x 2


def test_window_default_written_once():
    assert _numeric_constants(0.2) == ["modeling/geometry.py:" + str(_field_line("window_s"))]


def test_segment_default_written_once():
    # 30.0 (float) is the segment length; 1500 encoder states derive from it
    assert _numeric_constants(30.0) == ["modeling/geometry.py:" + str(_field_line("segment_s"))]
    assert _numeric_constants(1500) == []


def _field_line(name: str) -> int:
    source = (PACKAGE / "modeling" / "geometry.py").read_text(encoding="utf-8")
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.AnnAssign) and getattr(node.target, "id", None) == name:
            return node.lineno
    raise AssertionError(f"AudioGeometry.{name} not found")


def test_defaults_flow_from_the_geometry():
    from vs2_plugin.data.model_audio import AudioSettings
    from vs2_plugin.data.token_report import DEFAULTS
    from vs2_plugin.modeling.config import VideoSalmonn2Config
    from vs2_plugin.modeling.interleave import audio_token_count
    from vs2_plugin.modeling.rope import RopeTokens

    config = VideoSalmonn2Config()
    assert (config.audio_window_s, config.audio_queries_per_window, config.segment_s) == (0.2, 1, 30.0)
    assert config.audio_tokens_per_segment == AUDIO_DEFAULTS.tokens_per_segment
    assert RopeTokens(0, 1, 2).audio_window_s == AUDIO_DEFAULTS.window_s
    assert AudioSettings(enabled=True).window_s == DEFAULTS["window_s"] == AUDIO_DEFAULTS.window_s
    assert audio_token_count(30.0) == 150


def test_from_config_reads_dicts_and_objects():
    raw = {
        "model_type": "video_salmonn2",
        "audio_window_s": 0.5,
        "audio_queries_per_window": 2,
        "audio_config": {"n_mels": 80, "n_audio_ctx": 1500},
    }
    g = AudioGeometry.from_config(raw)
    assert (g.window_s, g.queries_per_window, g.n_mels, g.encoder_frames_per_second) == (0.5, 2, 80, 50)
    from vs2_plugin.modeling.config import VideoSalmonn2Config

    assert AudioGeometry.from_config(VideoSalmonn2Config(audio_window_s=0.4)).window_s == 0.4
    assert AudioGeometry.from_config({}) == AUDIO_DEFAULTS


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"audio_window_s": 0.33}, "whole number of encoder frames"),
        ({"audio_window_s": 0.14}, "does not divide"),
        ({"audio_queries_per_window": 0}, "queries_per_window"),
        ({"audio_window_s": "x"}, "window_s"),
    ],
)
def test_bad_geometry_names_the_value(bad, message):
    with pytest.raises(ConfigError, match=message):
        AudioGeometry.from_config(bad)


def test_read_model_config_names_a_bad_file(tmp_path):
    assert read_model_config(tmp_path) == {}
    (tmp_path / "config.json").write_text("[1, 2]")
    with pytest.raises(ConfigError, match="config.json: expected a JSON object"):
        read_model_config(tmp_path)


def test_half_second_window_round_trip(tmp_path, shared_media, capsys):
    """``vs2 build-tiny --window 0.5`` pins 0.5 s; every reader of the model sees 0.5 s."""
    model = tmp_path / "tiny-0.5"
    assert main(["build-tiny", "--out", str(model), "--window", "0.5"]) == 0
    capsys.readouterr()
    assert json.loads((model / "config.json").read_text())["audio_window_s"] == 0.5
    assert AudioGeometry.from_config(read_model_config(model)).window_s == 0.5

    from vs2_plugin.data.model_audio import model_audio_settings

    assert model_audio_settings(str(model)).window_s == 0.5  # what the data plugin and data check use
    from transformers import AutoConfig

    assert AutoConfig.from_pretrained(model).audio_tokens_per_segment == 60

    assert main(["tokens", str(shared_media / "bigbuckbunny.mp4"), "--model", str(model)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["settings"]["window_s"] == 0.5
    assert report["audio_tokens_total"] == 11  # 5.312 s of audio -> ceil(5.312 / 0.5) windows

    # and without --window the builder falls through to the paper's geometry
    default = tmp_path / "tiny-default"
    assert main(["build-tiny", "--out", str(default)]) == 0
    assert json.loads((default / "config.json").read_text())["audio_window_s"] == AUDIO_DEFAULTS.window_s


def test_video_sampling_and_llamafactory_caps_are_not_retyped():
    from llamafactory.hparams import ModelArguments

    from vs2_plugin.data.mm_plugin import _pixel_caps, _sampling
    from vs2_plugin.data.token_report import DEFAULTS
    from vs2_plugin.modeling.geometry import VIDEO_DEFAULTS

    assert (DEFAULTS["fps"], DEFAULTS["max_frames"]) == (VIDEO_DEFAULTS.fps, VIDEO_DEFAULTS.max_frames) == (1.0, 30)

    class Bare:  # a processor LLaMA-Factory did not configure
        pass

    assert _sampling(Bare()) == (1.0, 30)
    fields = ModelArguments.__dataclass_fields__
    assert _pixel_caps(Bare()) == (fields["video_max_pixels"].default, fields["video_min_pixels"].default)
    configured = Bare()
    configured.video_fps, configured.video_maxlen, configured.video_max_pixels, configured.video_min_pixels = (
        2.0,
        8,
        999,
        9,
    )
    assert _sampling(configured) == (2.0, 8) and _pixel_caps(configured) == (999, 9)
    source = (PACKAGE / "data" / "mm_plugin.py").read_text()
    assert "256 * 256" not in source and "16 * 16" not in source


def test_metadata_only_frame_caps_match_llamafactory():
    """``vs2 tokens`` must not import LLaMA-Factory (seconds); its copy of the caps is checked here."""
    from llamafactory.hparams import ModelArguments

    from vs2_plugin.data.token_report import DEFAULTS
    from vs2_plugin.modeling import interleave

    fields = ModelArguments.__dataclass_fields__
    assert interleave.LF_VIDEO_MAX_PIXELS == fields["video_max_pixels"].default == DEFAULTS["video_max_pixels"]
    assert interleave.LF_VIDEO_MIN_PIXELS == fields["video_min_pixels"].default == DEFAULTS["video_min_pixels"]
