"""The seam to LLaMA-Factory: only vs2_plugin/integrations/ imports it; the rest goes through
its re-exports, and the non-integration helpers live outside it."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

import vs2_plugin

PACKAGE = Path(vs2_plugin.__file__).parent


def _llamafactory_imports(path: Path) -> list[int]:
    lines = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names = [node.module or ""]
        else:
            continue
        if any(n == "llamafactory" or n.startswith("llamafactory.") for n in names):
            lines.append(node.lineno)
    return lines


def test_no_llamafactory_import_outside_integrations():
    outside = {}
    inside = 0
    for path in sorted(PACKAGE.rglob("*.py")):
        lines = _llamafactory_imports(path)
        if path.relative_to(PACKAGE).parts[0] == "integrations":
            inside += len(lines)
        elif lines:
            outside[str(path.relative_to(PACKAGE))] = lines
    assert outside == {}
    assert inside > 0  # the scan sees imports where they are allowed


def test_the_scan_finds_every_import_form(tmp_path):
    f = tmp_path / "m.py"
    f.write_text(
        "import os\nimport llamafactory\ndef g():\n    from llamafactory.data import x\n"
        "from vs2_plugin.integrations.llamafactory_api import load_model\n"
    )
    assert _llamafactory_imports(f) == [2, 4]


def test_reexports_resolve_to_llamafactory_objects():
    from vs2_plugin.integrations import llamafactory_api

    for name, module in llamafactory_api.EXPORTS.items():
        assert getattr(llamafactory_api, name) is getattr(importlib.import_module(module), name), name
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        llamafactory_api.nope  # noqa: B018


def test_reexports_check_the_version(monkeypatch):
    from vs2_plugin.errors import UnsupportedLlamaFactory
    from vs2_plugin.integrations import llamafactory as integration
    from vs2_plugin.integrations import llamafactory_api

    monkeypatch.setattr(llamafactory_api, "_checked", False)
    monkeypatch.delitem(llamafactory_api.__dict__, "load_model", raising=False)
    monkeypatch.setattr(integration, "installed_version", lambda: "0.9.4")
    with pytest.raises(UnsupportedLlamaFactory, match="0.9.4"):
        llamafactory_api.load_model  # noqa: B018


def test_llamafactory_defaults_are_read_not_retyped():
    from llamafactory.hparams import DataArguments, ModelArguments

    from vs2_plugin.errors import ConfigError
    from vs2_plugin.integrations.llamafactory import argument_default

    assert argument_default("cutoff_len") == DataArguments().cutoff_len
    assert argument_default("video_maxlen") == ModelArguments.__dataclass_fields__["video_maxlen"].default
    with pytest.raises(ConfigError, match="no argument 'nope'"):
        argument_default("nope")


def test_non_integration_helpers_live_outside():
    from vs2_plugin.data import train_check
    from vs2_plugin.pipeline import run_args

    for module in (train_check, run_args):
        assert _llamafactory_imports(Path(module.__file__)) == []
    assert run_args.args_to_dict(["--stage", "gdpo", "--do_train"]) == {"stage": "gdpo", "do_train": "true"}
