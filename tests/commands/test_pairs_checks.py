"""`vs2 pairs` refuses what it cannot finish before it judges, and never writes its pairs over the index."""

import json

import pytest

import vs2_plugin.judge.runner as runner
from vs2_plugin.cli import main as vs2_main

ROWS = [
    {"video_id": "v1", "media": "v1.mp4", "prompt": "Describe.", "caption": c, "events": ["A dog runs"]}
    for c in ("A dog runs.", "A cat sleeps.")
]


@pytest.fixture
def no_judging(monkeypatch):
    """Judging fails the test: the command must stop before it."""

    def judge_items(*args, **kwargs):
        raise AssertionError("judged before the bad option was refused")

    monkeypatch.setattr(runner, "judge_items", judge_items)


def _pairs(tmp_path, dataset_dir, *extra, rows=ROWS):
    path = tmp_path / "samples.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return vs2_main(["pairs", "--input", str(path), "--dataset-dir", str(dataset_dir), "--quiet", *extra])


def test_round_zero_is_refused_before_judging(tmp_path, capsys, no_judging):
    assert _pairs(tmp_path, tmp_path / "ds", "--name", "p", "--round", "0") == 2
    assert "--round must be >= 1; got 0" in capsys.readouterr().err
    assert not (tmp_path / "ds").exists()


def test_a_broken_dataset_info_is_refused_before_judging(tmp_path, capsys, no_judging):
    (tmp_path / "ds").mkdir()
    (tmp_path / "ds" / "dataset_info.json").write_text("{broken")
    assert _pairs(tmp_path, tmp_path / "ds", "--name", "p") == 2
    assert "dataset_info.json: not valid JSON" in capsys.readouterr().err
    assert not (tmp_path / "ds" / "p.scores.jsonl").exists()


def test_a_dataset_dir_under_a_file_is_refused_before_judging(tmp_path, capsys, no_judging):
    (tmp_path / "file").write_text("")
    assert _pairs(tmp_path, tmp_path / "file" / "ds", "--name", "p") == 2
    assert f"{tmp_path / 'file'} is a file, not a folder" in capsys.readouterr().err


def test_the_name_dataset_info_is_refused(tmp_path, capsys):
    info = {"other": {"file_name": "other.json"}}
    (tmp_path / "ds").mkdir()
    (tmp_path / "ds" / "dataset_info.json").write_text(json.dumps(info))
    rows = [{**r, "total_rate": rate} for r, rate in zip(ROWS, (0.1, 0.9))]  # no judging needed
    assert _pairs(tmp_path, tmp_path / "ds", "--name", "dataset_info", "--round", "2", rows=rows) == 2
    assert "would write the pairs over dataset_info.json" in capsys.readouterr().err
    assert json.loads((tmp_path / "ds" / "dataset_info.json").read_text()) == info


def test_an_interrupted_run_says_nothing_was_kept(tmp_path, capsys, monkeypatch):
    def judge_items(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "judge_items", judge_items)
    assert _pairs(tmp_path, tmp_path / "ds", "--name", "p") == 130
    err = capsys.readouterr().err
    assert "nothing written" in err and "rerun resumes" not in err


def test_failed_samples_do_not_promise_a_cache(tmp_path, capsys, monkeypatch):
    from vs2_plugin.judge.types import Judgment

    monkeypatch.setattr(
        runner, "judge_items", lambda items, config: [Judgment.failed(i.id, "offline", "broken") for i in items]
    )
    assert _pairs(tmp_path, tmp_path / "ds", "--name", "p") == 1
    err = capsys.readouterr().err
    assert "could not be judged" in err and "judged samples are cached" not in err


def test_a_null_sample_id_is_the_default_and_a_list_is_refused(tmp_path):
    from vs2_plugin.errors import DataError
    from vs2_plugin.judge.sample_scoring import load_samples

    path = tmp_path / "samples.jsonl"
    path.write_text("".join(json.dumps({**r, "sample_id": None}) + "\n" for r in ROWS))
    assert [r["sample_id"] for r in load_samples(path)] == ["v1#global#1", "v1#global#2"]  # not 'None' twice
    path.write_text(json.dumps({**ROWS[0], "sample_id": ["s1"]}) + "\n")
    with pytest.raises(DataError, match=r"samples\.jsonl:1 \(video 'v1'\): sample_id must be .*, got \['s1'\]"):
        load_samples(path)


def test_a_misspelt_key_is_warned_of_once(tmp_path, caplog):
    from vs2_plugin.judge.sample_scoring import load_samples

    path = tmp_path / "samples.jsonl"
    rows = [{**r, "Task": "local", "rep-rate": 0.0, "video": "v1.mp4"} for r in ROWS]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with caplog.at_level("WARNING"):
        assert [r.get("task", "global") for r in load_samples(path)] == ["global", "global"]
    warnings = [r.getMessage() for r in caplog.records if "is not read" in r.getMessage()]
    assert warnings == [
        f"{path}:1: key 'Task' is not read (did you mean task?)",
        f"{path}:1: key 'rep-rate' is not read (did you mean rep_rate?)",
    ]  # once each; 'video' beside 'video_id' is no misspelling
