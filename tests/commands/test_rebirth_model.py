"""A ``vs2 rebirth`` folder is a finished model for ``vs2 caption --run`` and ``vs2 export --run``
whether its SFT trained a LoRA adapter (post-alignment model + adapter) or the full model (the
trained folder alone), including folders recorded before the two were told apart."""

from __future__ import annotations

import json
import shutil

import pytest

from tests.support.paths import REPO
from vs2_plugin.cli import main as vs2_main
from vs2_plugin.pipeline.records import StepState, finished_model

CLIP = REPO / "vs2_plugin" / "assets" / "demo_data" / "media" / "drawing.mp4"


@pytest.fixture(scope="module")
def rebirths(tiny_model_dir, tmp_path_factory, random_adapter):
    """Three rebirth folders: full fine-tuning, full fine-tuning recorded as an adapter (older
    vs2), LoRA."""
    root = tmp_path_factory.mktemp("rebirths")
    full, legacy, lora = root / "full", root / "legacy", root / "lora"
    for folder in (full, legacy):
        shutil.copytree(tiny_model_dir, folder / "sft")  # what full SFT leaves: a complete model
    StepState(full).mark(0, "train", {"model": str(full / "sft"), "finetuning_type": "full", "run_dir": str(full)})
    StepState(legacy).mark(0, "train", {"adapter": str(legacy / "sft"), "model": str(tiny_model_dir)})
    random_adapter(tiny_model_dir, lora / "sft", seed=3, aligner=False)
    StepState(lora).mark(
        0, "train", {"model": str(tiny_model_dir), "adapter": str(lora / "sft"), "finetuning_type": "lora"}
    )
    return {"full": full, "legacy": legacy, "lora": lora, "base": tiny_model_dir, "root": root}


def test_finished_model_of_each_kind(rebirths):
    assert finished_model(rebirths["full"]) == (str(rebirths["full"] / "sft"), [])
    assert finished_model(rebirths["legacy"]) == (str(rebirths["legacy"] / "sft"), [])
    assert finished_model(rebirths["lora"]) == (str(rebirths["base"]), [str(rebirths["lora"] / "sft")])
    moved = rebirths["root"] / "moved"  # a full model inside the folder moves with it
    shutil.copytree(rebirths["full"], moved)
    assert finished_model(moved) == (str(moved / "sft"), [])


@pytest.mark.parametrize("kind", ["full", "legacy", "lora"])
def test_caption_and_export_a_rebirth_folder(rebirths, kind, tmp_path):
    run = rebirths[kind]
    out = tmp_path / "merged"
    assert vs2_main(["export", "--run", str(run), "--out", str(out)]) == 0
    sources = json.loads((out / "vs2_export.json").read_text())
    assert sources["adapters"] == ([] if kind != "lora" else [str(run / "sft")])
    listing = tmp_path / "videos.jsonl"
    listing.write_text(json.dumps({"id": "v", "video": str(CLIP)}) + "\n")
    preds = tmp_path / "P.jsonl"
    argv = ["caption", "--run", str(run), "--videos", str(listing), "--out", str(preds), "--max-new-tokens", "2"]
    assert vs2_main([*argv, "--no-progress"]) == 0
    assert [json.loads(line)["key"] for line in preds.read_text().splitlines()] == ["v/global"]


def test_export_names_a_missing_run_and_a_file_out(rebirths, tmp_path, capsys):
    assert vs2_main(["export", "--run", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 2
    assert f"--run {tmp_path / 'nope'}: not found" in capsys.readouterr().err
    taken = tmp_path / "file"
    taken.write_text("x")
    assert vs2_main(["export", "--run", str(rebirths["full"]), "--out", str(taken)]) == 2
    assert f"--out {taken}: an existing file" in capsys.readouterr().err
    assert taken.read_text() == "x"
