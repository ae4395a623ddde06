"""`vs2 demo` as a new user sees it: a short console that ends with the stage table, the full
logs under ``D/logs/``, and ``D/report.html`` with every stage and held-out video."""

from __future__ import annotations

import json
import re

import pytest

from vs2_plugin.pipeline.videos import load_videos

pytestmark = pytest.mark.slow

MAX_CONSOLE_LINES = 80


def judged_rows(out):
    """Every held-out judged caption of the demo's stages."""
    rows = []
    for run in ("mrdpo", "mrdpo_after_rebirth"):
        for path in sorted((out / run).glob("round-*/heldout_judged.jsonl")):
            rows += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return rows


def test_demo_console_is_short_and_ends_with_the_stage_table(demo_run):
    out, res = demo_run
    printed = (res.stdout + res.stderr).splitlines()
    assert len(printed) <= MAX_CONSOLE_LINES, "\n".join(printed)
    assert "INFO" not in res.stdout + res.stderr  # no library log line reached the terminal
    # the console names the log file and shows one line per step, with the round it belongs to
    log = out.resolve() / "logs" / "demo.log"
    assert str(log) in res.stderr
    assert "mrDPO · round 1/2 · train" in res.stderr and "gDPO after rebirth · round 1/1 · train" in res.stderr
    assert re.search(r"mrDPO · round 2/2 · sample samples\.jsonl  \[#+\]  \d+/\d+ caption", res.stderr)
    # the stage table is the last thing printed: header, separator, one row per stage
    stages = [r["stage"] for r in json.loads((out / "metrics.json").read_text())["stages"]]
    table = res.stdout.rstrip().splitlines()[-(len(stages) + 2) :]
    assert table[0].startswith("| Stage |"), res.stdout
    assert [row.split("|")[1].strip() for row in table[2:]] == stages
    # the full logs: LLaMA-Factory's messages of the in-process sampling and of every training run
    text = log.read_text()
    assert "llamafactory" in text and "Loaded adapter(s)" in text
    assert "train_runtime" in text  # the training children's output, teed into it
    assert (out / "logs" / "align.log").stat().st_size > 0 and (out / "logs" / "sft.log").stat().st_size > 0


def test_demo_report_html_shows_every_stage_video_and_judged_error(demo_run):
    out, _ = demo_run
    page = (out / "report.html").read_text()
    metrics = json.loads((out / "metrics.json").read_text())
    for row in metrics["stages"]:
        assert f'data-stage="{row["stage"]}"' in page, row["stage"]
    videos = load_videos(out / "data" / "heldout.jsonl")  # the demo's synthetic held-out clips
    for video in videos:
        assert f'data-video="{video.id}"' in page
    # thumbnails are embedded, nothing is fetched from elsewhere
    assert page.count('src="data:image/jpeg;base64,') >= len(videos)
    assert 'id="rounds"' in page and "data:image/png;base64," in page
    assert not re.search(r'(src|href)="(https?:)?//', page)
    # every missed event and every hallucinated statement the judge reported is in the page
    rows = judged_rows(out)
    missed = [e for r in rows for e in r["judgment"].get("missed", [])]
    hallucinated = [h for r in rows for h in r["judgment"].get("hallucinated", [])]
    assert missed, "the tiny model's captions miss events; the judge must report some"
    assert page.count('<li class="missed">') == len(missed)
    reported = sum(int(n) for n in re.findall(r'data-hallucinated="(\d+)"', page))
    assert reported == len(hallucinated)
    if hallucinated:  # each is highlighted in its caption, or listed when it cannot be located
        marks = page.count('<mark class="hall" title=') + page.count('<li class="hall-unlocated">')
        assert marks >= 1
