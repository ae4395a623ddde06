"""Shared fixtures: paths to real media, the tiny model (built once per session), helpers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("DISABLE_VERSION_CHECK", "1")

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
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
