"""`vs2 eval` and `vs2 pairs` end to end with the offline judge."""

import json
import shutil

import pytest

from tests.support.paths import REPO
from vs2_plugin.cli import main as vs2_main

EVENTS = ["A brown dog runs across a park", "A man sings a song", "Rain falls on a city street"]


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_eval_writes_report_and_markdown(tmp_path, capsys):
    rows = [
        {
            "id": "full",
            "caption": "A brown dog runs across a park. A man sings a song. Rain falls on a city street.",
            "events": EVENTS,
        },
        {"id": "half", "caption": "A brown dog runs across a park.", "events": EVENTS, "task": "local"},
        {
            "id": "ref",
            "caption": "A brown dog runs across a park.",
            "reference": "A brown dog runs across a park. A man sings a song.",
        },
    ]
    out = tmp_path / "out" / "report.json"
    code = vs2_main(
        [
            "eval",
            "--input",
            str(write_jsonl(tmp_path / "in.jsonl", rows)),
            "--judge",
            "offline",
            "--out",
            str(out),
            "--quiet",
        ]
    )
    assert code == 0
    report = json.loads(out.read_text())
    items = {i["id"]: i for i in report["items"]}
    assert set(items) == {"full", "half", "ref"}
    for item in items.values():
        assert item["status"] == "ok"
        for key in ("miss_rate", "hall_rate", "rep_rate"):
            assert 0.0 <= item[key] <= 1.0
        assert len(item["event_scores"]) == item["n_events"]
    assert items["full"]["miss_rate"] == 0.0 and items["half"]["miss_rate"] > 0.5
    assert items["ref"]["n_events"] >= 2
    assert set(report["summary"]) == {"global", "local", "all"}
    markdown = (tmp_path / "out" / "report.md").read_text()
    assert "| global |" in markdown and "| local |" in markdown and "%Miss" in markdown
    # the items of both tasks in one row too, as report.json's "all": 3 items, none failed
    assert "| all | 3/0 |" in markdown
    assert "| global |" in capsys.readouterr().out


def test_eval_refuses_an_out_path_its_markdown_would_overwrite(tmp_path, capsys):
    path = write_jsonl(tmp_path / "in.jsonl", [{"id": "a", "caption": "A dog runs.", "events": ["A dog runs"]}])
    assert vs2_main(["eval", "--input", str(path), "--out", str(tmp_path / "report.md")]) == 2
    assert "give the report's JSON path" in capsys.readouterr().err
    assert not (tmp_path / "report.md").exists()


