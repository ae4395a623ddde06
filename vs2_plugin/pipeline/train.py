"""Run one LLaMA-Factory training job as a child process (``llamafactory-cli train``).

A child process per stage keeps each run isolated (LLaMA-Factory destroys the process group
at the end of a run, and a crashed run cannot leave state behind in the driver), works the
same for ``FORCE_TORCHRUN=1`` multi-GPU runs, and makes an interrupted stage simply rerun.
Arguments are written to a YAML file next to the outputs so the exact command is on disk.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from vs2_plugin.errors import Vs2Error
from vs2_plugin.gdpo.rounds import atomic_write_text
from vs2_plugin.pipeline import console
from vs2_plugin.secrets import SECRET_ENV_VARS


def llamafactory_cli() -> str:
    here = Path(sys.executable).parent / "llamafactory-cli"
    return str(here) if here.exists() else (shutil.which("llamafactory-cli") or "llamafactory-cli")


def run_training(
    args: dict[str, Any], yaml_path: str | Path, log_path: str | Path, env: dict[str, str] | None = None
) -> None:
    """Write ``args`` to ``yaml_path`` and train; raise :class:`Vs2Error` with the log tail on failure."""
    yaml_path, log_path = Path(yaml_path), Path(log_path)
    atomic_write_text(yaml_path, yaml.safe_dump(args, sort_keys=False))
    full_env = {k: v for k, v in os.environ.items() if k not in SECRET_ENV_VARS}  # training never needs a judge key
    full_env.setdefault("OMP_NUM_THREADS", "1")
    bin_dir = str(Path(sys.executable).parent)
    full_env["PATH"] = bin_dir + os.pathsep + full_env.get("PATH", "")  # torchrun next to the interpreter
    full_env.update(env or {})
    log_path.parent.mkdir(parents=True, exist_ok=True)
    what = "train" if yaml_path.stem == "train" else f"train {yaml_path.stem}"
    progress = console.TrainerLogProgress(args["output_dir"]) if args.get("output_dir") else None
    with open(log_path, "a", encoding="utf-8") as log, console.step(what, progress, unit="step", log=log_path):
        cmd = [llamafactory_cli(), "train", str(yaml_path)]
        if console.active() is None:
            code = subprocess.call(cmd, stdout=log, stderr=subprocess.STDOUT, env=full_env)
        else:  # also into the command's own log (or onto the terminal with --verbose)
            proc = subprocess.Popen(
                cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=full_env, text=True, errors="replace"
            )
            console.tee_lines(proc.stdout, [log, sys.stdout])
            code = proc.wait()
        if code != 0:
            tail = log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-25:]
            raise Vs2Error(
                f"training failed (exit {code}); command: llamafactory-cli train {yaml_path}; log {log_path}:\n"
                + "\n".join(tail)
            )
