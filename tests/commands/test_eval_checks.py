"""`vs2 eval` refuses what it cannot finish before it judges, and says what an interrupted run left."""

import json
import os

import pytest

import vs2_plugin.judge.runner as runner
from vs2_plugin.cli import main as vs2_main
from vs2_plugin.judge.evaluation import load_items

ROW = {"id": "a", "caption": "A dog runs.", "events": ["A dog runs"]}


@pytest.fixture
def no_judging(monkeypatch):
    """Judging fails the test: the command must stop before it."""

    def judge_items(*args, **kwargs):
        raise AssertionError("judged before the bad --out was refused")

    monkeypatch.setattr(runner, "judge_items", judge_items)


def _input(tmp_path, rows=(ROW,)):
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_an_out_that_is_a_folder_is_refused_before_judging(tmp_path, capsys, no_judging):
    (tmp_path / "reports").mkdir()
    assert vs2_main(["eval", "--input", str(_input(tmp_path)), "--out", str(tmp_path / "reports"), "--quiet"]) == 2
    assert "is a folder" in capsys.readouterr().err
    (tmp_path / "r.html").mkdir()  # the page beside it cannot be written either
    assert vs2_main(["eval", "--input", str(_input(tmp_path)), "--out", str(tmp_path / "r.json"), "--quiet"]) == 2
    assert "r.html is a folder" in capsys.readouterr().err


def test_an_out_under_a_file_is_refused_before_judging(tmp_path, capsys, no_judging):
    path = _input(tmp_path)
    assert vs2_main(["eval", "--input", str(path), "--out", str(path / "sub" / "r.json"), "--quiet"]) == 2
    assert f"{path} is a file, not a folder" in capsys.readouterr().err


def test_an_unwritable_out_folder_is_refused_before_judging(tmp_path, capsys, monkeypatch, no_judging):

    monkeypatch.setattr(os, "access", lambda path, mode: False)
    assert vs2_main(["eval", "--input", str(_input(tmp_path)), "--out", str(tmp_path / "new" / "r.json")]) == 2
    assert f"no permission to write into {tmp_path}" in capsys.readouterr().err


def test_an_interrupted_run_says_nothing_was_kept(tmp_path, capsys, monkeypatch):
    def judge_items(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "judge_items", judge_items)
    out = tmp_path / "r.json"
    assert vs2_main(["eval", "--input", str(_input(tmp_path)), "--out", str(out), "--quiet"]) == 130
    err = capsys.readouterr().err
    assert "no report written" in err and "rerun resumes" not in err
    assert not out.exists()


def test_a_prediction_key_is_the_id_whatever_its_value(tmp_path):
    rows = [{"key": 0, "predict": "A dog runs.", "label": "A dog runs in the park."}]
    assert [i.id for i in load_items(_input(tmp_path, rows))] == ["0"]  # not line1
    rows = [{"key": ["v1"], "predict": "A dog runs.", "label": "A dog runs in the park."}]
    with pytest.raises(Exception, match=r"in\.jsonl:1: id must be a non-blank string or an integer, got \['v1'\]"):
        load_items(_input(tmp_path, rows))


def test_judge_settings_beside_a_judge_mapping_are_refused_not_ignored(tmp_path, capsys, no_judging):
    config = tmp_path / "judge.yaml"
    config.write_text("judge:\n  judge: offline\noptions:\n  miss_threshold: 0.9\nshow_progress: false\n")
    args = ["eval", "--input", str(_input(tmp_path)), "--out", str(tmp_path / "r.json"), "--judge-config", str(config)]
    assert vs2_main(args) == 2
    assert "['options', 'show_progress'] beside its 'judge:' mapping would be ignored" in capsys.readouterr().err


def test_another_judge_than_the_config_file_s_names_where_its_options_come_from(tmp_path, capsys, no_judging):
    config = tmp_path / "judge.yaml"
    config.write_text("judge:\n  judge: openai\n  options:\n    model: gpt-4.1-mini\n")
    args = ["eval", "--input", str(_input(tmp_path)), "--out", str(tmp_path / "r.json"), "--judge-config", str(config)]
    assert vs2_main([*args, "--judge", "offline"]) == 2
    err = capsys.readouterr().err
    assert f"--judge offline: --judge-config {config} sets options ['model'] of judge 'openai'" in err
