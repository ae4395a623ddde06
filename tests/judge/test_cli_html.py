"""`vs2 eval` writes report.html next to report.md: each caption with the judge's verdict."""

import json
import re

from vs2_plugin.cli import main as vs2_main

EVENTS = ["A brown dog runs across a park", "A man sings a song", "Rain falls on a city street"]


def test_eval_writes_a_self_contained_html_report(tmp_path, repo_root):
    clip = repo_root / "vs2_plugin" / "assets" / "demo_data" / "media" / "drawing.mp4"
    rows = [
        {
            "id": "invented",
            "caption": "A brown dog runs across a park. A purple elephant juggles flaming torches on a frozen lake.",
            "events": EVENTS,
            "video": str(clip),
        },
        {"id": "half", "caption": "A man sings a song.", "events": EVENTS, "task": "local", "start": 0, "end": 2},
    ]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out" / "report.json"
    assert (
        vs2_main(
            [
                "eval",
                "--input",
                str(tmp_path / "in.jsonl"),
                "--judge",
                "offline",
                "--out",
                str(out),
                "--quiet",
                "--no-cache",
            ]
        )
        == 0
    )
    items = {i["id"]: i for i in json.loads(out.read_text())["items"]}
    page = (tmp_path / "out" / "report.html").read_text()
    assert "<th>%Miss↓</th>" in page and "<td>global</td>" in page  # the Table-1 summary
    assert 'data-video="invented"' in page and 'data-video="half"' in page
    assert page.count('<figure class="thumb" data-time=') == 8  # only the row that names a video
    assert re.search(r'<svg class="wave"', page)
    assert page.count('<li class="missed">') == sum(len(i["missed"]) for i in items.values()) > 0
    hallucinated = items["invented"]["hallucinated"]
    assert hallucinated, items["invented"]  # the offline judge flags the invented clause
    marked = re.findall(r'<mark class="hall" title=[^>]*>([^<]*)</mark>', page)
    assert any("elephant" in m for m in marked), marked
    assert 'class="interval" data-start="0" data-end="2"' in page
