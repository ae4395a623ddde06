"""README.md opens with the two commands a fresh machine runs; keep them true.

The first fenced block of the README holds exactly two commands: the demo (main job) and the
test command. `.ci/run` must call the very same test command; both must name things that
exist (the setup script, the console script and its subcommand, the tests folder), and every
recipe or benchmark path the README or a docs/ page mentions must exist.
"""

from __future__ import annotations

import re
import shlex
import subprocess

from tests.support.paths import REPO

README = (REPO / "README.md").read_text(encoding="utf-8")
# The manual: the README and the docs/ pages it links to (what moved there is kept true here too).
MANUAL = README + "".join(p.read_text(encoding="utf-8") for p in sorted((REPO / "docs").glob("*.md")))


def _opening_commands() -> list[str]:
    block = re.search(r"```(?:bash|sh)?\n(.*?)```", README, re.S)
    assert block, "README.md has no fenced command block"
    return [line.strip() for line in block.group(1).splitlines() if line.strip() and not line.strip().startswith("#")]


def test_readme_opens_with_two_commands():
    head = README.split("```")[0]
    assert len(head.splitlines()) < 15, "the commands must come first, before the long text"
    demo, tests = _opening_commands()
    assert "vs2 demo" in demo and demo.startswith("bash .ci/setup && ")
    assert "pytest" in tests and tests.startswith("bash .ci/setup && ")


def test_ci_runs_the_readme_test_command():
    _, tests = _opening_commands()
    ci_lines = [line.strip() for line in (REPO / ".ci" / "run").read_text().splitlines()]
    assert tests in ci_lines, f".ci/run does not call the README's test command: {tests}"


def test_demo_command_names_real_things(venv_bin):
    demo, _ = _opening_commands()
    words = shlex.split(demo.replace("&&", " "))
    assert (REPO / ".ci" / "setup").is_file()
    exe = next(w for w in words if w.endswith("/vs2"))
    assert exe == ".venv/bin/vs2"
    sub = words[words.index(exe) + 1]
    out = subprocess.run([str(venv_bin / "vs2"), sub, "--help"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "--out" in out.stdout, out.stderr


def test_paths_named_in_the_readme_exist():
    named = set(re.findall(r"\b((?:recipes|benchmarks|hooks|tests)/[\w./-]+\.(?:yaml|json|py|toml))", MANUAL))
    assert named, "the README and docs/ name no recipe or script"
    missing = sorted(p for p in named if not (REPO / p).exists())
    assert not missing, f"README or docs/ name files that do not exist: {missing}"
