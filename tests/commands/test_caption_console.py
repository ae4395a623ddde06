"""``vs2 caption`` as a user runs it in a terminal: a few lines (the log file, one step line with
its bar, the summary), the library's messages in ``logs/caption.log``; ``--verbose`` shows them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.paths import REPO

pytestmark = pytest.mark.slow

DEMO = REPO / "vs2_plugin" / "assets" / "demo_data"


def _videos(tmp_path: Path) -> Path:
    rows = [json.loads(line) for line in (DEMO / "vs2_demo_heldout.jsonl").read_text().splitlines() if line.strip()]
    for r in rows:
        r["video"] = str(DEMO / r["video"])
    path = tmp_path / "videos.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_caption_console_is_quiet_and_the_log_holds_the_rest(tiny_model_dir, tmp_path, run_cli):
    videos = _videos(tmp_path)
    out = tmp_path / "preds" / "P.jsonl"
    args = [
        "vs2",
        "caption",
        "--model",
        str(tiny_model_dir),
        "--videos",
        str(videos),
        "--out",
        str(out),
        "--max-new-tokens",
        "6",
    ]
    res = run_cli(args, cwd=tmp_path)
    assert res.returncode == 0, (res.stdout + res.stderr)[-3000:]
    printed = (res.stdout + res.stderr).splitlines()
    assert len(printed) <= 10, "\n".join(printed)
    assert "INFO" not in res.stdout + res.stderr
    log = out.parent / "logs" / "caption.log"
    assert str(log) in res.stderr and "caption P.jsonl" in res.stderr
    assert "caption(s) in" in res.stdout
    assert log.stat().st_size > 0  # what the terminal was spared went here
    assert len([line for line in out.read_text().splitlines() if line.strip()]) == len(videos.read_text().splitlines())

    verbose = run_cli(
        [*args[:-4], "--out", str(tmp_path / "V.jsonl"), "--max-new-tokens", "6", "--verbose"], cwd=tmp_path
    )
    assert verbose.returncode == 0, verbose.stderr[-3000:]
    assert len((verbose.stdout + verbose.stderr).splitlines()) > len(printed)
