"""``vs2 build-tiny``: a build that fails leaves ``--out`` as it was; no flag is ignored without a word."""

from __future__ import annotations

import shutil

from vs2_plugin.cli import main


def _files(folder):
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def test_a_failed_build_over_a_model_keeps_it(tiny_model_dir, tmp_path, capsys):
    """``--overwrite`` with a window the model refuses: the old model (maybe trained since) stays."""
    out = shutil.copytree(tiny_model_dir, tmp_path / "model")
    before = _files(out)
    assert main(["build-tiny", "--out", str(out), "--overwrite", "--window", "0.25"]) == 2
    assert "audio_window_s=0.25 is not a whole number of encoder frames" in capsys.readouterr().err
    assert _files(out) == before
    assert main(["build-tiny", "--out", str(tmp_path / "new"), "--window", "0.25"]) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no --out, no temporary folder


def test_window_of_a_text_only_model_is_refused(tmp_path, capsys):
    assert main(["build-tiny", "--out", str(tmp_path / "text"), "--text-only", "--window", "0.4"]) == 2
    assert "--window is the audio Q-Former's window; a --text-only model has no audio branch" in capsys.readouterr().err
    assert not (tmp_path / "text").exists()
