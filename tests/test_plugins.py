"""The vs2 pluggy manager: built-ins, entry-point discovery, allow-list, duplicates, failures."""

from __future__ import annotations

import sys
import textwrap
from importlib.metadata import EntryPoint

import pytest

from vs2_plugin import plugins


@pytest.fixture
def fake_judge_pkg(tmp_path, monkeypatch):
    (tmp_path / "fake_vs2_judge.py").write_text(
        textwrap.dedent(
            """
            from dataclasses import dataclass

            from vs2_plugin import hookimpl
            from vs2_plugin.judge.registry import Judge

            @dataclass
            class FakeOptions:
                pass

            @hookimpl
            def vs2_register_judges(register):
                register(Judge("fake", "a judge for tests", FakeOptions, lambda items, options, config: ["judged"] * len(items)))
            """
        )
    )
    (tmp_path / "broken_vs2_plugin.py").write_text("raise ImportError('cannot import this plugin')\n")
    (tmp_path / "misspelled_vs2_plugin.py").write_text(
        "from vs2_plugin import hookimpl\n@hookimpl\ndef vs2_register_judgez(register):\n    return None\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv(plugins.ALLOW_ENV, raising=False)
    yield
    for name in ("fake_vs2_judge", "broken_vs2_plugin", "misspelled_vs2_plugin"):
        sys.modules.pop(name, None)


def _ep(name, value):
    return EntryPoint(name, value, plugins.ENTRY_POINT_GROUP)


def test_builtins_are_registered_as_plugins(fake_judge_pkg):
    pm = plugins.build_plugin_manager(entry_points=[])
    names = {n for n, _ in pm.list_name_plugin()}
    assert set(plugins.DEFAULT_PLUGINS) <= names
    assert "offline" in plugins.registered_judges(pm)


def test_discovered_plugin_answers_its_hook(fake_judge_pkg):
    pm = plugins.build_plugin_manager(entry_points=[_ep("fake", "fake_vs2_judge")])
    assert "fake" in plugins.registered_judges(pm)

    judge = plugins.judge_registry(pm)["fake"]
    assert judge.judge_captions([1, 2], judge.parse_options({}), None) == ["judged", "judged"]


def test_allow_list_filters_third_party_plugins(fake_judge_pkg, monkeypatch):
    monkeypatch.setenv(plugins.ALLOW_ENV, "someone_else")
    with pytest.warns(plugins.PluginWarning, match="someone_else"):
        pm = plugins.build_plugin_manager(entry_points=[_ep("fake", "fake_vs2_judge")])
    assert not pm.has_plugin("fake")
    assert "offline" in plugins.registered_judges(pm)  # built-ins always load
    monkeypatch.setenv(plugins.ALLOW_ENV, "fake")
    assert plugins.build_plugin_manager(entry_points=[_ep("fake", "fake_vs2_judge")]).has_plugin("fake")


def test_duplicate_entry_point_is_loaded_once(fake_judge_pkg):
    with pytest.warns(plugins.PluginWarning, match="installed twice"):
        pm = plugins.build_plugin_manager(entry_points=[_ep("fake", "fake_vs2_judge"), _ep("fake", "fake_vs2_judge")])
    assert list(plugins.registered_judges(pm)).count("fake") == 1


def test_broken_plugin_is_reported_by_name_and_host_works(fake_judge_pkg):
    plugins.reset_plugin_manager()
    with pytest.warns(plugins.PluginWarning, match="'broken'.*cannot import this plugin"):
        pm = plugins.build_plugin_manager(
            entry_points=[_ep("broken", "broken_vs2_plugin"), _ep("fake", "fake_vs2_judge")]
        )
    assert pm.has_plugin("fake") and not pm.has_plugin("broken")
    assert "broken" in plugins.load_failures()
    plugins.reset_plugin_manager()


def test_misspelled_hook_is_skipped_by_name_and_host_works(fake_judge_pkg):
    plugins.reset_plugin_manager()
    with pytest.warns(plugins.PluginWarning, match="'typo'.*vs2_register_judgez"):
        pm = plugins.build_plugin_manager(
            entry_points=[_ep("typo", "misspelled_vs2_plugin"), _ep("fake", "fake_vs2_judge")]
        )
    assert not pm.has_plugin("typo") and pm.has_plugin("fake")
    assert "vs2_register_judgez" in plugins.load_failures()["typo"]
    assert {"offline", "fake"} <= set(plugins.registered_judges(pm))
    plugins.reset_plugin_manager()


def test_a_judge_name_taken_twice_keeps_the_first_and_names_both_plugins(fake_judge_pkg, tmp_path):
    (tmp_path / "clash_vs2_judge.py").write_text(
        "from vs2_plugin import hookimpl\n"
        "from vs2_plugin.judge.registry import Judge\n"
        "from fake_vs2_judge import FakeOptions\n"
        "@hookimpl\n"
        "def vs2_register_judges(register):\n"
        "    register(Judge('offline', 'an impostor', FakeOptions, lambda items, options, config: []))\n"
    )
    plugins.reset_plugin_manager()
    pm = plugins.build_plugin_manager(entry_points=[_ep("clash", "clash_vs2_judge")])
    with pytest.warns(
        plugins.PluginWarning, match="'clash'.*'offline' is already registered by plugin 'vs2_plugin.judge.offline'"
    ):
        judges = plugins.judge_registry(pm)
    assert judges["offline"].description != "an impostor"
    assert "already registered" in plugins.load_failures()["clash"]
    assert not pm.has_plugin("clash")  # skipped whole: none of its other hooks runs
    sys.modules.pop("clash_vs2_judge", None)
    plugins.reset_plugin_manager()


def test_vs2_plugins_exits_1_when_a_plugin_failed_to_load(monkeypatch, capsys):
    from vs2_plugin import autoload
    from vs2_plugin.cli import main

    # what this process loaded is the other tests' too: each outcome is set here
    monkeypatch.setattr(autoload, "loaded_plugins", lambda: {"vs2_plugin=...:register": "ok"})
    monkeypatch.setattr(plugins, "load_failures", lambda: {})
    assert main(["plugins"]) == 0
    monkeypatch.setattr(plugins, "load_failures", lambda: {"broken": "cannot import this plugin"})
    assert main(["plugins"]) == 1  # the install check of a CI job must not pass
    assert "broken [FAILED]: cannot import this plugin" in capsys.readouterr().out
    assert main(["plugins", "--json"]) == 1
    monkeypatch.setattr(plugins, "load_failures", lambda: {})
    monkeypatch.setattr(autoload, "loaded_plugins", lambda: {"missing=x:register": "error: ModuleNotFoundError: x"})
    assert main(["plugins"]) == 1  # a LLaMA-Factory plugin that failed counts too


def test_vs2_plugins_reports_a_plugin_whose_judge_registration_fails(fake_judge_pkg, tmp_path, monkeypatch, capsys):
    from vs2_plugin import autoload
    from vs2_plugin.cli import main

    (tmp_path / "raising_vs2_judge.py").write_text(
        "from vs2_plugin import hookimpl\n@hookimpl\ndef vs2_register_judges(register):\n    raise KeyError('oops')\n"
    )
    plugins.reset_plugin_manager()
    monkeypatch.setattr(autoload, "loaded_plugins", lambda: {"vs2_plugin=...:register": "ok"})
    monkeypatch.setattr(
        plugins, "_pm", plugins.build_plugin_manager(entry_points=[_ep("raising", "raising_vs2_judge")])
    )
    with pytest.warns(plugins.PluginWarning, match="'raising'"):
        code = main(["plugins"])
    out = capsys.readouterr().out
    # the install check fails and names the plugin, which is not listed as loaded
    assert code == 1
    assert "raising [FAILED]: vs2_register_judges: KeyError: 'oops'" in out
    assert "raising [installed]" not in out
    sys.modules.pop("raising_vs2_judge", None)
    plugins.reset_plugin_manager()


def test_a_hook_with_wrong_arguments_is_skipped_with_a_one_line_reason(fake_judge_pkg, tmp_path):
    (tmp_path / "wrong_args_vs2_plugin.py").write_text(
        "from vs2_plugin import hookimpl\n"
        "@hookimpl\n"
        "def vs2_select_pairs(samples, thresholds, round):\n"
        "    return None\n"
    )
    plugins.reset_plugin_manager()
    with pytest.warns(plugins.PluginWarning, match="'wrong'"):
        pm = plugins.build_plugin_manager(entry_points=[_ep("wrong", "wrong_args_vs2_plugin")])
    assert not pm.has_plugin("wrong")
    reason = plugins.load_failures()["wrong"]
    assert "'round'" in reason and "\n" not in reason  # a `vs2 plugins` line, not three
    sys.modules.pop("wrong_args_vs2_plugin", None)
    plugins.reset_plugin_manager()


def test_allow_list_warns_about_a_name_no_plugin_has(fake_judge_pkg, monkeypatch):
    monkeypatch.setenv(plugins.ALLOW_ENV, "fkae")
    with pytest.warns(plugins.PluginWarning, match="VS2_PLUGINS names fkae, .*installed: fake"):
        pm = plugins.build_plugin_manager(entry_points=[_ep("fake", "fake_vs2_judge")])
    assert not pm.has_plugin("fake")


def test_after_round_spec_names_what_the_driver_passes():
    # a plugin author writes vs2_after_round from its docstring: every metric the mrDPO driver
    # hands it is named there
    import re

    from vs2_plugin import hookspecs
    from vs2_plugin.judge.types import Judgment
    from vs2_plugin.pipeline.mrdpo import summarize_judged

    judgment = Judgment(id="a", judge="x", n_events=2, missed=["e"]).to_dict()
    metrics = summarize_judged(
        [{"task": task, "caption": "A tone.", "judgment": judgment} for task in ("global", "local")]
    )
    documented = set(re.findall(r"``(\w+)``", hookspecs.vs2_after_round.__doc__)) | {"global", "local"}
    assert set(metrics) <= documented and set(metrics["global"]) <= documented


def test_vs2_plugins_json_shows_option_defaults_json_cannot_hold(fake_judge_pkg, tmp_path, monkeypatch, capsys):
    import json

    from vs2_plugin import autoload
    from vs2_plugin.cli import main

    (tmp_path / "path_option_vs2_judge.py").write_text(
        "from dataclasses import dataclass\n"
        "from pathlib import Path\n"
        "from vs2_plugin import hookimpl\n"
        "from vs2_plugin.judge.registry import Judge\n"
        "@dataclass\n"
        "class Options:\n"
        "    cache_dir: Path = Path('/tmp/cache')\n"
        "@hookimpl\n"
        "def vs2_register_judges(register):\n"
        "    register(Judge('pathy', 'a judge with a Path option', Options, lambda items, options, config: []))\n"
    )
    plugins.reset_plugin_manager()
    monkeypatch.setattr(autoload, "loaded_plugins", lambda: {"vs2_plugin=...:register": "ok"})
    monkeypatch.setattr(
        plugins, "_pm", plugins.build_plugin_manager(entry_points=[_ep("pathy", "path_option_vs2_judge")])
    )
    assert main(["plugins", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["judge_options"]["pathy"] == {"cache_dir": "/tmp/cache"}
    sys.modules.pop("path_option_vs2_judge", None)
    plugins.reset_plugin_manager()


def test_a_hook_that_raises_is_named_with_its_own_traceback_chained():
    from vs2_plugin import hookimpl
    from vs2_plugin.errors import ConfigError

    pm = plugins.build_plugin_manager(entry_points=[])

    class Quiet:
        @hookimpl
        def vs2_after_round(self, round_index, run_dir, metrics):
            return None

    class Tracker:
        @hookimpl
        def vs2_after_round(self, round_index, run_dir, metrics):
            return metrics["global"]["miss"]  # the plugin's own bug: no such key

    pm.register(Quiet(), name="quiet")
    pm.register(Tracker(), name="my-tracker")
    with pytest.raises(plugins.PluginFailure, match=r"plugin 'my-tracker' failed in vs2_after_round: KeyError") as info:
        plugins.call_hook("vs2_after_round", pm, round_index=1, run_dir="run", metrics={})
    assert isinstance(info.value.__cause__, KeyError)  # where it failed in the plugin stays readable

    class Strict:
        @hookimpl(tryfirst=True)
        def vs2_after_round(self, round_index, run_dir, metrics):
            raise ConfigError("my-tracker: no project set")

    pm.register(Strict(), name="strict")
    with pytest.raises(ConfigError, match="no project set"):  # an error meant as one line stays one
        plugins.call_hook("vs2_after_round", pm, round_index=1, run_dir="run", metrics={})
    pm.unregister(name="strict")
    pm.unregister(name="my-tracker")
    assert plugins.call_hook("vs2_after_round", pm, round_index=1, run_dir="run", metrics={}) == []