def test_a_deprecated_flag_warns_in_one_line_without_source(tmp_path, run_cli):
    path = write_jsonl(tmp_path / "in.jsonl", [{"id": "a", "caption": "A dog runs.", "events": ["A dog runs"]}])
    args = ["vs2", "eval", "--input", str(path), "--out", str(tmp_path / "r.json"), "--quiet", "--passes", "1"]
    res = run_cli(args + ["--judge-option", "encoder=wordllama"], timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    err = res.stderr
    assert "FutureWarning: deprecated flag(s) --passes" in err
    assert "config_from_args" not in err  # the source line that raised it is not the user's business


def test_a_row_without_events_or_reference_fails_alone(tmp_path, capsys):
    """vs2 caption's predictions of a list where one video had no reference: the others are judged."""
    rows = [{"id": "a", "caption": "A man walks a dog.", "events": ["A man walks a dog"]}, {"id": "b", "caption": "x"}]
    report = tmp_path / "r.json"
    assert vs2_main(["eval", "--input", str(write_jsonl(tmp_path / "in.jsonl", rows)), "--out", str(report)]) == 1
    items = {i["id"]: i for i in json.loads(report.read_text())["items"]}
    assert items["a"]["status"] == "ok" and items["b"]["status"] == "failed"
    assert "no events to judge against" in items["b"]["error"]


@pytest.mark.parametrize("reference", [None, "", "   \n"])
def test_eval_rejects_rows_without_events_or_reference(tmp_path, capsys, reference):
    row = {"id": "a", "caption": "x"} | ({} if reference is None else {"reference": reference})
    path = write_jsonl(tmp_path / "in.jsonl", [row])
    assert vs2_main(["eval", "--input", str(path), "--out", str(tmp_path / "r.json")]) == 2
    assert "neither 'events' nor 'reference'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("row", "message"),
    [
        # one string is not a list of events (it had become one event per character)
        ({"events": "A man walks a dog."}, "in.jsonl:1: item 'a': events must be a list of strings, got str"),
        ({"events": ["A man walks a dog.", 3]}, "events must be a list of strings; event 1 is 3"),
        ({"events": ["A man walks a dog.", "  "]}, "in.jsonl:1: item 'a': event 1 is blank"),
        # no word: nothing a caption could mention, it would only be counted missed
        ({"events": ["A man walks a dog.", "..."]}, "in.jsonl:1: item 'a': event 1 is '...', which has no word"),
        ({"reference": ["A man walks a dog."]}, "item 'a': reference must be a string, got list"),
        # what the HTML report places on the video's timeline
        ({"events": ["A dog."], "start": float("nan")}, "'start' must be a number of seconds >= 0, got nan"),
        ({"events": ["A dog."], "start": 4, "end": 2.5}, "in.jsonl:1: 'end' 2.5 must come after 'start' 4"),
        (
            {"id": None, "events": ["A man walks a dog."]},
            "in.jsonl:1: id must be a non-blank string or an integer, got None",
        ),
    ],
)
def test_eval_names_the_row_and_what_is_wrong_with_its_events(tmp_path, capsys, row, message):
    path = write_jsonl(tmp_path / "in.jsonl", [{"id": "a", "caption": "A man walks a dog.", **row}])
    assert vs2_main(["eval", "--input", str(path), "--out", str(tmp_path / "r.json")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "r.json").exists()


def test_eval_report_names_the_failed_items_and_why(tmp_path, capsys):
    rows = [
        {"id": "ok", "caption": "A brown dog runs across a park.", "events": EVENTS},
        {"id": "zh", "caption": "一只狗在公园里跑。", "events": ["一只狗在公园里跑"]},
        {"id": "empty", "caption": "A brown dog runs.", "events": []},
    ]
    out = tmp_path / "report.json"
    path = write_jsonl(tmp_path / "in.jsonl", rows)
    assert vs2_main(["eval", "--input", str(path), "--out", str(out), "--quiet"]) == 1
    markdown = (tmp_path / "report.md").read_text()
    assert "| global | 1/2 |" in markdown and "Failed items (2):" in markdown
    assert "- `zh`: the offline judge reads English" in markdown and "- `empty`: no events to judge against" in markdown
    assert "- `ok`" not in markdown and "Failed items (2):" in capsys.readouterr().out


def test_eval_names_the_line_an_editor_shows_past_blank_lines_and_a_byte_order_mark(tmp_path, capsys):
    good = json.dumps({"id": "a", "caption": "A dog runs.", "events": ["A dog runs"]})
    bad = json.dumps({"id": "b", "caption": "A dog runs.", "events": "A dog runs"})
    path = tmp_path / "in.jsonl"
    path.write_text("\ufeff" + good + "\n\n\n" + bad + "\n", encoding="utf-8")
    assert vs2_main(["eval", "--input", str(path), "--out", str(tmp_path / "r.json")]) == 2
    assert "in.jsonl:4: item 'b': events must be a list of strings" in capsys.readouterr().err


SAMPLE = {"video_id": "v1", "media": "m.mp4", "prompt": "Describe.", "caption": "A dog runs.", "events": ["A dog runs"]}


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([{**SAMPLE, "events": "A dog runs."}], "s.jsonl:1 (video 'v1'): events must be a list of strings, got str"),
        # the same sample_id twice had given both rows the first one's scores
        (
            [{**SAMPLE, "sample_id": "s"}, {**SAMPLE, "caption": "A cat sleeps.", "sample_id": "s"}],
            "s.jsonl:2 (video 'v1'): duplicate sample_id 's' (line 1 has it too)",
        ),
        ([{**SAMPLE, "total_rate": "abc"}], "s.jsonl:1 (video 'v1'): 'total_rate' must be a number, got 'abc'"),
        ([{**SAMPLE, "total_rate": None}], "'total_rate' must be a number, got None"),
        ([{**SAMPLE, "total_rate": -5}], "'total_rate' must lie in [0.0, inf), got -5"),
        (
            [{**SAMPLE, "total_rate": 0.2, "miss_rate": 0.5, "hall_rate": 0.4}],
            "'total_rate' 0.2 is not 'miss_rate' + 'hall_rate' (0.9); give one or the other",
        ),
        ([{**SAMPLE, "miss_rate": 7, "hall_rate": 0.1}], "'miss_rate' must lie in [0.0, 1.0], got 7"),
        ([{**SAMPLE, "caption": 3}], "s.jsonl:1 (video 'v1'): 'caption' must be a string, got int"),
        ([{k: v for k, v in SAMPLE.items() if k != "media"}], "s.jsonl:1 (video 'v1'): no 'media' (or 'audios')"),
        ([{**SAMPLE, "media": ["m.mp4", 3]}], "'media' must be a path or a list of paths, got ['m.mp4', 3]"),
        ([{**SAMPLE, "video_id": None}], "s.jsonl:1: video_id must be a non-blank string or an integer, got None"),
    ],
)
def test_pairs_refuses_bad_rows_before_judging_naming_line_and_video(tmp_path, capsys, rows, message):
    path = write_jsonl(tmp_path / "s.jsonl", rows)
    assert vs2_main(["pairs", "--input", str(path), "--dataset-dir", str(tmp_path / "ds"), "--name", "t"]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "ds").exists()


