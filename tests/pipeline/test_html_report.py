"""report.html: hand-checked highlighting, and a page built from judged captions of a real clip."""

from __future__ import annotations

import json
import re

from tests.support.paths import REPO
from vs2_plugin.pipeline.html_report import (
    CaptionView,
    caption_row,
    highlighted,
    locate_spans,
    mrdpo_stages,
    videos_from_judged,
    write_html,
)
from vs2_plugin.pipeline.videos import load_videos

MEDIA = REPO / "vs2_plugin" / "assets" / "demo_data" / "media"


def test_locate_spans_verbatim_trimmed_case_and_punctuation():
    caption = "A dog runs on grass. The Sky is green, and it rains; a man sings."
    spans, missing = locate_spans(caption, ["the sky is green.", "a man sings", "a cat flies", "  "])
    assert [caption[a:b] for a, b in spans] == ["The Sky is green", "a man sings"]
    assert missing == ["a cat flies"]
    # overlapping statements become one span
    spans, _ = locate_spans("red blue green", ["red blue", "blue green"])
    assert spans == [(0, 14)]
    # words separated differently in the quote still match
    spans, _ = locate_spans("it rains, heavily", ["it rains heavily"])
    assert spans == [(0, 17)]


def test_highlighted_escapes_text_and_marks_spans():
    assert (
        highlighted("x < y & z", [(4, 5)], title='a"b') == 'x &lt; <mark class="hall" title="a&quot;b">y</mark> &amp; z'
    )
    assert highlighted("plain", []) == "plain"


def judged_row(video, vid, task, caption, judgment, start=None, end=None):
    return {
        "key": f"heldout/{vid}/{task}/0",
        "video_id": vid,
        "task": task,
        "video": str(video),
        "caption": caption,
        "start": start,
        "end": end,
        "judgment": judgment,
    }


def judgment(missed=(), hallucinated=(), n_events=3):
    n_err = len(missed) + len(hallucinated)
    return {
        "status": "ok",
        "n_events": n_events,
        "missed": list(missed),
        "incorrect": [],
        "hallucinated": list(hallucinated),
        "unnatural": [],
        "miss_rate": len(missed) / n_events,
        "hall_rate": len(hallucinated) / n_events,
        "total_rate": n_err / n_events,
        "rep_rate": 0.0,
    }


