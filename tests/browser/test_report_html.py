"""report.html in a real headless browser: it renders from disk without console errors, every
thumbnail decodes, and hallucinated statements are highlighted. The screenshots are kept in the
test's temporary folder (the path is printed) as the artefact to look at.

One test reads a small run directory built from judged captions of a bundled clip (seconds);
the other the report of a real ``vs2 demo`` run (the session's shared demo run, minutes).
Set ``VS2_SKIP_BROWSER=1`` to skip.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile

import pytest

from tests.support.paths import REPO

pytestmark = [pytest.mark.browser]

if os.environ.get("VS2_SKIP_BROWSER") == "1":
    pytest.skip("VS2_SKIP_BROWSER=1", allow_module_level=True)

MEDIA = REPO / "vs2_plugin" / "assets" / "demo_data" / "media"
FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,2400",
)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.fail("selenium not installed: run .ci/setup or set VS2_SKIP_BROWSER=1")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    chromedriver = shutil.which("chromedriver")
    if not (chromium and chromedriver):
        pytest.fail("chromium / chromedriver not found: run .ci/setup or set VS2_SKIP_BROWSER=1")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tempfile.mkdtemp(dir=tmp_path_factory.getbasetemp())}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # to read the page's console
    driver = webdriver.Chrome(service=Service(chromedriver), options=options)
    try:
        driver.set_page_load_timeout(60)
        yield driver
    finally:
        driver.quit()


def open_report(driver, path, screenshot):
    """Load ``path``; return what the page shows (per video: thumbnails decoded, highlights) and its console errors."""
    driver.get_log("browser")  # drop earlier entries
    driver.get(path.resolve().as_uri())
    shown = driver.execute_script("""
        const imgs = [...document.images];
        return {
          title: document.title,
          images: imgs.length,
          broken: imgs.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.alt),
          videos: [...document.querySelectorAll('section.video')].map(s => ({
              id: s.dataset.video,
              thumbs: s.querySelectorAll('figure.thumb:not(.in-interval) img').length,
              visibleThumbs: [...s.querySelectorAll('figure.thumb:not(.in-interval) img')].filter(i => i.getBoundingClientRect().width > 20).length,
              times: [...s.querySelectorAll('figure.thumb:not(.in-interval) figcaption')].map(f => f.textContent),
              stages: [...s.querySelectorAll('tr.stage-caption')].map(r => r.dataset.stage),
              marks: [...s.querySelectorAll('mark.hall')].map(m => m.textContent),
              missed: s.querySelectorAll('li.missed').length,
          })),
          stageTable: [...document.querySelectorAll('table.stages tr td:first-child')].map(td => td.textContent),
          rounds: !!document.querySelector('img#rounds') && document.querySelector('img#rounds').naturalWidth > 0,
        };""")
    errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    first = driver.find_elements("css selector", "mark.hall")
    if first:
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", first[0])
    driver.save_screenshot(str(screenshot))
    print(f"screenshot: {screenshot}")
    return shown, errors


def test_small_report_renders_with_thumbnails_and_highlights(browser, tmp_path):
    from vs2_plugin.pipeline.html_report import CaptionView, IntervalView, VideoView, write_html

    judgment = {
        "status": "ok",
        "n_events": 2,
        "missed": ["Birds sing."],
        "incorrect": [],
        "hallucinated": ["a red car drives past"],
        "unnatural": [],
        "miss_rate": 0.5,
        "hall_rate": 0.5,
        "total_rate": 1.0,
    }
    view = VideoView(
        "bunny",
        str(MEDIA / "bigbuckbunny.mp4"),
        "A rabbit stands in a meadow. Birds sing.",
        [CaptionView("SFT", "A rabbit stands. A red car drives past.", judgment)],
        [IntervalView(0.0, 2.5, "A rabbit yawns.", [CaptionView("SFT", "The rabbit yawns.", None)])],
    )
    path = write_html(tmp_path, "browser check", [view], rows=[{"stage": "SFT", "global": {"total": 1.0}}])
    shown, errors = open_report(browser, path, tmp_path / "small_report.png")
    assert errors == [], errors
    assert shown["broken"] == [] and shown["images"] >= 8
    (video,) = shown["videos"]
    assert video["thumbs"] == 8 and video["visibleThumbs"] >= 8 and video["times"][0].endswith(" s")
    assert video["marks"] == ["A red car drives past"] and video["missed"] == 1
    assert (tmp_path / "small_report.png").stat().st_size > 10_000


def test_demo_report_renders_in_the_browser(browser, demo_run, tmp_path):
    out, _ = demo_run
    shown, errors = open_report(browser, out / "report.html", tmp_path / "demo_report.png")
    assert errors == [], errors
    assert shown["broken"] == [] and shown["rounds"]
    metrics = json.loads((out / "metrics.json").read_text())
    stages = [r["stage"] for r in metrics["stages"]]
    assert shown["stageTable"] == stages
    from vs2_plugin.pipeline.videos import load_videos

    heldout = load_videos(out / "data" / "heldout.jsonl")
    assert [v["id"] for v in shown["videos"]] == [v.id for v in heldout]
    for video in shown["videos"]:
        assert video["thumbs"] >= 4 and video["visibleThumbs"] == video["thumbs"], video
        assert video["stages"][: len(stages)] == stages  # every stage's global caption, in order
    # highlighted exactly where the judge reported hallucinations (the tiny model's captions do)
    judged = [
        json.loads(line)
        for p in sorted(out.glob("mrdpo*/round-*/heldout_judged.jsonl"))
        for line in p.read_text().splitlines()
        if line.strip()
    ]
    hallucinated = sum(len(r["judgment"].get("hallucinated") or []) for r in judged)
    marks = sum(len(v["marks"]) for v in shown["videos"])
    assert (marks >= 1) == (hallucinated >= 1), (marks, hallucinated)
    assert sum(v["missed"] for v in shown["videos"]) == sum(len(r["judgment"].get("missed") or []) for r in judged)
