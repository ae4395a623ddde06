"""VideoSalmonn2Config: paper defaults, derived audio geometry, validation, save/load."""

from __future__ import annotations

import pytest

from vs2_plugin.errors import ConfigError
from vs2_plugin.modeling.config import VideoSalmonn2Config

TINY_AUDIO = dict(n_mels=80, n_audio_ctx=1500, n_audio_state=32, n_audio_head=2, n_audio_layer=2)


def test_paper_defaults():
    config = VideoSalmonn2Config()
    assert config.model_type == "video_salmonn2"
    assert config.audio_config["n_mels"] == 128 and config.audio_config["n_audio_layer"] == 32  # Whisper-large-v3
    assert config.audio_window_frames == 10  # 0.2 s at 50 encoder frames per second
    assert config.audio_tokens_per_segment == 150  # sec. 4.1: 150 tokens per 30 s
    assert config.qformer_layers == 2 and config.audio_queries_per_window == 1
    assert config.segment_position == "learned"


def test_public_code_window():
    config = VideoSalmonn2Config(audio_window_s=0.5, audio_config=TINY_AUDIO)
    assert config.audio_tokens_per_segment == 60  # 0.5 s windows -> 60 tokens per 30 s
    assert VideoSalmonn2Config(audio_queries_per_window=2).audio_tokens_per_segment == 300


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(audio_window_s=0.33), "audio_window_s=0.33"),
        (dict(audio_window_s=0.7), "audio_window_s=0.7"),  # 35 frames do not divide 1500
        (dict(audio_window_s=-1.0), "audio_window_s must be a positive"),
        (dict(segment_position="rotary"), "'rotary'"),
        (dict(qformer_layers=0), "qformer_layers must be a positive integer, got 0"),
        (dict(qformer_hidden=100, qformer_heads=12), "qformer_hidden=100"),
        (dict(segment_s=20.0), "segment_s=20.0"),
        (dict(audio_config=dict(n_mels=80, n_layers=3)), "unknown keys \\['n_layers'\\]"),
        (dict(audio_config=dict(n_audio_state=30, n_audio_head=4)), "n_audio_state=30"),
    ],
)
def test_validation_names_the_bad_value(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        VideoSalmonn2Config(**kwargs)


def test_save_load_round_trip(tmp_path):
    config = VideoSalmonn2Config(
        audio_config=TINY_AUDIO,
        audio_window_s=0.5,
        segment_position="sinusoidal",
        max_audio_segments=8,
        text_config=dict(
            hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, intermediate_size=64
        ),
    )
    config.save_pretrained(tmp_path)
    loaded = VideoSalmonn2Config.from_pretrained(tmp_path)
    assert loaded.audio_config == TINY_AUDIO
    assert (loaded.audio_window_s, loaded.segment_position, loaded.max_audio_segments) == (0.5, "sinusoidal", 8)
    assert loaded.text_config.hidden_size == 64
