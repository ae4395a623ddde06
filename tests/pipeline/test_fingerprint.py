"""Inputs by their contents: a moved model, adapter or video list resumes a run, a replaced one
is refused (``vs2 mrdpo`` and ``vs2 rebirth`` run folders)."""

from __future__ import annotations

import dataclasses
import json
import shutil

import pytest

from tests.support.paths import REPO
from vs2_plugin.errors import ConfigError
from vs2_plugin.pipeline import fingerprint as fp
from vs2_plugin.pipeline.config import load_mrdpo_config
from vs2_plugin.pipeline.mrdpo import start_run_folder
from vs2_plugin.pipeline.records import StepState

TINY = REPO / "recipes" / "tiny" / "mrdpo.yaml"


def _model(folder, weights: bytes):
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "x"}')
    (folder / "model.safetensors").write_bytes(weights)
    return folder


def test_a_folder_is_known_by_its_model_files_wherever_it_lies(tmp_path):
    a = _model(tmp_path / "a", b"w" * 100)
    moved = shutil.copytree(a, tmp_path / "elsewhere" / "a")
    assert fp.fingerprint(str(a)) == fp.fingerprint(str(moved))
    # training records and checkpoints are not the model
    (moved / "trainer_state.json").write_text("{}")
    (moved / "training_args.bin").write_bytes(b"args")
    (moved / "checkpoint-10").mkdir()
    (moved / "checkpoint-10" / "model.safetensors").write_bytes(b"other")
    assert fp.fingerprint(str(a)) == fp.fingerprint(str(moved))
    # other weights or another config at the same path are another model
    (moved / "model.safetensors").write_bytes(b"w" * 99 + b"x")
    assert fp.fingerprint(str(a)) != fp.fingerprint(str(moved))
    b = _model(tmp_path / "b", b"w" * 100)
    (b / "config.json").write_text('{"model_type": "y"}')
    assert fp.fingerprint(str(a)) != fp.fingerprint(str(b))
    assert fp.fingerprint("Qwen/Qwen2.5-VL-7B-Instruct") == "name:Qwen/Qwen2.5-VL-7B-Instruct"


def test_a_large_file_is_read_at_its_ends(tmp_path, monkeypatch):
    monkeypatch.setattr(fp, "EDGE_BYTES", 4)
    path = tmp_path / "w.bin"
    path.write_bytes(b"abcdMIDDLEwxyz")
    before = fp.file_fingerprint(path)
    path.write_bytes(b"abcdmiddlewxyz")  # a change between the ends is not read
    assert fp.file_fingerprint(path) == before
    for other in (b"abcdMIDDLEwxyZ", b"Abcdmiddlewxyz", b"abcdMIDDLEEwxyz"):  # the ends, the size
        path.write_bytes(other)
        assert fp.file_fingerprint(path) != before


def test_changed_inputs_names_those_whose_contents_differ():
    recorded = {"model": "m1", "adapters": ["a1"], "videos": "v1", "heldout": None, "old_only": "x"}
    current = {"model": "m1", "adapters": ["a1", "a2"], "videos": "v2", "heldout": "h1", "new_only": "y"}
    assert fp.changed_inputs(recorded, current) == [
        "adapters (its contents are not those the run was started with)",
        "heldout (unset when the run started)",
        "videos (its contents are not those the run was started with)",
    ]
    assert fp.changed_inputs(recorded, recorded) == []


def test_an_mrdpo_run_resumes_with_moved_inputs_and_refuses_replaced_ones(tmp_path, tiny_model_dir):
    model = shutil.copytree(tiny_model_dir, tmp_path / "model")
    videos = tmp_path / "train.jsonl"
    videos.write_text('{"id": "a", "video": "a.mp4", "reference": "A dog barks."}\n')
    run = tmp_path / "run"
    cfg = load_mrdpo_config(TINY, [f"run_dir={run}", f"model_name_or_path={model}", f"train_videos={videos}"])
    start_run_folder(cfg)
    recorded = json.loads((run / "config.json").read_text())
    assert recorded[fp.INPUTS_KEY]["train_videos"] == fp.fingerprint(str(videos))
    StepState(run).mark(0, "eval", {})  # a step made: from now on the run is resumed, not restarted

    moved = shutil.copytree(model, tmp_path / "moved" / "model")
    moved_list = shutil.copy(videos, tmp_path / "moved" / "train.jsonl")
    start_run_folder(dataclasses.replace(cfg, model_name_or_path=str(moved), train_videos=str(moved_list)))

    other = tmp_path / "other.jsonl"
    other.write_text('{"id": "a", "video": "a.mp4", "reference": "A cat meows."}\n')
    with pytest.raises(ConfigError, match=r"train_videos \(its contents are not those the run was started with\)"):
        start_run_folder(dataclasses.replace(cfg, train_videos=str(other)))
    weights = moved / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1] + b"\x00")  # trained further, at the same path
    with pytest.raises(ConfigError, match=r"model_name_or_path \(its contents"):
        start_run_folder(dataclasses.replace(cfg, model_name_or_path=str(moved)))
    # a refused rerun leaves the record of the last one that resumed
    assert json.loads((run / "config.json").read_text())[fp.INPUTS_KEY] == recorded[fp.INPUTS_KEY]
    assert json.loads((run / "config.json").read_text())["train_videos"] == str(moved_list)


def test_an_mrdpo_run_recorded_without_fingerprints_is_resumed(tmp_path, tiny_model_dir):
    run = tmp_path / "run"
    cfg = load_mrdpo_config(TINY, [f"run_dir={run}", f"model_name_or_path={tiny_model_dir}"])
    start_run_folder(cfg)
    recorded = json.loads((run / "config.json").read_text())
    del recorded[fp.INPUTS_KEY]
    (run / "config.json").write_text(json.dumps(recorded))
    start_run_folder(cfg)
    assert fp.INPUTS_KEY in json.loads((run / "config.json").read_text())


def test_a_run_folders_config_json_reads_back_as_its_config(tmp_path, tiny_model_dir):
    """``vs2 mrdpo RUN/config.json rounds=1 run_dir=OTHER`` starts another run with a run's settings."""
    run = tmp_path / "run"
    cfg = load_mrdpo_config(TINY, [f"run_dir={run}", f"model_name_or_path={tiny_model_dir}"])
    start_run_folder(cfg)
    again = load_mrdpo_config(run / "config.json", [f"run_dir={tmp_path / 'other'}"])
    assert dataclasses.replace(again, run_dir=cfg.run_dir) == cfg


def test_a_run_stopped_before_it_made_anything_restarts_with_the_corrected_settings(tmp_path, tiny_model_dir):
    """A list not found, a judge without its key: the run stopped after writing config.json and
    before any step; its rerun with the list or the judge mended is no resume of other settings."""
    run = tmp_path / "run"
    cfg = load_mrdpo_config(TINY, [f"run_dir={run}", f"model_name_or_path={tiny_model_dir}"])
    start_run_folder(dataclasses.replace(cfg, train_videos=str(tmp_path / "nope.jsonl"), seed=7))
    start_run_folder(cfg)
    assert json.loads((run / "config.json").read_text())["seed"] == cfg.seed
    (run / "round-000").mkdir()  # a held-out evaluation begun: something made, kept only for these settings
    with pytest.raises(ConfigError, match=r"was started with other settings: seed \(42 -> 7\)"):
        start_run_folder(dataclasses.replace(cfg, seed=7))
