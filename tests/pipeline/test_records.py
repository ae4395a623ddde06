"""Durable run records: torn JSONL lines, atomic state, task building, video lists."""

from __future__ import annotations

import json

import pytest

from vs2_plugin.errors import DataError
from vs2_plugin.pipeline.config import SamplingConfig
from vs2_plugin.pipeline.records import JsonlLog, StepState
from vs2_plugin.pipeline.sampling import build_tasks, task_seed
from vs2_plugin.pipeline.videos import Interval, VideoEntry, load_videos


def test_torn_last_line_is_ignored_and_repaired(tmp_path):
    log = JsonlLog(tmp_path / "s.jsonl")
    log.append({"key": "a", "v": 1})
    with open(log.path, "a") as f:
        f.write('{"key": "b", "v"')  # a kill -9 in the middle of a write
    assert list(log.by_key()) == ["a"]
    log.append({"key": "b", "v": 2})
    assert [r["key"] for r in log.rows()] == ["a", "b"]
    assert log.path.read_text().count("\n") == 2


def test_step_state_survives_reload(tmp_path):
    s = StepState(tmp_path)
    s.mark(1, "sample")
    s.mark(1, "pairs", {"count": 3})
    again = StepState(tmp_path)
    assert again.done(1, "sample") and not again.done(1, "train")
    assert again.result(1, "pairs") == {"count": 3}
    assert not list(tmp_path.glob("*.tmp*"))


def test_tasks_two_global_two_local_and_rotating_interval():
    v = VideoEntry("v", "/x.mp4", "ref", local=[Interval(0, 2, "a"), Interval(2, 4, "b")])
    cfg = SamplingConfig()
    t1 = build_tasks([v], cfg, 1)
    assert [(t.task, t.sample_index) for t in t1] == [("global", 0), ("global", 1), ("local", 0), ("local", 1)]
    assert (t1[2].start, t1[2].end) == (0, 2) and "between 0 and 2 seconds" in t1[2].prompt
    t2 = build_tasks([v], cfg, 2)
    assert (t2[2].start, t2[2].end) == (2, 4)
    assert len({t.key for t in t1}) == 4
    assert task_seed(1, "k") == task_seed(1, "k") != task_seed(2, "k")


def test_heldout_tasks_cover_every_local_interval():
    v = VideoEntry("v", "/x.mp4", "ref", local=[Interval(0, 2, "a"), Interval(2, 4.5, "b")])
    tasks = build_tasks([v], SamplingConfig(), 1, samples=1, greedy=True, tag="heldout", all_intervals=True)
    assert [(t.task, t.start, t.end) for t in tasks] == [("global", None, None), ("local", 0, 2), ("local", 2, 4.5)]
    assert "between 2 and 4.5 seconds" in tasks[2].prompt
    assert [t.key for t in tasks] == ["heldout/v/global/0", "heldout/v/local/0-2/0", "heldout/v/local/2-4.5/0"]
    assert all(t.greedy for t in tasks)


def test_video_list_errors_name_the_line(tmp_path, shared_media):
    p = tmp_path / "v.jsonl"
    p.write_text(
        json.dumps({"id": "a", "video": str(shared_media / "4_av.mp4"), "reference": "r"})
        + "\n"
        + json.dumps({"id": "b", "video": "missing.mp4", "reference": "r"})
        + "\n"
    )
    with pytest.raises(DataError, match=r"v.jsonl:2: video file not found: .*missing.mp4"):
        load_videos(p)
    p.write_text(json.dumps({"id": "a", "video": str(shared_media / "4_av.mp4")}) + "\n")
    with pytest.raises(DataError, match="needs a 'reference'"):
        load_videos(p)
    assert load_videos(p, require_reference=False)[0].id == "a"
    # events as one string, or a blank event: named where they are, before any work
    clip = str(shared_media / "4_av.mp4")
    p.write_text(json.dumps({"id": "a", "video": clip, "events": "A dog barks."}) + "\n")
    with pytest.raises(DataError, match=r"v.jsonl:1: video 'a': events must be a list of strings, got str"):
        load_videos(p)
    local = [{"start": 0, "end": 2, "events": ["A dog barks.", ""]}]
    p.write_text(json.dumps({"id": "a", "video": clip, "reference": "r", "local": local}) + "\n")
    with pytest.raises(DataError, match=r"v.jsonl:1: video 'a' local\[0\]: event 1 is blank"):
        load_videos(p)


def test_a_moved_run_folder_names_its_own_adapters(tmp_path):
    import shutil

    from vs2_plugin.pipeline.records import finished_model, write_final_model

    old = tmp_path / "scratch" / "mrdpo"
    old.mkdir(parents=True)
    sft = str(tmp_path / "models" / "sft-lora")  # outside the run folder: stays where it is
    write_final_model(old, "/models/base", [sft, str(old / "gdpo" / "round-001"), str(old / "gdpo" / "round-002")])
    assert finished_model(old) == (
        "/models/base",
        [sft, str(old / "gdpo" / "round-001"), str(old / "gdpo" / "round-002")],
    )
    new = tmp_path / "project" / "mrdpo"
    shutil.move(str(old), str(new))
    assert finished_model(new) == (
        "/models/base",
        [sft, str(new / "gdpo" / "round-001"), str(new / "gdpo" / "round-002")],
    )
    # a vs2 rebirth output folder, moved
    reborn = tmp_path / "scratch" / "rebirth"
    StepState(reborn).mark(
        0, "train", {"adapter": str(reborn / "sft"), "model": "/models/aligned", "run_dir": str(reborn)}
    )
    shutil.move(str(reborn), str(tmp_path / "rebirth"))
    assert finished_model(tmp_path / "rebirth") == ("/models/aligned", [str(tmp_path / "rebirth" / "sft")])


def test_finished_model_of_older_and_broken_records(tmp_path):
    from vs2_plugin.errors import ConfigError
    from vs2_plugin.pipeline.records import finished_model

    older = tmp_path / "older"  # written before run_dir was recorded: paths as they are
    older.mkdir()
    (older / "final_model.json").write_text(json.dumps({"model": "/m", "adapter_name_or_path": "/a1, /a2"}))
    assert finished_model(older) == ("/m", ["/a1", "/a2"])
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "final_model.json").write_text("{")
    with pytest.raises(DataError, match="final_model.json: not valid JSON"):
        finished_model(broken)
    (broken / "final_model.json").write_text(json.dumps({"adapters": []}))
    with pytest.raises(ConfigError, match="no model path"):
        finished_model(broken)
    with pytest.raises(ConfigError, match="not a finished run"):
        finished_model(tmp_path)
