"""``vs2 caption`` on a finished tiny mrDPO run: one prediction per video and task, judged by
``vs2 eval`` as it is, resumed on rerun, bad videos listed and never fatal."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.paths import REPO
from vs2_plugin.cli import main as vs2_main
from vs2_plugin.errors import ConfigError

DEMO = REPO / "vs2_plugin" / "assets" / "demo_data"


@pytest.fixture(scope="module")
def mrdpo_run(tiny_model_dir, tmp_path_factory) -> Path:
    """One mrDPO round on the tiny model (the cheapest run that writes final_model.json)."""
    from vs2_plugin.pipeline.config import load_mrdpo_config
    from vs2_plugin.pipeline.mrdpo import run_mrdpo

    run = tmp_path_factory.mktemp("caption-run") / "mrdpo"
    cfg = load_mrdpo_config(
        REPO / "recipes" / "tiny" / "mrdpo.yaml",
        run_dir=str(run),
        model_name_or_path=str(tiny_model_dir),
        rounds=1,
        train_videos=str(DEMO / "vs2_demo_rl.jsonl"),
        heldout_videos=str(DEMO / "vs2_demo_heldout.jsonl"),
    )
    cfg.sampling.max_new_tokens = 12
    cfg.thresholds = [{"delta_e_global": -1.0, "delta_r_global": -1.0, "delta_e_local": -1.0, "delta_r_local": -1.0}]
    cfg.train.update(max_steps=2, save_steps=2)
    run_mrdpo(cfg, progress=False)
    assert json.loads((run / "final_model.json").read_text())["adapters"]
    return run


def _video_list(tmp_path: Path) -> Path:
    """The held-out list (absolute paths), one missing file and one unreadable file."""
    rows = [json.loads(line) for line in (DEMO / "vs2_demo_heldout.jsonl").read_text().splitlines() if line.strip()]
    rows += [json.loads(line) for line in (DEMO / "vs2_demo_rl.jsonl").read_text().splitlines()[:1]]
    for r in rows:
        r["video"] = str(DEMO / r["video"])
    # the list's atomic events travel with the predictions to vs2 eval (instead of extracted ones)
    rows[0]["events"] = ["A toddler plays on a rug", "A fire burns in a fireplace"]
    rows[0]["local"][0]["events"] = ["A toddler sits on the rug"]
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 100)
    rows.insert(1, {"id": "gone", "video": str(tmp_path / "gone.mp4")})
    rows.append({"id": "broken", "video": str(broken), "reference": "A clip."})
    path = tmp_path / "videos.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.mark.slow
def test_caption_a_run_then_eval_resume_and_bad_videos(mrdpo_run, tmp_path, capsys):
    videos = _video_list(tmp_path)
    out = tmp_path / "P.jsonl"
    args = [
        "caption",
        "--run",
        str(mrdpo_run),
        "--videos",
        str(videos),
        "--out",
        str(out),
        "--task",
        "both",
        "--batch-size",
        "3",
        "--no-progress",
    ]
    assert vs2_main(args) == 0
    rows = _rows(out)
    listed = _rows(videos)
    good = [listed[0], listed[2]]  # the held-out clip and a training clip; 1 and 3 are bad
    expected = {f"{g['id']}/global" for g in good} | {
        f"{g['id']}/local/{iv['start']:g}-{iv['end']:g}" for g in good for iv in g["local"]
    }
    assert {r["key"] for r in rows} == expected and len(rows) == len(expected)
    for r in rows:
        assert isinstance(r["predict"], str) and r["predict"].strip(), r
        assert r["prompt"].startswith("<video>") and r["label"] and r["task"] in ("global", "local")
        assert r["id"] in {g["id"] for g in good} and Path(r["video"]).is_file()
    local = [r for r in rows if r["task"] == "local"]
    assert local and all(f"between {r['start']:g} and {r['end']:g} seconds" in r["prompt"] for r in local)
    bad = _rows(tmp_path / "P.bad_videos.jsonl")
    assert {b["id"] for b in bad} == {"gone", "broken"}
    err = capsys.readouterr().err
    assert "bad video" in err and "gone.mp4" in err and "broken.mp4" in err

    # vs2 eval takes the file as it is: predict = caption, label = reference
    report = tmp_path / "eval" / "report.json"
    assert vs2_main(["eval", "--input", str(out), "--out", str(report), "--quiet"]) == 0
    items = json.loads(report.read_text())["items"]
    assert sorted(i["id"] for i in items) == sorted(expected)
    assert all(i["status"] == "ok" and i["n_events"] > 0 for i in items)
    first = listed[0]
    with_events = {
        f"{first['id']}/global": 2,
        f"{first['id']}/local/{first['local'][0]['start']:g}-{first['local'][0]['end']:g}": 1,
    }
    assert {r["key"]: len(r["events"]) for r in rows if "events" in r} == with_events
    assert {i["id"]: i["n_events"] for i in items if i["id"] in with_events} == with_events

    # a rerun resumes: the rows left are kept as they are, the missing ones come back the same
    lines = out.read_text().splitlines(keepends=True)
    out.write_text("".join(lines[:2]) + lines[2][:20])  # the third row torn mid-write
    assert vs2_main(args) == 0
    again = _rows(out)
    assert out.read_text().startswith("".join(lines[:2]))
    assert sorted((r["key"], r["predict"]) for r in again) == sorted((r["key"], r["predict"]) for r in rows)
    assert f"({len(expected) - 2} new)" in capsys.readouterr().out


@pytest.mark.slow
def test_batched_captions_equal_unbatched_for_greedy_decoding(mrdpo_run, tmp_path):
    final = json.loads((mrdpo_run / "final_model.json").read_text())
    videos = _video_list(tmp_path)
    texts = []
    for size in ("1", "5"):
        out = tmp_path / f"b{size}.jsonl"
        assert (
            vs2_main(
                [
                    "caption",
                    "--model",
                    final["model"],
                    "--adapters",
                    *final["adapters"],
                    "--videos",
                    str(videos),
                    "--out",
                    str(out),
                    "--task",
                    "both",
                    "--batch-size",
                    size,
                    "--max-new-tokens",
                    "12",
                    "--infer",
                    "video_fps=1.0",
                    "video_maxlen=30",
                    "video_max_pixels=12544",
                    "--no-progress",
                ]
            )
            == 0
        )
        texts.append({r["key"]: r["predict"] for r in _rows(out)})
    assert len(texts[0]) == 6 and texts[0] == texts[1]


def test_run_settings_of_a_rebirth_folder_and_errors(tmp_path):
    from vs2_plugin.pipeline.caption import run_settings
    from vs2_plugin.pipeline.records import StepState

    rebirth = tmp_path / "rebirth"
    rebirth.mkdir()
    StepState(rebirth).mark(0, "train", {"adapter": str(rebirth / "sft"), "model": "/models/aligned"})
    s = run_settings(rebirth)
    assert (s.model, s.adapters) == ("/models/aligned", [str(rebirth / "sft")])
    assert s.infer["use_audio_in_video"] is True
    with pytest.raises(ConfigError, match="neither an mrDPO run"):
        run_settings(tmp_path)
    # an mrDPO run: its config's prompts and media settings are used
    run = tmp_path / "run"
    run.mkdir()
    (run / "final_model.json").write_text(json.dumps({"model": "/m", "adapters": ["/a1", "/a2"]}))
    (run / "config.json").write_text(
        json.dumps({"infer": {"video_fps": 2.0}, "sampling": {"global_prompt": "Say it."}})
    )
    s = run_settings(run)
    assert (s.model, s.adapters, s.global_prompt, s.infer["video_fps"]) == ("/m", ["/a1", "/a2"], "Say it.", 2.0)


def test_eval_reads_llamafactory_predictions(tmp_path):
    rows = [
        {"prompt": "p", "predict": "A dog runs in a park.", "label": "A dog runs in a park. A man sings."},
        {"prompt": "p", "predict": "Rain.", "label": "Rain falls on a street."},
    ]
    path = tmp_path / "generated_predictions.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    report = tmp_path / "r.json"
    assert vs2_main(["eval", "--input", str(path), "--out", str(report), "--quiet"]) == 0
    items = json.loads(report.read_text())["items"]
    assert [i["id"] for i in items] == ["line1", "line2"] and all(i["status"] == "ok" for i in items)
    # a row with a caption reads its label as the reference too (it had been ignored)
    path.write_text(json.dumps({"id": "a", "caption": "A dog runs in a park.", "label": rows[0]["label"]}) + "\n")
    assert vs2_main(["eval", "--input", str(path), "--out", str(report), "--quiet"]) == 0
    [item] = json.loads(report.read_text())["items"]
    assert item["status"] == "ok" and item["n_events"] == 2 and len(item["missed"]) == 1
