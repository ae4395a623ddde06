"""The quiet console: library output of every kind lands in the log, the terminal keeps one line per step."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
import warnings

import pytest

from vs2_plugin.pipeline import console
from vs2_plugin.pipeline.console import JsonlProgress, RunConsole, TrainerLogProgress, progress_text


class Terminal(io.StringIO):
    def __init__(self, tty: bool):
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


def noisy_library_output() -> None:
    """What LLaMA-Factory, transformers and a child process do: logging handlers bound to the
    streams, print, writes straight to the file descriptors, a child that inherits them, warnings."""
    logger = logging.getLogger("noisy.library")
    logger.propagate = False
    handler = logging.StreamHandler(sys.stdout)  # bound at import time, like LLaMA-Factory's
    logger.addHandler(handler)
    try:
        logger.warning("LIB-LOGGING")
        print("LIB-PRINT")
        print("LIB-STDERR", file=sys.stderr)
        sys.stdout.flush()
        import os

        os.write(1, b"LIB-FD1\n")
        os.write(2, b"LIB-FD2\n")
        subprocess.run(
            [sys.executable, "-c", "import sys; print('CHILD-OUT'); print('CHILD-ERR', file=sys.stderr)"], check=True
        )
        warnings.warn("LIB-WARNING", UserWarning, stacklevel=1)
    finally:
        logger.removeHandler(handler)


def test_library_output_goes_to_the_log_and_steps_to_the_terminal(tmp_path, capfd):
    term = Terminal(tty=False)
    log = tmp_path / "logs" / "run.log"
    with RunConsole(log, stream=term, command="vs2 test"):
        with console.stage("mrDPO"):
            console.set_round(1, 2)
            with console.step("train", total=3, unit="step"):
                noisy_library_output()
            console.warn("2 videos skipped (see skipped_videos.jsonl)")
    shown = term.getvalue().splitlines()
    assert shown[0] == f"vs2 test: full log: {log.resolve()}"
    assert shown[1].startswith("mrDPO · round 1/2 · train  [") and "3/3 step" in shown[1]
    assert shown[2] == "warning: 2 videos skipped (see skipped_videos.jsonl)"
    assert len(shown) == 3
    text = log.read_text()
    for marker in (
        "LIB-LOGGING",
        "LIB-PRINT",
        "LIB-STDERR",
        "LIB-FD1",
        "LIB-FD2",
        "CHILD-OUT",
        "CHILD-ERR",
        "LIB-WARNING",
    ):
        assert marker in text, marker
    assert "[console] mrDPO · round 1/2 · train" in text  # the log has the steps too, in order
    out, err = capfd.readouterr()  # nothing escaped to the real descriptors
    assert "LIB-" not in out + err and "CHILD-" not in out + err
    # the descriptors are back: output after the block reaches the terminal again
    print("AFTER")
    assert "AFTER" in capfd.readouterr().out


def test_verbose_keeps_library_output_on_the_terminal(tmp_path, capfd):
    term = Terminal(tty=False)
    with RunConsole(tmp_path / "run.log", stream=term, verbose=True):
        with console.step("judge"):
            print("LIB-PRINT", flush=True)
    assert "LIB-PRINT" in capfd.readouterr().out
    assert "every library message is shown" in term.getvalue()
    assert term.getvalue().splitlines()[1].startswith("judge  ")


def test_a_failing_step_names_the_log_and_the_item_in_progress(tmp_path):
    term = Terminal(tty=False)
    out = tmp_path / "samples.jsonl"
    out.write_text(json.dumps({"key": "train/a/global/0"}) + "\n")
    keys = ["train/a/global/0", "train/b/global/0", "train/c/global/0"]
    with pytest.raises(RuntimeError, match="decoder crashed"):
        with RunConsole(tmp_path / "run.log", stream=term, command="vs2 test"):
            with console.step(
                "sample samples.jsonl", JsonlProgress([out], keys), unit="caption", log=tmp_path / "x.log"
            ):
                raise RuntimeError("decoder crashed")
    shown = term.getvalue().splitlines()
    assert shown[1].startswith("FAILED sample samples.jsonl while on 'train/b/global/0'")
    assert f"log: {tmp_path / 'x.log'}" in shown[1]
    assert shown[2] == f"vs2 test: failed; the full log is {(tmp_path / 'run.log').resolve()}"
    assert "RuntimeError: decoder crashed" in (tmp_path / "run.log").read_text()  # the traceback is logged


def test_ctrl_c_in_a_step_says_stopped_not_failed(tmp_path):
    term = Terminal(tty=False)
    with pytest.raises(KeyboardInterrupt):
        with RunConsole(tmp_path / "run.log", stream=term, command="vs2 test"):
            with console.step("judge judged.jsonl"):
                raise KeyboardInterrupt
    shown = term.getvalue().splitlines()
    assert shown[1].startswith("STOPPED judge judged.jsonl after ")
    assert not any("FAILED" in line or "failed" in line for line in shown)


def test_a_live_bar_is_redrawn_in_place_on_a_terminal(tmp_path, monkeypatch):
    monkeypatch.setattr(console, "REDRAW_S", 0.02)
    term = Terminal(tty=True)
    out = tmp_path / "samples.jsonl"
    keys = [f"k{i}" for i in range(4)]
    with RunConsole(tmp_path / "run.log", stream=term):
        with console.step("sample", JsonlProgress([out], keys), unit="caption"):
            import time

            for key in keys:
                with open(out, "a") as f:
                    f.write(json.dumps({"key": key}) + "\n")
                time.sleep(0.1)
    text = term.getvalue()
    assert text.count("\n") == 2  # the header and one line for the whole step
    assert text.count("\r") > 3  # redrawn while it ran
    assert "2/4 caption" in text  # a state seen while it ran
    final = text.rstrip("\n").split("\r\x1b[K")[-1]
    assert "4/4 caption" in final and "<" not in final  # the finished line: no ETA left


def test_progress_text_bar_and_eta():
    assert progress_text("x", 1, 4, 10.0, width=60) == "x  [#####...............]  1/4 it  10s<30s"
    assert progress_text("x", 0, 4, 10.0, width=60).endswith("0/4 it  10s<?")
    assert progress_text("x", 3, None, 75.0) == "x  1:15"


def test_trainer_log_progress_counts_only_the_new_run(tmp_path):
    log = tmp_path / "trainer_log.jsonl"
    log.write_text(json.dumps({"current_steps": 3, "total_steps": 3}) + "\n")  # an earlier round
    probe = TrainerLogProgress(tmp_path)
    assert probe() == (0, None, None)
    with open(log, "a") as f:
        f.write(json.dumps({"current_steps": 1, "total_steps": 5, "loss": 0.7}) + "\n")
        f.write(json.dumps({"current_steps": 2, "total_steps": 5, "loss": 0.6}) + "\n")
    assert probe() == (2, 5, None)


def test_helpers_do_nothing_without_a_console(capfd):
    with console.stage("x"), console.step("y", total=3):
        console.set_round(1, 2)
        console.step_done_earlier("z")
    out, err = capfd.readouterr()
    assert out == "" and err == ""
    assert console.active() is None
