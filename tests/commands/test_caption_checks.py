"""``vs2 caption`` input checks: a rerun with other settings is refused (``--overwrite`` starts
afresh), a malformed line or interval of the video list is a bad row rather than the end of the
run, and a wrong model, ``--out``, ``--videos``, ``--infer`` or ``--top-p`` is one line before
anything is loaded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.paths import REPO
from vs2_plugin.cli import main as vs2_main
from vs2_plugin.errors import ConfigError, DataError
from vs2_plugin.pipeline.caption import Settings, read_jobs
from vs2_plugin.pipeline.predictions import caption_settings, start_or_resume

MEDIA = REPO / "vs2_plugin" / "assets" / "demo_data" / "media"
CLIP = MEDIA / "drawing.mp4"  # 5.0 s video, 5.04 s audio


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_malformed_lines_and_intervals_are_bad_rows(tmp_path):
    folder = tmp_path / "a-folder.mp4"
    folder.mkdir()
    lines = [
        json.dumps({"id": "ok", "video": str(CLIP), "local": [{"start": 20, "end": 30}, {"start": 1, "end": 5.3}]}),
        "",  # blank lines do not shift the line numbers reported
        "not json at all",
        "[1, 2]",
        json.dumps({"id": 5, "video": 3}),
        json.dumps({"id": "dir", "video": str(folder)}),
        json.dumps({"id": "huge", "video": str(CLIP), "local": [{"start": 0, "end": 1e9}, {"start": 3, "end": 1}]}),
        json.dumps({"id": "text", "video": str(CLIP), "local": "0-3"}),
    ]
    listing = tmp_path / "videos.jsonl"
    listing.write_text("\n".join(lines) + "\n")
    jobs, bad = read_jobs(listing, "both", Settings("m", [], {}))
    # a list that is no JSON lines at all is said once, before any model loads
    array = tmp_path / "videos.json"
    array.write_text(json.dumps([json.loads(lines[0])], indent=1))
    with pytest.raises(DataError, match=r"videos.json: no line is a JSON object \(line 1: .*not an array\)"):
        read_jobs(array, "both", Settings("m", [], {}))
    # every video's global caption is kept, and the one good interval
    assert [j.key for j in jobs] == ["ok/global", "ok/local/1-5.3", "huge/global", "text/global"]
    reasons = {(b["line"], b.get("local")): b["error"] for b in bad}
    assert "past the video's end (5.04 s)" in reasons[(1, 0)]
    assert reasons[(3, None)].startswith("not valid JSON")
    assert reasons[(4, None)] == "not a JSON object (a list)"
    assert reasons[(5, None)] == "'video' must be a path (a string), got 3"
    assert reasons[(6, None)] == f"video path is a directory, not a file: {folder}"
    assert "local[0] (start 0, end 1e+09) is past the video's end" in reasons[(7, 0)]
    assert "local[1] has start=3 end=1" in reasons[(7, 1)]
    assert "'local' must be a list" in reasons[(8, None)]
    assert len(bad) == 8
    # a global-only run does not look at the intervals
    jobs, bad = read_jobs(listing, "global", Settings("m", [], {}))
    assert len(jobs) == 3 and {b["line"] for b in bad} == {3, 4, 5, 6}


def test_settings_record_names_what_differs(tmp_path):
    out = tmp_path / "P.jsonl"
    base = Settings(str(tmp_path / "model"), [str(tmp_path / "a1")], {"video_fps": 1.0})
    record = caption_settings(base, "global", None, 0.9, 42)
    start_or_resume(out, record, overwrite=False)
    assert json.loads((tmp_path / "P.settings.json").read_text()) == record
    out.write_text(json.dumps({"key": "v/global", "predict": "x"}) + "\n")
    start_or_resume(out, caption_settings(base, "global", None, 0.5, 7), overwrite=False)  # greedy: top-p moot
    other = Settings(base.model, [str(tmp_path / "a2")], {"video_fps": 2.0}, global_prompt="Say it.")
    with pytest.raises(ConfigError) as exc:
        start_or_resume(out, caption_settings(other, "global", 0.7, 0.9, 42), overwrite=False)
    msg = str(exc.value)
    assert "adapters" in msg and "infer.video_fps (1.0 -> 2.0)" in msg and "global_prompt" in msg
    assert "decoding (greedy -> temperature 0.7, top_p 0.9, seed 42)" in msg
    assert "--overwrite" in msg and "\n" not in msg
    start_or_resume(out, caption_settings(other, "global", 0.7, 0.9, 42), overwrite=True)
    assert not out.exists() and json.loads((tmp_path / "P.settings.json").read_text())["adapters"] == [
        str(tmp_path / "a2")
    ]
    # rows without a record (made by an older vs2) are resumed with these settings, recorded from now on
    (tmp_path / "P.settings.json").unlink()
    out.write_text(json.dumps({"key": "v/global", "predict": "x"}) + "\n")
    with pytest.warns(UserWarning, match="has no P.settings.json; resuming it"):
        start_or_resume(out, record, overwrite=False)
    assert json.loads((tmp_path / "P.settings.json").read_text()) == record
    # another task makes rows of other keys: resumed, and both prompts are recorded
    both = caption_settings(base, "both", None, 0.9, 42)
    start_or_resume(out, both, overwrite=False)
    assert json.loads((tmp_path / "P.settings.json").read_text()).keys() >= {"global_prompt", "local_prompt"}


def test_a_rerun_with_other_settings_is_refused(tiny_model_dir, tmp_path, capsys):
    listing = tmp_path / "videos.jsonl"
    listing.write_text(json.dumps({"id": "v", "video": str(CLIP), "local": [{"start": 0, "end": 30}]}) + "\n" + "[1]\n")
    out = tmp_path / "P.jsonl"
    args = ["caption", "--model", str(tiny_model_dir), "--videos", str(listing), "--out", str(out), "--no-progress"]
    args += ["--task", "both", "--max-new-tokens", "2"]
    assert vs2_main(args) == 0
    assert [r["key"] for r in _rows(out)] == ["v/global"]
    err = capsys.readouterr().err
    assert "bad interval (line 1, id 'v'" in err and "bad video (line 2): not a JSON object" in err
    assert vs2_main(args) == 0 and "(0 new)" in capsys.readouterr().out  # same settings: resumed
    for extra, named in (
        (["--temperature", "0.7"], "decoding (greedy -> temperature 0.7"),
        (["--max-new-tokens", "3"], "max_new_tokens (2 -> 3)"),
        (["--infer", "video_fps=1"], "infer.video_fps (unset -> 1.0)"),
    ):
        assert vs2_main([*args, *extra]) == 2
        err = capsys.readouterr().err
        assert named in err and "--overwrite" in err, err
    assert vs2_main([*args[:-4], "--task", "global", "--max-new-tokens", "2"]) == 0  # rows of its task are there
    assert "(0 new)" in capsys.readouterr().out
    assert vs2_main([*args, "--max-new-tokens", "3", "--overwrite"]) == 0
    assert len(_rows(out)) == 1 and json.loads((tmp_path / "P.settings.json").read_text())["max_new_tokens"] == 3


def test_wrong_inputs_are_one_line_before_loading(tiny_model_dir, tmp_path, capsys):
    listing = tmp_path / "videos.jsonl"
    listing.write_text(json.dumps({"id": "v", "video": str(CLIP)}) + "\n")
    out = tmp_path / "preds" / "P.jsonl"
    model = ["--model", str(tiny_model_dir)]
    cases = [
        (["--model", str(tmp_path / "nope")], [], f"--model {tmp_path / 'nope'}: not found"),
        (["--model", str(tmp_path)], [], "config.json not found (not a model folder)"),
        (model, ["--adapters", str(tmp_path)], "adapter_config.json not found"),
        (["--run", str(tmp_path / "nope")], [], "not found"),
        (model, ["--out", str(tmp_path)], f"--out {tmp_path}: a directory"),
        (model, ["--videos", str(tmp_path)], f"--videos {tmp_path}: a directory, not a JSONL file"),
        (model, ["--infer", "video_fps=abc"], "--infer: video_fps: 'abc' is str, not float"),
        # a number where text is meant: refused with the way out, never turned back into lossy text ("1.10")
        (model, ["--infer", "model_revision=1.10"], "model_revision: 1.1 is float, not str; quote it to give text"),
        (model, ["--infer", "vidoe_fps=1"], "--infer: unknown argument(s) vidoe_fps (did you mean video_fps?)"),
        (model, ["--infer", "max_new_tokens=9"], "--infer max_new_tokens: set by --max-new-tokens"),
        # LLaMA-Factory looks the template up only once the model is loaded, and fails with a traceback
        (model, ["--infer", "template=nosuch"], "--infer: template: 'nosuch' is not registered with LLaMA-Factory"),
        (
            model,
            ["--infer", "template=video_salmon2"],
            "'video_salmon2' is not registered with LLaMA-Factory (did you mean video_salmonn2?)",
        ),
        # another template's plugin would caption the model's videos without their audio
        (model, ["--infer", "template=qwen2_vl"], "--infer: template: 'qwen2_vl' with "),
        (model, ["--temperature", "1", "--top-p", "5"], "--top-p must be in (0, 1]; got 5.0"),
        (model, ["--top-p", "0.5"], "--top-p applies when sampling: give --temperature too"),
    ]
    for source, extra, message in cases:
        options = {"--videos": str(listing), "--out": str(out)}
        if extra and extra[0] in options:
            options[extra[0]] = extra[1]
            extra = []
        argv = ["caption", *source, *[x for pair in options.items() for x in pair], *extra]
        assert vs2_main(argv) == 2, argv
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, (argv, err)
    assert not (tmp_path / "logs").exists()  # --out a directory: no log beside it
    assert not out.exists()
