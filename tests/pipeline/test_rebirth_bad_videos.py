"""Bad videos in ``vs2 rebirth``'s --videos: left out and listed (``bad_samples: skip``) or refused
(``fail``), as mrDPO handles its lists. Labelling is replaced by a stand-in, as in test_rebirth.py."""

from __future__ import annotations

import json
import shutil

import pytest
import yaml

from vs2_plugin.errors import DataError
from vs2_plugin.pipeline import rebirth
from vs2_plugin.pipeline.config import load_mrdpo_config

CLIP = "living_room.mp4"  # about 6 s
CAPTION = "A toddler plays on a rug in a bright living room while a fire burns."


def _write_list(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _skipped(out):
    return [json.loads(line) for line in (out / "skipped_videos.jsonl").read_text().splitlines()]


@pytest.fixture
def setup(tmp_path, monkeypatch, repo_root):
    media = repo_root / "vs2_plugin" / "assets" / "demo_data" / "media"
    shutil.copy(media / CLIP, tmp_path / "good.mp4")
    shutil.copy(media / CLIP, tmp_path / "other.mp4")
    data = (media / CLIP).read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 2])  # a download cut short
    run = tmp_path / "mrdpo"
    run.mkdir()
    (run / "final_model.json").write_text(json.dumps({"model": "/models/post-align", "adapters": ["/r/1"]}))
    cfg_data = yaml.safe_load((repo_root / "recipes" / "tiny" / "mrdpo.yaml").read_text())
    cfg_data.update(run_dir=str(run), model_name_or_path=str(tmp_path / "post-align"))
    calls = {"sampled": [], "train": [], "unreadable": set()}

    def fake_sample(tasks, out_path, **kwargs):
        calls["sampled"] += [t.video_id for t in tasks]
        rows = []
        for t in tasks:
            row = {"key": t.key, "video_id": t.video_id, "video": t.video, "prompt": t.prompt}
            if t.video_id in calls["unreadable"]:  # what sampling records for a video it cannot decode
                row.update(caption=None, finish_reason=None, error="decoding failed: moov atom not found")
            else:
                row.update(caption=CAPTION, finish_reason="stop")
            rows.append(row)
        return rows

    monkeypatch.setattr(rebirth, "sample", fake_sample)
    monkeypatch.setattr(rebirth, "run_training", lambda args, yaml_path, log_path: calls["train"].append(args))

    def config(**changes):
        path = tmp_path / "mrdpo.yaml"
        path.write_text(yaml.safe_dump({**cfg_data, "train_videos": str(tmp_path / "videos.jsonl"), **changes}))
        return load_mrdpo_config(str(path))

    def run(cfg, videos, out="rebirth"):
        recipe = str(repo_root / "recipes" / "tiny" / "rebirth_sft.yaml")
        return rebirth.run_rebirth(cfg, str(videos), recipe, str(tmp_path / out), progress=False)

    return config, run, tmp_path, calls


def test_a_video_that_cannot_be_decoded_while_labelling_is_left_out_and_listed(setup):
    config, run, tmp_path, calls = setup
    videos = _write_list(
        tmp_path / "videos.jsonl", [{"id": "good", "video": "good.mp4"}, {"id": "bad", "video": "other.mp4"}]
    )
    calls["unreadable"].add("bad")
    result = run(config(), videos)
    assert (result["labelled"], result["kept"]) == (1, 1) and len(calls["train"]) == 1
    data = json.loads((tmp_path / "rebirth" / "data" / "vs2_rebirth.json").read_text())
    assert [d["videos"][0] for d in data] == [str(tmp_path / "good.mp4")]
    (listed,) = _skipped(tmp_path / "rebirth")
    assert listed["id"] == "bad" and listed["file"] == str(tmp_path / "other.mp4")
    assert "moov atom not found" in listed["reason"]


def test_bad_samples_fail_stops_at_a_video_that_cannot_be_decoded_naming_it(setup):
    config, run, tmp_path, calls = setup
    videos = _write_list(
        tmp_path / "videos.jsonl", [{"id": "good", "video": "good.mp4"}, {"id": "bad", "video": "other.mp4"}]
    )
    calls["unreadable"].add("bad")
    with pytest.raises(DataError, match=r"bad video 'bad' while sampling .*other\.mp4: decoding failed"):
        run(config(bad_samples="fail"), videos)
    assert calls["train"] == []


def test_truncated_video_and_interval_past_the_clip_are_screened_out_and_listed(setup):
    config, run, tmp_path, calls = setup
    rows = [
        {
            "id": "good",
            "video": "good.mp4",
            "local": [{"start": 0, "end": 3, "reference": "A toddler."}],
        },  # no global reference: optional here
        {"id": "cut", "video": "cut.mp4"},
        {"id": "late", "video": "other.mp4", "local": [{"start": 20, "end": 40, "reference": "x"}]},
    ]
    videos = _write_list(tmp_path / "videos.jsonl", rows)
    result = run(config(), videos)
    assert set(calls["sampled"]) == {"good"} and result["labelled"] == 2  # global + one interval
    listed = {r["id"]: r for r in _skipped(tmp_path / "rebirth")}
    assert set(listed) == {"cut", "late"}
    assert listed["cut"]["file"] == str(tmp_path / "cut.mp4") and listed["cut"]["index"] == 1
    assert "past the video's end" in listed["late"]["reason"] and listed["late"]["index"] == 2


def test_bad_samples_fail_refuses_a_bad_row_before_labelling(setup):
    config, run, tmp_path, calls = setup
    rows = [
        {"id": "good", "video": "good.mp4"},
        {"id": "late", "video": "other.mp4", "local": [{"start": 20, "end": 40, "reference": "x"}]},
    ]
    videos = _write_list(tmp_path / "videos.jsonl", rows)
    with pytest.raises(DataError, match=r"bad video in .*videos\.jsonl: .*id 'late'.*past the video's end"):
        run(config(bad_samples="fail"), videos)
    assert calls["sampled"] == []
