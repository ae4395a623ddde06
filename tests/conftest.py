"""Fixtures for every test area: paths, console-script helpers, the tiny model, one demo run.

How shared test code is laid out (the import mode is ``importlib``, set in ``pyproject.toml``):

- a test body takes what it needs as a fixture defined here, or in its folder's ``conftest.py``
  for what only that folder uses (``tests/gdpo/conftest.py``: gDPO argument dicts and pieces);
- plain code needed when a module is imported (constants in ``parametrize``/``skipif``, paths at
  module level, builders used by module-scoped fixtures) is imported from ``tests.support``;
  the fixtures below are thin wrappers over it, so each helper is written once;
- no test module imports a ``conftest``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support import adapters, processes
from tests.support.paths import MEDIA, REPO, SHARED, VENV_BIN

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("DISABLE_VERSION_CHECK", "1")


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The repository checkout (recipes/, benchmarks/, the README)."""
    return REPO


@pytest.fixture(scope="session")
def venv_bin() -> Path:
    """The folder of this venv's console scripts (``vs2``, ``llamafactory-cli``)."""
    return VENV_BIN


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The shared real data folder (``../shared`` or ``VS2_SHARED_DIR``); it may be absent."""
    return SHARED


@pytest.fixture(scope="session")
def shared_media() -> Path:
    """The shared real media; the test is skipped without them."""
    if not MEDIA.is_dir():
        pytest.skip(f"real media not found at {MEDIA}")
    return MEDIA


@pytest.fixture(scope="session")
def run_cli():
    """``run_cli(args, cwd=None, env=None, timeout=900)``: run a console script of this venv."""
    return processes.run_cli


@pytest.fixture(scope="session")
def kill_when():
    """``kill_when(proc, condition, what, timeout=300)``: SIGKILL ``proc`` once ``condition()`` holds."""
    return processes.kill_when


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """The ``vs2 build-tiny`` model, built once for the whole test session."""
    from vs2_plugin.modeling.tiny import build_tiny_model

    out = tmp_path_factory.mktemp("tiny-model")
    build_tiny_model(out, seed=0)
    return out


@pytest.fixture(scope="session")
def random_adapter():
    """``random_adapter(base_dir, out, seed, aligner)``: save a LoRA adapter with random non-zero weights."""
    return adapters.random_adapter


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory):
    """One ``vs2 demo --out D`` run (as a user starts it: no flags) shared by the tests that read its
    console output, logs and report; ``(D, CompletedProcess)``. A demo costs minutes, so once per session."""
    out = tmp_path_factory.mktemp("demo-run") / "demo"
    res = processes.run_cli(["vs2", "demo", "--out", str(out)], cwd=REPO, timeout=1800)
    assert res.returncode == 0, (res.stdout + res.stderr)[-3000:]
    return out, res
