"""Shared fixtures: paths to real media, the tiny model (built once per session), helpers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("DISABLE_VERSION_CHECK", "1")

REPO = Path(__file__).resolve().parents[1]
# real media and caption data of ../shared (or VS2_SHARED_DIR); tests that need them skip without them
SHARED = Path(os.environ.get("VS2_SHARED_DIR", REPO.parent / "shared"))
MEDIA = SHARED / "data" / "media"
VENV_BIN = Path(sys.executable).parent


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def shared_media() -> Path:
    if not MEDIA.is_dir():
        pytest.skip(f"real media not found at {MEDIA}")
    return MEDIA


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """The ``vs2 build-tiny`` model, built once for the whole test session."""
    from vs2_plugin.modeling.tiny import build_tiny_model

    out = tmp_path_factory.mktemp("tiny-model")
    build_tiny_model(out, seed=0)
    return out


def run_cli(args: list[str], cwd: Path | None = None, env: dict | None = None, timeout: int = 900):
    """Run a console script of this venv; returns CompletedProcess with text output."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    exe = args[0] if os.path.isabs(args[0]) else str(VENV_BIN / args[0])
    return subprocess.run([exe, *args[1:]], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout)


def kill_when(proc: subprocess.Popen, condition, what: str, timeout: float = 300) -> None:
    """SIGKILL ``proc`` as soon as ``condition()`` holds; fail if it never does or the process ends first."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if condition():
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return
        if proc.poll() is not None:
            err = proc.stderr.read()[-2000:] if proc.stderr else ""
            pytest.fail(f"process ended before it could be killed during {what}: {err}")
        time.sleep(0.02)
    proc.kill()
    pytest.fail(f"never reached {what}")


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory):
    """One ``vs2 demo --out D`` run (as a user starts it: no flags) shared by the tests that read its
    console output, logs and report; ``(D, CompletedProcess)``. A demo costs minutes, so once per session."""
    out = tmp_path_factory.mktemp("demo-run") / "demo"
    res = run_cli(["vs2", "demo", "--out", str(out)], cwd=REPO, timeout=1800)
    assert res.returncode == 0, (res.stdout + res.stderr)[-3000:]
    return out, res
