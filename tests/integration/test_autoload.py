"""The generic ``llamafactory.plugins`` loader: discovery, opt-out, broken plugins, every process."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from importlib.metadata import EntryPoint

import pytest

from vs2_plugin import autoload


@pytest.fixture
def fake_plugin_module(tmp_path, monkeypatch):
    """A real importable module with a good and a broken plugin function."""
    (tmp_path / "fake_lf_plugin.py").write_text(
        textwrap.dedent(
            """
            CALLS = []
            def good():
                CALLS.append("good")
            def broken():
                raise RuntimeError("boom from broken plugin")
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    import importlib

    mod = importlib.import_module("fake_lf_plugin")
    yield mod
    sys.modules.pop("fake_lf_plugin", None)
    for key in [k for k in autoload._loaded_plugins if "fake_lf_plugin" in k]:
        autoload._loaded_plugins.pop(key)


def test_entry_points_are_called_once(fake_plugin_module):
    ep = EntryPoint("good", "fake_lf_plugin:good", autoload.GROUP)
    status = autoload.load_plugins([ep, ep])
    autoload.load_plugins([ep])
    assert fake_plugin_module.CALLS == ["good"]
    assert status["good=fake_lf_plugin:good"] == "ok"


def test_broken_plugin_warns_by_name_and_others_still_load(fake_plugin_module):
    eps = [
        EntryPoint("broken", "fake_lf_plugin:broken", autoload.GROUP),
        EntryPoint("missing", "no_such_module_xyz:register", autoload.GROUP),
        EntryPoint("good", "fake_lf_plugin:good", autoload.GROUP),
    ]
    with pytest.warns(autoload.PluginLoadWarning) as record:
        status = autoload.load_plugins(eps)
    messages = " ".join(str(w.message) for w in record)
    assert "'broken'" in messages and "boom from broken plugin" in messages
    assert "'missing'" in messages and "no_such_module_xyz" in messages
    assert status["broken=fake_lf_plugin:broken"].startswith("error: RuntimeError")
    assert fake_plugin_module.CALLS == ["good"]


def test_when_imported_runs_after_module_loads(tmp_path, monkeypatch):
    (tmp_path / "late_module_xyz.py").write_text("VALUE = 41\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    seen = []
    autoload.when_imported("late_module_xyz", lambda m: seen.append(m.VALUE + 1))
    assert seen == []
    import late_module_xyz  # noqa: F401

    assert seen == [42]
    autoload.when_imported("late_module_xyz", lambda m: seen.append(m.VALUE))  # already loaded: now
    assert seen == [42, 41]
    sys.modules.pop("late_module_xyz")


def _probe(code: str, **env) -> subprocess.CompletedProcess:
    import os

    full = dict(os.environ, **env)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=full, timeout=300)


def test_plain_llamafactory_import_sees_template_and_stage():
    code = (
        "import llamafactory\n"
        "from llamafactory.data.template import TEMPLATES\n"
        "from llamafactory.extras.constants import TRAINING_STAGES, STAGES_USE_PAIR_DATA\n"
        "print('template', 'video_salmonn2' in TEMPLATES)\n"
        "print('stage', 'gdpo' in TRAINING_STAGES.values(), 'gdpo' in STAGES_USE_PAIR_DATA)\n"
    )
    out = _probe(code, LLAMAFACTORY_PLUGINS_DISABLE="")
    assert out.returncode == 0, out.stderr
    assert "template True" in out.stdout
    assert "stage True True" in out.stdout


def test_opt_out_env_var_disables_autoload():
    code = (
        "import llamafactory\nfrom llamafactory.data.template import TEMPLATES\nprint('video_salmonn2' in TEMPLATES)\n"
    )
    out = _probe(code, LLAMAFACTORY_PLUGINS_DISABLE="1")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "False"


def test_autoload_is_lazy_about_heavy_modules():
    code = "import sys, llamafactory\nprint('torch' in sys.modules, 'llamafactory.train.tuner' in sys.modules)\n"
    out = _probe(code, LLAMAFACTORY_PLUGINS_DISABLE="")
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[-1] == "False"  # the trainer is not imported just because LLaMA-Factory is
