"""`pip install` of the package into an environment that already has its own torch 2.x build
(here: 2.9.1+cu128, with the matching torchvision and torchaudio) keeps that build.

No gigabytes are downloaded: a fresh virtual environment gets the metadata (``*.dist-info``) of
every package of this test environment, so pip sees LLaMA-Factory and the rest as installed with
their real requirements, except torch / torchvision / torchaudio, which are replaced by metadata
of another build. pip then resolves the built wheel offline (``--no-index --dry-run``): whatever
it would have to install is in its report. A pinned ``torch==2.14.1`` (the old requirement) is
the control: pip must refuse it here.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

OTHER_BUILD = {
    "torch": ("2.9.1+cu128", []),
    "torchvision": ("0.24.1+cu128", ["torch==2.9.1"]),
    "torchaudio": ("2.9.1+cu128", ["torch==2.9.1"]),
}
#: not copied: the package itself (what is being installed) and the new environment's own pip
SKIP = {"torch", "torchvision", "torchaudio", "vs2_plugin", "pip"}


def _dist_name(dist_info: Path) -> str:
    for line in (dist_info / "METADATA").read_text(encoding="utf-8", errors="replace").splitlines():
        if line.startswith("Name:"):
            return line.split(":", 1)[1].strip().lower().replace("_", "-")
    return ""


def _fake_dist(site: Path, name: str, version: str, requires: list[str]) -> None:
    info = site / f"{name}-{version}.dist-info"
    info.mkdir()
    lines = [
        "Metadata-Version: 2.1",
        f"Name: {name}",
        f"Version: {version}",
        *[f"Requires-Dist: {r}" for r in requires],
    ]
    (info / "METADATA").write_text("\n".join(lines) + "\n")
    (info / "INSTALLER").write_text("pip\n")
    (info / "RECORD").write_text("")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory, repo_root) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    res = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(repo_root)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if res.returncode != 0 and "hatchling" in res.stderr and "No matching distribution" in res.stderr:
        pytest.skip("the build backend (hatchling) cannot be installed here")
    assert res.returncode == 0, res.stderr[-2000:]
    (path,) = out.glob("vs2_plugin-*.whl")
    return path


@pytest.fixture(scope="module")
def gpu_env(tmp_path_factory) -> Path:
    env = tmp_path_factory.mktemp("gpu-env")
    subprocess.run([sys.executable, "-m", "venv", str(env)], check=True, timeout=300)
    python = env / "bin" / "python"
    site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    for info in Path(sysconfig.get_paths()["purelib"]).glob("*.dist-info"):
        name = _dist_name(info)
        if name and name not in SKIP and not (site / info.name).exists():
            shutil.copytree(info, site / info.name)
    for name, (version, requires) in OTHER_BUILD.items():
        _fake_dist(site, name, version, requires)
    return python


def _dry_run(python: Path, *targets: str, tmp: Path) -> tuple[subprocess.CompletedProcess, dict]:
    report = tmp / "report.json"
    report.unlink(missing_ok=True)
    res = subprocess.run(
        [str(python), "-m", "pip", "install", "--dry-run", "--no-index", "--quiet", "--report", str(report), *targets],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    return res, (json.loads(report.read_text()) if report.is_file() else {})


def test_the_environments_torch_build_is_kept(gpu_env, wheel, tmp_path):
    res, report = _dry_run(gpu_env, str(wheel), tmp=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    installed = {
        item["metadata"]["name"].lower().replace("_", "-"): item["metadata"]["version"] for item in report["install"]
    }
    assert installed == {"vs2-plugin": "0.1.0"}, installed  # nothing else: torch 2.9.1+cu128 stays
    torch_version = subprocess.run(
        [str(gpu_env), "-m", "pip", "show", "torch"], capture_output=True, text=True, check=True
    ).stdout
    assert "Version: 2.9.1+cu128" in torch_version


def test_control_a_torch_pin_would_replace_it(gpu_env, wheel, tmp_path):
    """The requirement the package used to have: pip cannot keep the build (and offline finds no other)."""
    res, report = _dry_run(gpu_env, str(wheel), "torch==2.14.1", tmp=tmp_path)
    assert res.returncode != 0 and "torch==2.14.1" in res.stderr, (res.stderr[-2000:], report)