def test_page_from_an_mrdpo_run_dir(tmp_path):
    video = MEDIA / "bigbuckbunny.mp4"  # 5.3 s with a 6-channel audio track
    videos_jsonl = tmp_path / "heldout.jsonl"
    videos_jsonl.write_text(
        json.dumps(
            {
                "id": "bunny",
                "video": str(video),
                "reference": "A big rabbit stands in a meadow. Birds sing.",
                "local": [{"start": 0, "end": 2.5, "reference": "A rabbit yawns."}],
            }
        )
        + "\n"
    )
    (tmp_path / "config.json").write_text(json.dumps({"heldout_videos": str(videos_jsonl)}))
    rounds = {
        0: [
            judged_row(
                video,
                "bunny",
                "global",
                "A rabbit. A red car drives past the castle.",
                judgment(missed=["Birds sing."], hallucinated=["a red car drives past the castle"]),
            ),
            judged_row(video, "bunny", "local", "The rabbit yawns.", judgment(), 0.0, 2.5),
        ],
        1: [
            judged_row(video, "bunny", "global", "A big rabbit stands in a meadow while birds sing.", judgment()),
            {**judged_row(video, "bunny", "local", "x", {"status": "failed", "error": "HTTP 500"}, 0.0, 2.5)},
        ],
    }
    for index, rows in rounds.items():
        path = tmp_path / f"round-{index:03d}" / "heldout_judged.jsonl"
        path.parent.mkdir()
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    table_rows = [
        {"stage": "start", "global": {"total": 0.67}},
        {"stage": "round 1", "global": {"total": 0.0}, "pairs": 2},
    ]
    stages = mrdpo_stages(tmp_path, table_rows, ["SFT", "mrDPO round 1"])
    views = videos_from_judged(stages, load_videos(videos_jsonl))
    page = write_html(tmp_path, "test run", views, rows=table_rows, notes=["a note"]).read_text()

    assert page.startswith("<!doctype html>") and "<script" not in page
    assert not re.search(r'(src|href)="(https?:)?//', page)  # self-contained
    assert '<table class="stages">' in page and "<td>67.0</td>" in page
    # 8 thumbnails with their times, inside the clip; the local interval's frames are outlined
    times = [float(t) for t in re.findall(r'<figure class="thumb" data-time="([\d.]+)"', page)]
    assert len(times) == 8 and times == sorted(times) and 0 <= times[0] < 1 and 4 < times[-1] < 5.3
    # the local interval 0-2.5 s repeats the frames inside it
    inside = [float(t) for t in re.findall(r'<figure class="thumb in-interval" data-time="([\d.]+)"', page)]
    assert inside == [t for t in times if t < 2.5] and 0 < len(inside) < 8
    assert page.count('src="data:image/jpeg;base64,') == 8 + len(inside)
    assert re.search(r'<svg class="wave"[^>]*aria-label="audio waveform, 5\.\d s"', page)
    # the reference, each stage's caption, the judge's errors
    assert "A big rabbit stands in a meadow. Birds sing." in page
    assert (
        '<mark class="hall" title="hallucinated: not supported by the reference">A red car drives past the castle</mark>'
        in page
    )
    assert page.count('<li class="missed">missed: Birds sing.</li>') == 1
    assert 'data-stage="SFT" data-missed="1" data-hallucinated="1"' in page
    assert 'data-stage="mrDPO round 1" data-missed="0" data-hallucinated="0"' in page
    # local captions under their interval with its reference; a failed judgment says so
    assert 'class="interval" data-start="0" data-end="2.5"' in page and "A rabbit yawns." in page
    assert "judgment failed: HTTP 500" in page


def test_a_video_without_audio_or_unreadable_still_gets_a_section(tmp_path):
    from vs2_plugin.pipeline.html_report import CaptionView, VideoView, render

    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video")
    page = render(
        "t",
        [
            VideoView("silent", str(MEDIA / "living_room.mp4"), "ref", [CaptionView("SFT", "c", None)]),
            VideoView("broken", str(broken), None, [CaptionView("SFT", None, None)]),
        ],
    )
    assert page.count('src="data:image/jpeg;base64,') == 8  # the silent clip's frames
    assert "no audio track" in page
    assert 'data-video="broken"' in page and "media not shown:" in page and "could not be read" in page


def test_rebirth_labels_report_says_what_was_kept_and_why_dropped(tmp_path):
    from vs2_plugin.pipeline.html_report import write_labels_report
    from vs2_plugin.pipeline.videos import VideoEntry

    clip = str(MEDIA / "drawing.mp4")
    labels = [
        {"key": "rebirth/d/global/0", "video_id": "d", "task": "global", "video": clip, "caption": "A hand draws."},
        {
            "key": "rebirth/d/local/0",
            "video_id": "d",
            "task": "local",
            "video": clip,
            "start": 0.0,
            "end": 2.0,
            "caption": "draws draws draws draws",
        },
    ]
    dropped = [{**labels[1], "reasons": ["repeated n-gram 'draws draws'"]}]
    page = write_labels_report(tmp_path, labels, dropped, [VideoEntry("d", clip, "Someone draws a cat.")]).read_text()
    assert "kept for rebirth tuning" in page and "dropped: repeated n-gram &#x27;draws draws&#x27;" in page
    assert "Someone draws a cat." in page and page.count('<figure class="thumb" data-time=') == 8
    md = (tmp_path / "report.md").read_text()
    assert "2 captions labelled, 1 kept, 1 dropped." in md and "rebirth/d/local/0" in md


def test_a_rate_a_judge_does_not_measure_reads_n_a_in_the_caption_row():
    judgment = {"status": "ok", "miss_rate": 0.25, "hall_rate": None, "total_rate": None, "n_events": 4}
    row = caption_row(CaptionView("sft", "A dog runs.", judgment))
    assert "miss 25.0% · hall n/a · total n/a · events 4" in row
