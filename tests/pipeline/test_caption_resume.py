"""``vs2 caption`` resumes by contents, not by paths: a moved model or data folder keeps its
captions, a retrained model is refused naming it, a replaced video is captioned again, and rows of
ids the list no longer has are moved beside ``--out``. The model is never loaded: a stand-in
generator captions each video by its file name."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.support.paths import REPO
from vs2_plugin.cli import main as vs2_main
from vs2_plugin.errors import ConfigError
from vs2_plugin.pipeline import caption as cap
from vs2_plugin.pipeline import generation, predictions
from vs2_plugin.pipeline.generation import Caption


@pytest.fixture
def generated(monkeypatch) -> list[str]:
    """The keys captioned, in order, by a stand-in for the model."""
    keys: list[str] = []

    class Generator:
        def __init__(self, model, adapters, infer, max_new_tokens):
            pass

        def generate(self, groups, decoding, batch_size=4, on_batch=None):
            got = [Caption(k, f"a caption of {Path(g.video).name}", "stop") for g in groups for k in g.keys]
            keys.extend(c.key for c in got)
            on_batch(got)
            return got

    monkeypatch.setattr(generation, "CaptionGenerator", Generator)
    return keys


def _folder(path: Path, files: dict[str, bytes]) -> Path:
    path.mkdir(parents=True)
    for name, data in files.items():
        (path / name).write_bytes(data)
    return path


def _model(path: Path, weights: bytes = b"w" * 64) -> Path:
    return _folder(path, {"config.json": b'{"model_type": "x"}', "model.safetensors": weights})


def _adapter(path: Path, weights: bytes = b"a" * 64) -> Path:
    return _folder(path, {"adapter_config.json": b'{"r": 8}', "adapter_model.safetensors": weights})


def _data(path: Path, ids: list[str]) -> Path:
    """A data folder: ``videos.jsonl`` naming ``clips/<id>.mp4`` by relative path."""
    (path / "clips").mkdir(parents=True)
    for vid in ids:
        (path / "clips" / f"{vid}.mp4").write_bytes(f"frames of {vid}".encode() * 10)
    return _list(path / "videos.jsonl", ids)


def _list(path: Path, ids: list[str], video: str = "clips/{}.mp4") -> Path:
    path.write_text(
        "".join(
            json.dumps({"id": v, "video": video.format(v), "reference": f"A dog named {v} runs in a park."}) + "\n"
            for v in ids
        )
    )
    return path


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _caption(model: Path, videos: Path, out: Path, adapters: tuple[Path, ...] = ()) -> dict:
    settings = cap.Settings(str(model), [str(a) for a in adapters], {})
    return cap.caption_videos(settings, videos, out, progress=False)


def test_a_moved_model_resumes_and_a_retrained_one_is_refused_naming_it(tmp_path, generated):
    videos = _data(tmp_path / "data", ["v1"])
    out = tmp_path / "preds.jsonl"
    model, adapter = _model(tmp_path / "m"), _adapter(tmp_path / "a")
    _caption(model, videos, out, (adapter,))
    assert generated == ["v1/global"]

    # the same folders elsewhere: the captions are theirs, and the record names where they are now
    (tmp_path / "elsewhere").mkdir()
    moved = Path(shutil.move(model, tmp_path / "elsewhere" / "m"))
    assert _caption(moved, videos, out, (adapter,))["new"] == 0 and generated == ["v1/global"]
    record = json.loads(predictions.settings_path(out).read_text())
    assert record["model"] == str(moved.resolve()) and record["adapters"] == [str(adapter.resolve())]

    # trained further at the same path: other captions, refused with the input named
    (moved / "model.safetensors").write_bytes(b"w" * 63 + b"x")
    with pytest.raises(ConfigError) as exc:
        _caption(moved, videos, out, (adapter,))
    msg = str(exc.value)
    assert f"model ({moved.resolve()}: other contents than those its captions were made with)" in msg
    assert "adapters" not in msg and "--overwrite" in msg and "\n" not in msg
    (moved / "model.safetensors").write_bytes(b"w" * 64)
    (adapter / "adapter_model.safetensors").write_bytes(b"b" * 64)
    with pytest.raises(ConfigError, match=r"adapters\[0\] \(.*/a: other contents") as exc:
        _caption(moved, videos, out, (adapter,))
    assert "model (" not in str(exc.value)
    assert json.loads(predictions.settings_path(out).read_text()) == record and generated == ["v1/global"]


def test_the_command_names_the_retrained_model(tmp_path, generated, capsys):
    videos = _data(tmp_path / "data", ["v1"])
    out = tmp_path / "preds.jsonl"
    model = _model(tmp_path / "m")
    argv = ["caption", "--model", str(model), "--videos", str(videos), "--out", str(out), "--no-progress"]
    assert vs2_main(argv) == 0
    (model / "config.json").write_text('{"model_type": "y"}')
    assert vs2_main(argv) == 2
    err = capsys.readouterr().err
    assert f"model ({model.resolve()}: other contents than those its captions were made with)" in err, err


def test_a_record_of_an_older_vs2_resumes_with_its_paths_compared(tmp_path, generated):
    videos = _data(tmp_path / "data", ["v1"])
    out = tmp_path / "preds.jsonl"
    model = _model(tmp_path / "m")
    _caption(model, videos, out)
    record = json.loads(predictions.settings_path(out).read_text())
    older = {k: v for k, v in record.items() if k != "input_fingerprints"}
    predictions.settings_path(out).write_text(json.dumps(older))
    # the same path: resumed as before, the fingerprints recorded from now on
    assert _caption(model, videos, out)["new"] == 0
    assert json.loads(predictions.settings_path(out).read_text()) == record
    # without fingerprints a moved model cannot be told from another one: refused, as before
    predictions.settings_path(out).write_text(json.dumps(older))
    moved = shutil.copytree(model, tmp_path / "copy")
    with pytest.raises(ConfigError, match=r"model \(.*/m -> .*/copy\)"):
        _caption(moved, videos, out)


def test_a_moved_data_folder_keeps_its_rows_and_a_replaced_video_is_captioned_again(tmp_path, generated):
    videos = _data(tmp_path / "data", ["v1", "v2", "v3"])
    out = tmp_path / "preds.jsonl"
    model = _model(tmp_path / "m")
    _caption(model, videos, out)
    first = _rows(out)
    assert generated == ["v1/global", "v2/global", "v3/global"]

    # the list and its media moved together: nothing is captioned again, the rows name the new paths
    (tmp_path / "archive").mkdir()
    moved = Path(shutil.move(tmp_path / "data", tmp_path / "archive" / "data"))
    videos = moved / "videos.jsonl"
    assert _caption(model, videos, out)["new"] == 0 and len(generated) == 3
    rows = _rows(out)
    assert [r["video"] for r in rows] == [str((moved / "clips" / f"{v}.mp4").resolve()) for v in ("v1", "v2", "v3")]
    assert [{**r, "video": None} for r in rows] == [{**r, "video": None} for r in first]

    # a file replaced at its path, and a list that names another file: those are captioned again
    (moved / "clips" / "v2.mp4").write_bytes(b"another recording")
    (moved / "clips" / "other.mp4").write_bytes(b"frames of a third clip")
    lines = videos.read_text().splitlines()
    lines[2] = json.dumps({"id": "v3", "video": "clips/other.mp4", "reference": "A dog named v3 runs in a park."})
    videos.write_text("\n".join(lines) + "\n")
    with pytest.warns(UserWarning, match=r"recaptioning 2 row\(s\).*'v2', 'v3'"):
        assert _caption(model, videos, out)["new"] == 2
    assert generated[3:] == ["v2/global", "v3/global"]
    assert [r["predict"] for r in _rows(out)] == [
        "a caption of v1.mp4",
        "a caption of v2.mp4",
        "a caption of other.mp4",
    ]


def test_rows_of_ids_no_longer_listed_are_moved_beside_the_predictions(tmp_path, generated, capsys):
    videos = _data(tmp_path / "data", ["v1", "v2", "v3"])
    out = tmp_path / "preds.jsonl"
    model = _model(tmp_path / "m")
    argv = ["caption", "--model", str(model), "--videos", str(videos), "--out", str(out), "--no-progress"]
    assert vs2_main(argv) == 0
    rows = {r["key"]: r for r in _rows(out)}

    _list(videos, ["v1", "v3"])
    assert vs2_main(argv) == 0
    err = capsys.readouterr().err
    unlisted = tmp_path / "preds.unlisted.jsonl"
    assert f"moved 1 row(s) of 1 id(s) that {videos} no longer lists to {unlisted}" in err, err
    assert [r["key"] for r in _rows(out)] == ["v1/global", "v3/global"]
    assert _rows(unlisted) == [rows["v2/global"]]
    assert predictions.unlisted_path(out) == unlisted

    # a rerun of the same list moves nothing; another id removed is added to the same file
    assert vs2_main(argv) == 0 and "no longer lists" not in capsys.readouterr().err
    _list(videos, ["v3"])
    assert vs2_main(argv) == 0
    assert [r["key"] for r in _rows(out)] == ["v3/global"]
    assert _rows(unlisted) == [rows["v2/global"], rows["v1/global"]] and len(generated) == 3

    # vs2 eval judges the list's rows only
    report = tmp_path / "report.json"
    assert vs2_main(["eval", "--input", str(out), "--out", str(report), "--quiet"]) == 0
    assert [i["id"] for i in json.loads(report.read_text())["items"]] == ["v3/global"]

    # --overwrite starts afresh: the set-aside rows were made with the old settings too
    assert vs2_main([*argv, "--overwrite"]) == 0 and not unlisted.exists()


def test_rows_of_a_listed_id_that_this_task_does_not_caption_stay(tmp_path, generated):
    clip = REPO / "vs2_plugin" / "assets" / "demo_data" / "media" / "drawing.mp4"  # 5 s
    videos = tmp_path / "videos.jsonl"
    rows = [{"id": "v1", "video": str(clip), "local": [{"start": 0, "end": 3}]}, {"id": "v2", "video": str(clip)}]
    videos.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "preds.jsonl"
    settings = cap.Settings(str(_model(tmp_path / "m")), [], {})
    cap.caption_videos(settings, videos, out, task="both", progress=False)
    both = _rows(out)
    assert [r["key"] for r in both] == ["v1/global", "v1/local/0-3", "v2/global"]
    # v2 has no interval, so no job of --task local, yet the list has it: its global row stays
    assert cap.caption_videos(settings, videos, out, task="local", progress=False)["new"] == 0
    assert _rows(out) == both and not predictions.unlisted_path(out).exists()


def test_a_kept_row_is_compared_with_the_row_its_job_would_write(tmp_path):
    videos = _data(tmp_path / "data", ["v1"])
    (job,), _ = cap.read_jobs(videos, "global", cap.Settings("m", [], {}))
    listed = cap.listed_row(job)
    row = cap.output_row(job, Caption(job.key, "text", "stop"))
    assert {k: v for k, v in row.items() if k not in ("predict", "finish_reason")} == listed
    assert cap.made_for(row, listed) and not cap.stale_rows([row], [job])
    assert cap.made_for({**row, "video": "/elsewhere/v1.mp4"}, listed)  # by contents, not path
    assert not cap.made_for({**row, "label": "other"}, listed)
    assert not cap.made_for({**row, "video_fingerprint": "0" * 16}, listed)
    # a row of an older vs2 has no fingerprint: its path is what tells its video
    older = {k: v for k, v in row.items() if k != "video_fingerprint"}
    assert cap.made_for(older, listed) and not cap.made_for({**older, "video": "/elsewhere/v1.mp4"}, listed)