def test_pairs_builds_pairwise_dataset(tmp_path):
    good = "A brown dog runs across a park. A man sings a song. Rain falls on a city street."
    bad = "A cat sleeps on a sofa."
    rows = [
        {
            "video_id": "v1",
            "media": "media/v1.mp4",
            "prompt": "Describe the video in detail.",
            "task": "global",
            "caption": good,
            "events": EVENTS,
        },
        {
            "video_id": "v1",
            "media": "media/v1.mp4",
            "prompt": "Describe the video in detail.",
            "task": "global",
            "caption": bad,
            "events": EVENTS,
        },
        {
            "video_id": "v2",
            "media": ["media/v2.mp4"],
            "prompt": "Describe 0-10 s.",
            "task": "local",
            "caption": "x",
            "miss_rate": 0.5,
            "hall_rate": 0.1,
            "rep_rate": 0.0,
        },
        {
            "video_id": "v2",
            "media": ["media/v2.mp4"],
            "prompt": "Describe 0-10 s.",
            "task": "local",
            "caption": "y",
            "miss_rate": 0.55,
            "hall_rate": 0.1,
            "rep_rate": 0.0,
        },
    ]
    code = vs2_main(
        [
            "pairs",
            "--input",
            str(write_jsonl(tmp_path / "s.jsonl", rows)),
            "--dataset-dir",
            str(tmp_path / "data"),
            "--name",
            "round1",
            "--round",
            "2",
            "--quiet",
        ]
    )
    assert code == 0
    records = json.loads((tmp_path / "data" / "round1.json").read_text())
    assert len(records) == 1  # round 2: v1 gains >= 20 % error; v2 local gap (5 %) < 45 %
    assert records[0]["chosen"]["value"] == good and records[0]["rejected"]["value"] == bad
    assert records[0]["videos"] == ["media/v1.mp4"]
    assert records[0]["conversations"][0]["value"].startswith("<video>")
    info = json.loads((tmp_path / "data" / "dataset_info.json").read_text())
    assert info["round1"]["ranking"] is True
    scores = [json.loads(line) for line in (tmp_path / "data" / "round1.scores.jsonl").read_text().splitlines()]
    assert len(scores) == 4 and all(s["status"] == "ok" for s in scores)


