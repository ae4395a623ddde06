"""Every ``vs2`` subcommand is a thin module in vs2_plugin/commands/; library modules hold no parsers."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import vs2_plugin
from vs2_plugin.cli import SUBCOMMANDS

PACKAGE = Path(vs2_plugin.__file__).parent
#: judge subcommands, moved with the judge package's own restructuring
NOT_YET = {"eval": "vs2_plugin.judge.cli_eval", "pairs": "vs2_plugin.judge.cli_pairs"}


def _defines(path: Path, names: set[str]) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {n.name for n in tree.body if isinstance(n, ast.FunctionDef)} & names


def test_subcommands_live_in_commands():
    for name, (module, _help) in SUBCOMMANDS.items():
        if NOT_YET.get(name) == module:
            continue
        assert module.startswith("vs2_plugin.commands."), f"vs2 {name} -> {module}"
        loaded = importlib.import_module(module)
        assert callable(loaded.configure_parser) and callable(loaded.run) and loaded.__doc__, module


def test_no_parser_outside_commands():
    allowed = {PACKAGE / (m.removeprefix("vs2_plugin.").replace(".", "/") + ".py") for m in NOT_YET.values()}
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.relative_to(PACKAGE).parts[0] == "commands" or path in allowed or path.name == "cli.py":
            continue
        if _defines(path, {"configure_parser"}):
            found.append(str(path.relative_to(PACKAGE)))
    assert found == []


def test_wrappers_are_thin():
    from vs2_plugin.cli import SUBCOMMANDS

    modules = {module for module, _ in SUBCOMMANDS.values()}
    assert all(m.startswith("vs2_plugin.commands.") for m in modules), modules
    for module in sorted(modules):  # (commands/judge_args.py is the eval/pairs flags, not a subcommand)
        path = PACKAGE / "commands" / (module.rsplit(".", 1)[1] + ".py")
        tree = ast.parse(path.read_text())
        functions = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
        assert {"configure_parser", "run"} <= functions, path.name
        assert functions <= {"configure_parser", "run", "collect"}, f"{path.name}: library code {functions}"
        assert not [n for n in tree.body if isinstance(n, ast.ClassDef)], path.name
        # thin = few statements (argparse calls and a call into the library), whatever the line wrapping
        statements = sum(isinstance(n, ast.stmt) for n in ast.walk(tree))
        assert statements <= 50, f"{path.name}: {statements} statements"


def test_layout_shows_the_pipeline():
    for moved in ("media.py", "interleave.py", "rounds.py"):
        assert not (PACKAGE / moved).exists(), moved
    for module in ("vs2_plugin.data.media", "vs2_plugin.modeling.interleave", "vs2_plugin.gdpo.rounds"):
        importlib.import_module(module)
