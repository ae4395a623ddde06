"""`llamafactory-cli api` with the tiny inference recipe and an exported tiny model answers the
OpenAI Python SDK with a caption of a bundled clip sent as a local path and as a base64 data URL."""

from __future__ import annotations

import base64
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.support.paths import REPO
from vs2_plugin.pipeline.config import DEFAULT_GLOBAL_PROMPT

pytestmark = pytest.mark.slow

CLIP = REPO / "vs2_plugin" / "assets" / "demo_data" / "media" / "bigbuckbunny.mp4"  # video + audio track
RECIPE = REPO / "recipes" / "tiny" / "inference" / "video_salmonn2.yaml"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def exported_model(tiny_model_dir, tmp_path_factory, random_adapter) -> Path:
    from vs2_plugin.modeling.export import export_merged

    tmp = tmp_path_factory.mktemp("exported")
    adapter = random_adapter(tiny_model_dir, tmp / "adapter", seed=3, aligner=True)
    return export_merged(tiny_model_dir, [str(adapter)], tmp / "final")


@pytest.fixture(scope="module")
def server(exported_model, tmp_path_factory, venv_bin):
    model = exported_model
    tmp = tmp_path_factory.mktemp("api")
    safe = tmp / "safe_media"
    safe.mkdir()
    shutil.copy(CLIP, safe / CLIP.name)
    port = _free_port()
    env = dict(
        os.environ,
        API_HOST="127.0.0.1",
        API_PORT=str(port),
        SAFE_MEDIA_PATH=str(safe),
        OMP_NUM_THREADS="1",
        API_VERBOSE="0",
    )
    log = open(tmp / "server.log", "w")  # noqa: SIM115 - the server writes to it until the fixture ends
    proc = subprocess.Popen(
        [str(venv_bin / "llamafactory-cli"), "api", str(RECIPE), f"model_name_or_path={model}"],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        import urllib.request

        deadline = time.time() + 300
        while True:
            if proc.poll() is not None:
                pytest.fail(f"the API server exited ({proc.returncode}):\n{(tmp / 'server.log').read_text()[-3000:]}")
            try:
                urllib.request.urlopen(f"{base_url}/models", timeout=2)
                break
            except OSError:
                if time.time() > deadline:
                    pytest.fail(f"the API server did not come up:\n{(tmp / 'server.log').read_text()[-3000:]}")
                time.sleep(1)
        yield {"base_url": base_url, "clip": safe / CLIP.name, "log": tmp / "server.log"}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def _caption(server, url: str) -> str:
    from openai import OpenAI

    client = OpenAI(base_url=server["base_url"], api_key="unused", timeout=300, max_retries=0)
    reply = client.chat.completions.create(
        model="vs2",
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "video_url", "video_url": {"url": url}},
                    {"type": "text", "text": DEFAULT_GLOBAL_PROMPT},
                ],
            }
        ],
    )
    return reply.choices[0].message.content or ""


def test_caption_of_a_local_path(server):
    answer = _caption(server, str(server["clip"]))
    assert answer.strip(), server["log"].read_text()[-3000:]


def test_caption_of_a_base64_data_url(server):
    url = "data:video/mp4;base64," + base64.b64encode(Path(server["clip"]).read_bytes()).decode()
    by_path = _caption(server, str(server["clip"]))
    answer = _caption(server, url)
    assert answer.strip(), server["log"].read_text()[-3000:]
    assert answer == by_path  # greedy decoding: the same clip gives the same caption either way


def test_path_outside_safe_media_is_refused(server):
    from openai import APIStatusError

    with pytest.raises(APIStatusError):
        _caption(server, str(CLIP))  # the bundled original, outside SAFE_MEDIA_PATH


def test_llamafactory_cli_chat_loads_the_exported_model(exported_model, venv_bin):
    proc = subprocess.run(
        [str(venv_bin / "llamafactory-cli"), "chat", str(RECIPE), f"model_name_or_path={exported_model}"],
        cwd=REPO,
        input="Describe a video.\nexit\n",
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ, OMP_NUM_THREADS="1"),
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    reply = proc.stdout.split("Assistant: ", 1)[1].split("\nUser:", 1)[0]
    assert reply.strip(), proc.stdout[-2000:]


def test_llamafactory_cli_webchat_loads_the_exported_model(exported_model, tmp_path, venv_bin):
    """The web chat loads the model from the command line before it serves its page."""
    import urllib.request

    port = _free_port()
    env = dict(
        os.environ,
        GRADIO_SERVER_NAME="127.0.0.1",
        GRADIO_SERVER_PORT=str(port),
        OMP_NUM_THREADS="1",
        BROWSER="true",
        GRADIO_ANALYTICS_ENABLED="False",
    )
    with open(tmp_path / "webchat.log", "w") as log:
        proc = subprocess.Popen(
            [str(venv_bin / "llamafactory-cli"), "webchat", str(RECIPE), f"model_name_or_path={exported_model}"],
            cwd=tmp_path,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.time() + 300
            while True:
                assert proc.poll() is None, (tmp_path / "webchat.log").read_text()[-3000:]
                try:
                    page = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2).read().decode()
                    break
                except OSError:
                    assert time.time() < deadline, (tmp_path / "webchat.log").read_text()[-3000:]
                    time.sleep(1)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
    assert "LLaMA Factory Web Demo" in page
    text = (tmp_path / "webchat.log").read_text()
    assert f"loading weights file {exported_model}/model.safetensors" in text and "all params:" in text
    assert "Traceback" not in text
