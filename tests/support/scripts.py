"""Import a script of ``benchmarks/`` or ``scripts/`` (not a package) as a module, for tests of its functions."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from tests.support.paths import REPO


def load_script(relative_path: str) -> ModuleType:
    """``load_script("benchmarks/learning.py")``: the file executed as module ``script_<stem>``."""
    path = REPO / relative_path
    spec = importlib.util.spec_from_file_location(f"script_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses of the script resolve their module
    spec.loader.exec_module(module)
    return module


def run_timed_sft_benchmark(name: str, work: Path, clips: int, steps: int) -> dict:
    """Run ``benchmarks/<name>.py`` (a timed tiny-SFT comparison) once, small, in ``work``; its JSON."""
    import json

    out = work / f"{name}.json"
    argv = ["--out", str(work / "work"), "--clips", str(clips), "--steps", str(steps), "--repeats", "1"]
    assert load_script(f"benchmarks/{name}.py").main([*argv, "--results", str(out)]) == 0
    return json.loads(out.read_text())
