"""LLaMA-Factory's API server (``llamafactory-cli api``'s app, in process, on the tiny model): a
request whose video the plugin cannot read is answered 400 naming the video and what is wrong,
not 500 with a traceback."""

from __future__ import annotations

import base64
import shutil

import pytest

from tests.support.paths import REPO

CLIP = REPO / "vs2_plugin" / "assets" / "demo_data" / "media" / "drawing.mp4"


@pytest.fixture(scope="module")
def api(tiny_model_dir, tmp_path_factory):
    from fastapi.testclient import TestClient
    from llamafactory.api import common
    from llamafactory.api.app import create_app
    from llamafactory.chat import ChatModel

    safe = tmp_path_factory.mktemp("safe_media")
    chat_model = ChatModel(
        {
            "model_name_or_path": str(tiny_model_dir),
            "template": "video_salmonn2",
            "infer_backend": "huggingface",
            "infer_dtype": "float32",
            "max_new_tokens": 4,
            "video_fps": 1.0,
            "video_maxlen": 30,
            "video_max_pixels": 12544,
            "use_audio_in_video": True,
        }
    )
    patch = pytest.MonkeyPatch()
    patch.setattr(common, "SAFE_MEDIA_PATH", str(safe))  # read once at import: LLaMA-Factory's SAFE_MEDIA_PATH
    patch.setenv("API_VERBOSE", "0")
    try:
        with TestClient(create_app(chat_model), raise_server_exceptions=False) as client:
            yield client, safe
    finally:
        patch.undo()


def _ask(client, url: str):
    return client.post(
        "/v1/chat/completions",
        json={
            "model": "vs2",
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "video_url", "video_url": {"url": url}},
                        {"type": "text", "text": "Describe."},
                    ],
                }
            ],
        },
    )


def test_a_readable_video_is_captioned(api):
    client, safe = api
    shutil.copy(CLIP, safe / CLIP.name)
    reply = _ask(client, str(safe / CLIP.name))
    assert reply.status_code == 200, reply.text


@pytest.mark.parametrize("content", [b"just some text\n", b""], ids=["text", "empty"])
def test_an_unreadable_local_video_is_a_400_naming_it(api, content):
    client, safe = api
    video = safe / f"notes-{len(content)}.mp4"
    video.write_bytes(content)
    reply = _ask(client, str(video))
    assert reply.status_code == 400, reply.text
    detail = reply.json()["detail"]
    assert detail.startswith(f"{video}: ") and "Traceback" not in detail, detail


def test_an_unreadable_uploaded_video_is_a_400(api):
    client, _ = api
    url = "data:video/mp4;base64," + base64.b64encode(b"\x00\x01 not a video container" * 64).decode()
    reply = _ask(client, url)
    assert reply.status_code == 400, reply.text
    detail = reply.json()["detail"]
    # named as the client knows it, not by the server's copy (a hash in a temporary folder)
    assert detail.startswith("uploaded file (1,536 bytes): not a readable media file"), detail
    assert "vs2_media_" not in detail and "Errno" not in detail, detail  # nor FFmpeg's copy of the path


def test_the_error_is_still_the_plugins_own_for_its_other_callers(api, tmp_path):
    from llamafactory.data.template import TEMPLATES

    from vs2_plugin.errors import MediaError

    bad = tmp_path / "bad.mp4"
    bad.write_text("not a video")
    plugin = TEMPLATES["video_salmonn2"].mm_plugin
    with pytest.raises(MediaError, match="bad.mp4: ") as caught:
        plugin.process_messages([{"role": "user", "content": "<video>x"}], [], [str(bad)], [], None)
    assert caught.value.path == str(bad) and caught.value.problem and str(caught.value).startswith(f"{bad}: ")