def test_quiet_eval_prints_only_its_report(tmp_path, run_cli):
    """``--quiet`` in a fresh process: the MiniLM load adds no log line or "Loading weights" bar."""
    rows = [{"id": "a", "caption": "A brown dog runs across a park.", "events": EVENTS}]
    out = tmp_path / "report.json"
    res = run_cli(
        ["vs2", "eval", "--input", str(write_jsonl(tmp_path / "in.jsonl", rows)), "--judge", "offline"]
        + ["--judge-option", "encoder=minilm", "--out", str(out), "--quiet"],
        timeout=300,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    assert json.loads(out.read_text())["items"][0]["status"] == "ok"
    assert "Loading weights" not in res.stdout + res.stderr and "| global |" in res.stdout


def _pairs(tmp_path, rows, *extra, name="p"):
    path = write_jsonl(tmp_path / "s.jsonl", rows)
    # round 2: Table 3 asks no repetition margin
    return vs2_main(
        ["pairs", "--input", str(path), "--dataset-dir", str(tmp_path / "ds"), "--name", name, "--round", "2", *extra]
    )


def test_pairs_are_chosen_among_captions_of_one_prompt(tmp_path):
    # two local intervals of one video: the 0-2 s caption is no better answer to "3-5 s" than its own
    rows = [
        {**SAMPLE, "task": "local", "prompt": "Describe 0-2 s.", "miss_rate": 0.0, "hall_rate": 0.0},
        {**SAMPLE, "task": "local", "prompt": "Describe 3-5 s.", "miss_rate": 0.9, "hall_rate": 0.5},
    ]
    assert _pairs(tmp_path, rows, "--quiet") == 0
    assert json.loads((tmp_path / "ds" / "p.json").read_text()) == []
    rows[1]["prompt"] = rows[0]["prompt"]  # the same question: a pair
    assert _pairs(tmp_path, rows, "--quiet") == 0
    assert len(json.loads((tmp_path / "ds" / "p.json").read_text())) == 1


def test_pairs_with_samples_not_judged_leave_the_dataset_as_it_was(tmp_path, capsys):
    good = [{**SAMPLE, "caption": "A brown dog runs across a park.", "events": EVENTS}, {**SAMPLE, "caption": "x"}]
    assert _pairs(tmp_path, good, "--quiet") == 0
    before = (tmp_path / "ds" / "p.json").read_text()
    assert json.loads(before)  # one pair
    unjudged = [*good, {**SAMPLE, "caption": "一只狗在公园里跑。", "events": ["一只狗在公园里跑"]}]
    assert _pairs(tmp_path, unjudged, "--quiet") == 1
    err = capsys.readouterr().err
    assert "1 of 3 sample(s) could not be judged" in err and "no dataset written" in err
    assert (tmp_path / "ds" / "p.json").read_text() == before
    assert "the offline judge reads English" in (tmp_path / "ds" / "p.scores.jsonl").read_text()
    assert _pairs(tmp_path, unjudged, "--quiet", "--allow-failed") == 0  # the rest paired, on request
    assert json.loads((tmp_path / "ds" / "p.json").read_text())


def test_pairs_name_a_broken_dataset_info_before_writing_and_warn_of_missing_media(tmp_path, capsys):
    rows = [{**SAMPLE, "caption": "A brown dog runs across a park.", "events": EVENTS}, {**SAMPLE, "caption": "x"}]
    (tmp_path / "ds").mkdir()
    (tmp_path / "ds" / "dataset_info.json").write_text("[]")
    assert _pairs(tmp_path, rows, "--quiet") == 2
    err = capsys.readouterr().err
    assert "dataset_info.json: a JSON object of dataset name -> entry is needed, got a list" in err
    assert "1 media file(s) not found from --dataset-dir" in err and "m.mp4 (sample v1#global#1)" in err
    assert not (tmp_path / "ds" / "p.json").exists()
    (tmp_path / "ds" / "dataset_info.json").unlink()
    (tmp_path / "ds" / "m.mp4").write_bytes(b"")  # where LLaMA-Factory will look for it, but empty
    assert _pairs(tmp_path, rows, "--quiet") == 0
    err = capsys.readouterr().err
    assert "not found" not in err
    assert "1 media file(s) a training run would refuse: m.mp4 (sample v1#global#1): file is empty (0 bytes)" in err
    shutil.copy(REPO / "vs2_plugin" / "assets" / "demo_data" / "media" / "drawing.mp4", tmp_path / "ds" / "m.mp4")
    assert _pairs(tmp_path, rows, "--quiet") == 0
    assert "media file" not in capsys.readouterr().err


def test_eval_refuses_to_write_its_report_over_its_input(tmp_path, capsys):
    path = write_jsonl(tmp_path / "caps.jsonl", [{"id": "a", "caption": "A dog runs.", "events": EVENTS}])
    before = path.read_text()
    assert vs2_main(["eval", "--input", str(path), "--out", str(path), "--quiet"]) == 2
    assert f"--out {path}: the report would overwrite --input" in capsys.readouterr().err
    assert path.read_text() == before


def test_eval_names_a_bad_video_and_warns_of_a_misspelt_key(tmp_path, capsys, caplog):
    row = {"id": "a", "caption": "A dog runs.", "events": EVENTS}
    path = write_jsonl(tmp_path / "in.jsonl", [{**row, "video": 5}])
    assert vs2_main(["eval", "--input", str(path), "--out", str(tmp_path / "r.json"), "--quiet"]) == 2
    assert "in.jsonl:1: 'video' must be a path (a string), got 5" in capsys.readouterr().err
    path = write_jsonl(tmp_path / "in.jsonl", [{**row, "Task": "local"}, {**row, "id": "b", "Task": "local"}])
    with caplog.at_level("WARNING"):
        assert vs2_main(["eval", "--input", str(path), "--out", str(tmp_path / "r.json"), "--quiet"]) == 0
    warnings = [r.getMessage() for r in caplog.records if "is not read" in r.getMessage()]
    assert warnings == [f"{path}:1: key 'Task' is not read (did you mean task?)"]  # once, not per row
