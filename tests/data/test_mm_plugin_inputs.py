"""What LLaMA-Factory's API server hands the plugin (paths, base64 streams), the audio flag, and
audio settings from the model's config as transformers loads it."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest
import torch

from tests.support.paths import REPO
from vs2_plugin.errors import DataError, MediaError

MEDIA = REPO / "vs2_plugin" / "assets" / "demo_data" / "media"
AV_CLIP = MEDIA / "drawing.mp4"  # video + audio track


def _pipeline(model_dir, use_audio_in_video=True):
    from llamafactory.data import get_template_and_fix_tokenizer
    from llamafactory.hparams import get_infer_args
    from llamafactory.model import load_tokenizer

    model_args, data_args, _, _ = get_infer_args(
        {
            "model_name_or_path": str(model_dir),
            "template": "video_salmonn2",
            "video_fps": 1.0,
            "video_maxlen": 30,
            "video_max_pixels": 12544,
            "use_audio_in_video": use_audio_in_video,
            "infer_backend": "huggingface",
        }
    )
    tok = load_tokenizer(model_args)
    template = get_template_and_fix_tokenizer(tok["tokenizer"], data_args)
    return template.mm_plugin, tok["processor"], tok["tokenizer"]


@pytest.fixture(scope="module")
def pipeline(tiny_model_dir):
    return _pipeline(tiny_model_dir)


def _prompt_and_inputs(plugin, processor, tokenizer, video):
    msgs = plugin.process_messages([{"role": "user", "content": "<video>Describe."}], [], [video], [], processor)
    ids = tokenizer.encode(msgs[0]["content"], add_special_tokens=False)
    inputs = plugin.get_mm_inputs([], [video], [], [0], [1], [0], [ids], processor)
    return ids, inputs


def test_base64_stream_and_bytes_equal_the_local_path(pipeline):
    """The API server turns a ``data:video/mp4;base64,...`` URL into a BytesIO; both calls of a
    request (process_messages, then get_mm_inputs) get the same stream object."""
    import base64

    plugin, processor, tok = pipeline
    want_ids, want = _prompt_and_inputs(plugin, processor, tok, str(AV_CLIP))
    assert tok.convert_tokens_to_ids("<|audio_pad|>") in want_ids and "audio_features" in want
    stream = io.BytesIO(base64.b64decode(base64.b64encode(AV_CLIP.read_bytes())))
    for item in (stream, AV_CLIP.read_bytes()):
        ids, got = _prompt_and_inputs(plugin, processor, tok, item)
        assert ids == want_ids
        assert got.keys() == want.keys()
        for key in want:
            same = torch.equal(got[key], want[key]) if isinstance(want[key], torch.Tensor) else got[key] == want[key]
            assert same, key


def test_unusable_inputs_are_named(pipeline):
    plugin, processor, _ = pipeline
    with pytest.raises(MediaError, match="in-memory video.*empty"):
        plugin.process_messages([{"role": "user", "content": "<video>x"}], [], [io.BytesIO(b"")], [], processor)
    with pytest.raises(DataError, match="video inputs must be file paths, bytes or byte streams; got int"):
        plugin.process_messages([{"role": "user", "content": "<video>x"}], [], [7], [], processor)
    with pytest.raises(MediaError, match="not a readable media file"):
        plugin.process_messages(
            [{"role": "user", "content": "<video>x"}], [], [io.BytesIO(b"not a video")], [], processor
        )


def test_audio_track_with_flag_off_is_refused_unless_opted_out(tiny_model_dir, monkeypatch):
    from vs2_plugin.data import mm_plugin

    plugin, processor, tok = _pipeline(tiny_model_dir, use_audio_in_video=False)
    with pytest.raises(DataError, match=r"drawing.mp4: the video has an audio track .* VS2_IGNORE_VIDEO_AUDIO=1"):
        plugin.process_messages([{"role": "user", "content": "<video>x"}], [], [str(AV_CLIP)], [], processor)
    silent = MEDIA / "living_room.mp4"  # no audio track: nothing to drop
    plugin.process_messages([{"role": "user", "content": "<video>x"}], [], [str(silent)], [], processor)
    monkeypatch.setenv(mm_plugin.IGNORE_VIDEO_AUDIO_ENV, "1")
    ids, inputs = _prompt_and_inputs(plugin, processor, tok, str(AV_CLIP))
    assert tok.convert_tokens_to_ids("<|audio_pad|>") not in ids and "audio_features" not in inputs


def test_audio_settings_come_from_the_loaded_config_not_a_file(tiny_model_dir, tmp_path, monkeypatch):
    """A hub id served from the local Hugging Face cache (no config.json at that "path"), and a
    config.json without the audio keys (the config class's defaults apply)."""
    import llamafactory.data  # noqa: F401 - registers the plugin first (as in every LLaMA-Factory process)

    from vs2_plugin.data import mm_plugin
    from vs2_plugin.modeling.config import VideoSalmonn2Config

    cache = tmp_path / "hub"
    snapshot = cache / "models--someorg--tiny-vs2" / "snapshots" / ("0" * 40)
    shutil.copytree(tiny_model_dir, snapshot)
    config = json.loads((snapshot / "config.json").read_text())
    config["audio_window_s"] = 0.4
    (snapshot / "config.json").write_text(json.dumps(config))
    (cache / "models--someorg--tiny-vs2" / "refs").mkdir()
    (cache / "models--someorg--tiny-vs2" / "refs" / "main").write_text("0" * 40)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants as hub_constants

    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
    mm_plugin.model_audio_settings.cache_clear()
    try:
        assert not Path("someorg/tiny-vs2").exists()
        settings = mm_plugin.model_audio_settings("someorg/tiny-vs2")
        assert settings.enabled and settings.window_s == 0.4

        bare = tmp_path / "bare"
        shutil.copytree(tiny_model_dir, bare)
        config = json.loads((bare / "config.json").read_text())
        for key in ("audio_window_s", "audio_queries_per_window", "segment_s"):
            config.pop(key, None)
        (bare / "config.json").write_text(json.dumps(config))
        defaults = VideoSalmonn2Config()
        settings = mm_plugin.model_audio_settings(str(bare))
        assert (settings.window_s, settings.queries_per_window, settings.segment_s) == (
            defaults.audio_window_s,
            defaults.audio_queries_per_window,
            defaults.segment_s,
        )

        with pytest.raises(DataError, match="cannot read the model config of 'someorg/absent'"):
            mm_plugin.model_audio_settings("someorg/absent")
    finally:
        mm_plugin.model_audio_settings.cache_clear()
