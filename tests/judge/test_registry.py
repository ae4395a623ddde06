"""Judges as registered objects: a third judge, dispatch by name, options parsed per judge."""

from __future__ import annotations

import dataclasses
import json
import sys
import textwrap
from importlib.metadata import EntryPoint

import pytest

from tests.support.paths import REPO
from vs2_plugin import plugins
from vs2_plugin.errors import ConfigError
from vs2_plugin.judge.config import JudgeConfig
from vs2_plugin.judge.offline import OfflineOptions
from vs2_plugin.judge.registry import Judge
from vs2_plugin.judge.runner import (
    extract_events,
    get_judge,
    judge_items,
    require_judge,
)

ITEM = {"id": "v1", "caption": "A man waves at the camera.", "events": ["A man waves", "A dog barks"]}


@pytest.fixture
def third_judge_pm(tmp_path, monkeypatch):
    """A manager holding the built-ins and a third judge, 'length', registered through the hook."""
    (tmp_path / "length_vs2_judge.py").write_text(
        textwrap.dedent(
            """
            from dataclasses import dataclass

            from vs2_plugin import hookimpl
            from vs2_plugin.errors import ConfigError
            from vs2_plugin.judge.registry import Judge
            from vs2_plugin.judge.types import Judgment

            CALLS = []

            @dataclass
            class LengthOptions:
                min_words: int = 3

                def __post_init__(self):
                    if not isinstance(self.min_words, int) or self.min_words < 1:
                        raise ConfigError(f"length judge: min_words must be an integer >= 1, got {self.min_words!r}")

            def judge_captions(items, options, config):
                CALLS.append(("judge", options, config.judge))
                out = []
                for item in items:
                    short = len(item.caption.split()) < options.min_words
                    missed = list(item.events) if short else []
                    out.append(Judgment(id=item.id, judge="length", n_events=len(item.events),
                                        event_scores=[0.0 if short else 1.0] * len(item.events), missed=missed))
                return out

            def extract_events(references, options, config):
                CALLS.append(("extract", options, config.judge))
                return [[s.strip() for s in r.split(".") if s.strip()] for r in references]

            @hookimpl
            def vs2_register_judges(register):
                register(Judge("length", "judges by caption length (tests)", LengthOptions, judge_captions, extract_events))
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv(plugins.ALLOW_ENV, raising=False)
    pm = plugins.build_plugin_manager(
        entry_points=[EntryPoint("length", "length_vs2_judge", plugins.ENTRY_POINT_GROUP)]
    )
    yield pm, sys.modules["length_vs2_judge"]
    sys.modules.pop("length_vs2_judge", None)


def test_third_judge_is_selected_by_name_with_its_own_options(third_judge_pm):
    pm, module = third_judge_pm
    assert {"offline", "length"} <= set(plugins.registered_judges(pm))
    config = JudgeConfig(judge="length", show_progress=False, options={"min_words": 10})
    [judgment] = judge_items([ITEM], config, pm=pm)
    kind, options, name = module.CALLS[-1]
    assert (kind, name) == ("judge", "length")
    assert type(options).__name__ == "LengthOptions" and options.min_words == 10
    # 6 words < 10: every event missed, so the miss rate is 1 (the offline judge would find "A man waves")
    assert judgment.judge == "length" and judgment.missed == ITEM["events"]
    assert judgment.rates()["miss_rate"] == 1.0
    [short_ok] = judge_items([ITEM], JudgeConfig(judge="length", show_progress=False, options={"min_words": 2}), pm=pm)
    assert short_ok.missed == [] and module.CALLS[-1][1].min_words == 2


def test_third_judge_extracts_events_when_items_have_only_a_reference(third_judge_pm):
    pm, module = third_judge_pm
    config = JudgeConfig(judge="length", show_progress=False)
    assert extract_events(["A man waves. A dog barks."], config, pm=pm) == [["A man waves", "A dog barks"]]
    [judgment] = judge_items(
        [{"id": "r", "caption": "A man waves and a dog barks.", "reference": "A man waves. A dog barks."}],
        config,
        pm=pm,
    )
    assert [c[0] for c in module.CALLS] == ["extract", "extract", "judge"]
    assert judgment.n_events == 2 and module.CALLS[-1][1].min_words == 3  # the dataclass default


def test_an_item_without_events_fails_in_the_host_and_never_reaches_the_judge(third_judge_pm):
    pm, module = third_judge_pm
    config = JudgeConfig(judge="length", show_progress=False)
    empty, judged = judge_items([{"id": "e", "caption": "A man waves.", "events": []}, ITEM], config, pm=pm)
    assert empty.status == "failed" and "no events to judge against" in empty.error
    assert judged.ok and judged.id == ITEM["id"]
    assert [c[0] for c in module.CALLS] == ["judge"]  # one call, for ITEM alone


def test_third_judge_option_is_validated_by_its_dataclass(third_judge_pm):
    pm, _ = third_judge_pm
    with pytest.raises(ConfigError, match=r"length judge: min_words must be an integer >= 1, got 0"):
        require_judge(JudgeConfig(judge="length", options={"min_words": 0}), pm=pm)
    with pytest.raises(
        ConfigError, match=r"unknown option\(s\) \['model'\] for judge 'length'; its options: \['min_words'\]"
    ):
        require_judge(JudgeConfig(judge="length", options={"model": "gpt-4.1"}), pm=pm)


def test_judge_config_has_no_openai_specific_field():
    names = {f.name for f in dataclasses.fields(JudgeConfig)}
    assert names == {"judge", "show_progress", "cache_path", "options"}
    openai_words = (
        "model",
        "base_url",
        "api_key",
        "price",
        "passes",
        "concurrency",
        "retries",
        "timeout",
        "temperature",
        "token",
    )
    assert not [n for n in names for w in openai_words if w in n]


def test_openai_options_live_in_the_openai_judge_package():
    pytest.importorskip("openai")
    from vs2_openai_judge.options import OpenAIOptions

    judge = get_judge("openai")
    assert judge.options is OpenAIOptions
    options = judge.parse_options({"model": "gpt-4.1", "passes": 7, "concurrency": 16})
    assert (options.model, options.passes, options.concurrency) == ("gpt-4.1", 7, 16)
    with pytest.raises(ConfigError, match=r"openai judge: passes must be an integer >= 1, got 0"):
        judge.parse_options({"passes": 0})
    with pytest.raises(ConfigError, match=r"unknown option\(s\) \['miss_threshold'\] for judge 'openai'"):
        judge.parse_options({"miss_threshold": 0.4})


def test_unknown_judge_name_lists_the_registered_ones():
    with pytest.raises(ConfigError, match=r"no judge named 'nope' is registered; available: \[.*'offline'.*\]"):
        require_judge(JudgeConfig(judge="nope"))


def test_offline_options_are_parsed_and_validated():
    config = require_judge(JudgeConfig(judge="offline", options={"encoder": "wordllama", "miss_threshold": 0.3}))
    assert config.options == OfflineOptions(encoder="wordllama", miss_threshold=0.3)
    with pytest.raises(ConfigError, match=r"offline judge: miss_threshold must be a number in \[0, 1\], got 1.5"):
        require_judge(JudgeConfig(options={"miss_threshold": 1.5}))
    with pytest.raises(ConfigError, match=r"offline judge: encoder must be one of .*got 'bert'"):
        require_judge(JudgeConfig(options={"encoder": "bert"}))
    with pytest.raises(ConfigError, match=r"unknown option\(s\) \['passes'\] for judge 'offline'"):
        require_judge(JudgeConfig(options={"passes": 7}))


def test_old_flat_keys_still_work_with_a_deprecation_warning():
    with pytest.warns(FutureWarning, match=r"\['miss_threshold', 'offline_encoder'\] are deprecated.*options:"):
        config = JudgeConfig.from_dict({"judge": "offline", "offline_encoder": "wordllama", "miss_threshold": 0.4})
    assert config.options == {"encoder": "wordllama", "miss_threshold": 0.4}
    assert require_judge(config).options == OfflineOptions(encoder="wordllama", miss_threshold=0.4)
    assert JudgeConfig.from_dict({"judge": "offline", "judge_options": {"encoder": "minilm"}}).options == {
        "encoder": "minilm"
    }
    with pytest.raises(ConfigError, match=r"unknown judge config key\(s\) \['colour'\]"):
        JudgeConfig.from_dict({"colour": "red"})


def test_registering_a_non_judge_or_a_bad_options_type_is_refused():
    with pytest.raises(ConfigError, match="options must be a dataclass type"):
        Judge("x", "", dict, lambda *a: [])
    pm = plugins.build_plugin_manager(entry_points=[])

    class Bad:
        @staticmethod
        @__import__("vs2_plugin").hookimpl
        def vs2_register_judges(register):
            register("bad", "old-style name and description")

    pm.register(Bad(), name="bad")
    with pytest.warns(plugins.PluginWarning, match="'bad'.*takes a vs2_plugin.judge.registry.Judge"):
        judges = plugins.judge_registry(pm)
    assert "offline" in judges and "bad" not in judges
    plugins.reset_plugin_manager()


def test_vs2_eval_takes_judge_options_and_reports_them(tmp_path):
    from vs2_plugin.cli import main as vs2_main

    data = tmp_path / "in.jsonl"
    data.write_text(json.dumps(ITEM) + "\n")
    out = tmp_path / "r.json"
    assert (
        vs2_main(
            [
                "eval",
                "--input",
                str(data),
                "--out",
                str(out),
                "--quiet",
                "--judge-option",
                "encoder=wordllama",
                "--judge-option",
                "miss_threshold=0.25",
            ]
        )
        == 0
    )
    report = json.loads(out.read_text())
    assert report["judge"] == "offline" and report["judge_options"] == {
        "encoder": "wordllama",
        "miss_threshold": 0.25,
        "support_threshold": 0.5,
    }
    # the encoder is named (with auto, the one it stood for): reports of the two differ in AUC
    assert report["passes"] == 1 and report["model"] == "wordllama encoder"
    assert "(judge: offline, wordllama encoder)" in out.with_suffix(".md").read_text()


def test_vs2_eval_bad_option_is_a_clear_error(tmp_path, capsys):
    from vs2_plugin.cli import main as vs2_main

    data = tmp_path / "in.jsonl"
    data.write_text(json.dumps(ITEM) + "\n")
    assert (
        vs2_main(["eval", "--input", str(data), "--out", str(tmp_path / "r.json"), "--judge-option", "colour=red"]) == 2
    )
    assert "unknown option(s) ['colour'] for judge 'offline'" in capsys.readouterr().err
    assert (
        vs2_main(["eval", "--input", str(data), "--out", str(tmp_path / "r.json"), "--judge-option", "noequals"]) == 2
    )
    assert "--judge-option expects KEY=VALUE, got 'noequals'" in capsys.readouterr().err
    twice = ["--judge-option", "miss_threshold=0.4", "--judge-option", "miss_threshold=0.6"]
    assert vs2_main(["eval", "--input", str(data), "--out", str(tmp_path / "r.json"), *twice]) == 2
    assert "--judge-option miss_threshold is given twice; give each option once" in capsys.readouterr().err


def test_mrdpo_config_checks_the_judge_and_moves_old_keys(tmp_path):

    import yaml

    from vs2_plugin.pipeline.config import load_mrdpo_config

    repo = REPO
    cfg = yaml.safe_load((repo / "recipes" / "tiny" / "mrdpo.yaml").read_text())
    cfg["judge"] = {"judge": "offline", "offline_encoder": "wordllama", "show_progress": False}
    (tmp_path / "old.yaml").write_text(yaml.safe_dump(cfg))
    with pytest.warns(FutureWarning, match=r"\['offline_encoder'\] are deprecated"):
        loaded = load_mrdpo_config(str(tmp_path / "old.yaml"), [])
    assert loaded.judge == {"judge": "offline", "show_progress": False, "options": {"encoder": "wordllama"}}
    cfg["judge"] = {"judge": "offline", "options": {"passes": 7}}
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(cfg))
    with pytest.raises(ConfigError, match=r"unknown option\(s\) \['passes'\] for judge 'offline'"):
        load_mrdpo_config(str(tmp_path / "bad.yaml"), [])


def test_shipped_recipes_use_the_options_shape():

    import yaml

    repo = REPO
    for path in sorted((repo / "recipes").rglob("*.yaml")):
        judge = (yaml.safe_load(path.read_text()) or {}).get("judge")
        if isinstance(judge, dict):
            assert set(judge) <= {"judge", "show_progress", "cache_path", "options"}, path
            require_judge(JudgeConfig.from_dict(judge))


def test_old_keys_a_judge_never_used_are_ignored_as_before(tmp_path):
    # the flat config was shared: the offline judge ignored `passes`; the old form still loads
    with pytest.warns(FutureWarning, match=r"\['passes'\] ignored: judge 'offline' has no such option"):
        config = JudgeConfig.from_dict({"judge": "offline", "passes": 7, "miss_threshold": 0.4})
    assert require_judge(config).options == OfflineOptions(miss_threshold=0.4)
    # written in the new shape, the same key is an error naming it and the judge
    with pytest.raises(ConfigError, match=r"unknown option\(s\) \['passes'\] for judge 'offline'"):
        require_judge(JudgeConfig.from_dict({"judge": "offline", "options": {"passes": 7}}))


def test_old_remote_flags_with_the_offline_judge_are_ignored_as_before(tmp_path):
    from vs2_plugin.cli import main as vs2_main

    data = tmp_path / "in.jsonl"
    data.write_text(json.dumps(ITEM) + "\n")
    out = tmp_path / "r.json"
    with pytest.warns(FutureWarning, match=r"judge 'offline' has no option \['passes'\]; ignored"):
        assert vs2_main(["eval", "--input", str(data), "--out", str(out), "--quiet", "--passes", "3"]) == 0
    assert json.loads(out.read_text())["passes"] == 1


def test_vs2_plugins_lists_each_judges_options(capsys):
    from vs2_plugin.commands import plugins as plugins_command

    info = plugins_command.collect()
    assert info["judge_options"]["offline"] == {"encoder": "auto", "miss_threshold": 0.5, "support_threshold": 0.5}
    assert set(plugins_command.collect()["judges"]) == set(info["judge_options"])


def test_a_plugin_options_error_is_one_line_naming_its_judge():
    """A plugin's options dataclass may raise a plain ValueError, or have an option without a
    default: either is the user's setting to mend, said as the judge's, not a traceback."""

    @dataclasses.dataclass
    class Options:
        model: str
        temperature: float = 0.0

        def __post_init__(self):
            if self.temperature < 0:
                raise ValueError(f"temperature must be >= 0, got {self.temperature}")

    judge = Judge("strict", "", Options, lambda *a: [])
    assert judge.parse_options({"model": "m"}) == Options("m")
    with pytest.raises(ConfigError, match=r"judge 'strict' needs option\(s\) \['model'\] \(--judge-option KEY=VALUE\)"):
        judge.parse_options({})
    with pytest.raises(ConfigError, match=r"options of judge 'strict': temperature must be >= 0, got -1"):
        judge.parse_options({"model": "m", "temperature": -1})
