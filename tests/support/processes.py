"""Run this venv's console scripts, and kill a process at a chosen moment."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.support.paths import VENV_BIN


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
