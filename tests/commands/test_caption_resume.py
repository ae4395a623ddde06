"""``vs2 caption`` reruns into an existing ``--out``: a file that is not a predictions file is refused
and left as it is, rows of an edited video list are captioned again, a repeated interval is refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.paths import REPO
from vs2_plugin.cli import main as vs2_main
from vs2_plugin.errors import DataError

MEDIA = REPO / "vs2_plugin" / "assets" / "demo_data" / "media"


def _write_list(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _args(model: Path, videos: Path, out: Path, *extra: str) -> list[str]:
    return [
        "caption",
        "--model",
        str(model),
        "--videos",
        str(videos),
        "--out",
        str(out),
        "--max-new-tokens",
        "2",
        "--infer",
        "video_fps=1.0",
        "video_maxlen=4",
        "video_max_pixels=12544",
        "--no-progress",
        *extra,
    ]


@pytest.mark.parametrize(
    "name, content",
    [
        ("notes.txt", b"line one\nline two no newline"),
        ("victim.mp4", (MEDIA / "drawing.mp4").read_bytes()[:4096]),
        ("other.jsonl", b'{"id": "a", "text": "not a caption"}\n'),
        ("one_line.txt", b"a single line without its newline"),
    ],
)
def test_an_out_that_is_not_a_predictions_file_is_refused_and_left_as_it_is(
    tiny_model_dir, tmp_path, capsys, name, content
):
    videos = _write_list(tmp_path / "videos.jsonl", [{"id": "v1", "video": str(MEDIA / "drawing.mp4")}])
    out = tmp_path / name
    out.write_bytes(content)
    for extra in ((), ("--overwrite",)):
        assert vs2_main(_args(tiny_model_dir, videos, out, *extra)) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and f"--out {out}:" in err[0] and "left as it is" in err[0], err
        assert out.read_bytes() == content


def test_a_row_of_an_edited_list_is_captioned_again(tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "P.jsonl"
    old = _write_list(
        tmp_path / "videos.jsonl", [{"id": "v1", "video": str(MEDIA / "drawing.mp4"), "reference": "OLD"}]
    )
    assert vs2_main(_args(tiny_model_dir, old, out)) == 0
    assert "(1 new)" in capsys.readouterr().out
    # a torn tail of an interrupted write is still dropped, and a valid rerun is not refused
    out.write_bytes(out.read_bytes() + b'{"key": "v1/glo')

    new = _write_list(old, [{"id": "v1", "video": str(MEDIA / "living_room.mp4"), "reference": "NEW"}])
    assert vs2_main(_args(tiny_model_dir, new, out)) == 0
    captured = capsys.readouterr()
    assert "(1 new)" in captured.out and "recaptioning 1 row" in captured.err and "'v1'" in captured.err
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 1 and rows[0]["key"] == "v1/global"
    assert (Path(rows[0]["video"]).name, rows[0]["label"]) == ("living_room.mp4", "NEW")

    # the list unchanged: the row is kept
    assert vs2_main(_args(tiny_model_dir, new, out)) == 0
    assert "(0 new)" in capsys.readouterr().out

    # events added to the list (or changed) change no caption: the row is kept, with the events
    kept = out.read_text()
    events = ["A toddler plays on a rug", "A fire burns"]
    listed = {"id": "v1", "video": str(MEDIA / "living_room.mp4"), "reference": "NEW", "events": events}
    assert vs2_main(_args(tiny_model_dir, _write_list(old, [listed]), out)) == 0
    captured = capsys.readouterr()
    assert "(0 new)" in captured.out and "recaptioning" not in captured.err
    [row] = [json.loads(line) for line in out.read_text().splitlines()]
    assert row["events"] == events and row["predict"] == json.loads(kept)["predict"]
    assert vs2_main(_args(tiny_model_dir, _write_list(old, [{**listed, "events": None}]), out)) == 0
    assert "events" not in json.loads(out.read_text()) and "(0 new)" in capsys.readouterr().out


def test_a_repeated_interval_is_refused(tmp_path):
    from vs2_plugin.pipeline.caption import Settings, read_jobs
    from vs2_plugin.pipeline.videos import load_videos

    row = {
        "id": "v1",
        "video": str(MEDIA / "living_room.mp4"),
        "reference": "A room.",
        "local": [
            {"start": 0, "end": 3, "reference": "first"},
            {"start": 3, "end": 6, "reference": "second"},
            {"start": 0.0, "end": 3.0, "reference": "first again"},
        ],
    }
    videos = _write_list(tmp_path / "videos.jsonl", [row])
    with pytest.raises(
        DataError, match=r"videos\.jsonl:1: video 'v1': local\[2\] \(start 0, end 3\) repeats local\[0\]"
    ):
        load_videos(videos)

    jobs, bad = read_jobs(videos, "local", Settings("m", [], {}))
    assert sorted(j.key for j in jobs) == ["v1/local/0-3", "v1/local/3-6"]
    assert [(b["line"], b["id"], b["local"]) for b in bad] == [(1, "v1", 2)] and "repeats local[0]" in bad[0]["error"]
