"""benchmarks/abstention_headroom.py: hand-worked with the real exact judge, then on the demo's folder."""

from __future__ import annotations

import json
import math

import pytest

from tests.support.paths import linked_folder
from tests.support.scripts import load_script

EVENTS = ['A voice says "apple".', "A high tone sounds."]
# the voice told right, the tone with another pitch (incorrect), a circle the clip does not have
CAPTION = 'A voice says "apple". Then a low tone sounds.\nThen a red circle appears at the top left.'


def _row(script, clip="A", confidence=(-0.01, -0.5, -0.2), task="global", caption=CAPTION, events=EVENTS):
    return {
        "key": f"{clip}/{task}/{len(caption)}",
        "clip": clip,
        "task": task,
        "video": f"/media/{clip}.mp4",
        "prompt": "Describe.",
        "events": events,
        "caption": caption,
        "spans": script.sentence_spans(caption),
        "confidence": [{"min": c, "mean": c} for c in confidence],
    }


def test_sentences_and_their_confidence():
    script = load_script("benchmarks/abstention_headroom.py")
    spans = script.sentence_spans(CAPTION)
    assert [CAPTION[s:e] for s, e in spans] == [
        'A voice says "apple".',
        "Then a low tone sounds.",
        "Then a red circle appears at the top left.",
    ]
    assert script.sentence_spans("  ") == [] and script.sentence_spans("No end") == [(0, 6)]
    # tokens by end offset: "A"(1) " voice"(7) ... '".'(21) | " Then"(26) ... ; a token whose
    # leading space lies before the sentence belongs to the sentence that holds its last character
    ends, logprobs = [1, 7, 21, 26, 45, 50, 88], [-0.1, -0.3, -0.2, -1.0, -0.5, -0.4, -0.6]
    confidence = script.sentence_confidence(ends, logprobs, spans)
    assert confidence[0] == {"min": -0.3, "mean": pytest.approx(-0.2)}
    assert confidence[1] == {"min": -1.0, "mean": pytest.approx(-0.75)}
    # "\nThen"(50): its line break lies before the sentence, its last character inside
    assert confidence[2] == {"min": -0.6, "mean": pytest.approx(-0.5)}
    assert script.sentence_confidence([], [], [(0, 5)]) == [{"min": 0.0, "mean": 0.0}]
    assert script.without_sentences(CAPTION, spans, [True, False, True]) == (
        'A voice says "apple". Then a red circle appears at the top left.'
    )
    assert script.auc([3, 2], [1, 2]) == pytest.approx((1 + 1 + 1 + 0.5) / 4) and script.auc([], [1]) is None


def test_hand_worked_rule_effects_and_oracle():
    script = load_script("benchmarks/abstention_headroom.py")
    rows = [_row(script)]
    key = rows[0]["key"]
    # whole caption: Miss 0, Hall (incorrect tone + circle) 2/2 -> Total 1.0
    assert script.totals([("A", EVENTS, CAPTION)]) == {"A": 1.0}
    # below -0.3: the tone left out -> missed (Miss 1/2), the circle still there (Hall 1/2)
    assert script.abstained_totals(rows, "mean", -0.3) == {key: 1.0}
    # below -0.1: the tone and the circle left out -> Miss 1/2, Hall 0
    assert script.abstained_totals(rows, "mean", -0.1) == {key: 0.5}
    assert script.abstained_totals(rows, "mean", -math.inf) == {key: 1.0}
    # removing the voice: +0.5 (missed); the tone: 0 (incorrect -> missed); the circle: -0.5
    effects = script.removal_effects(rows)
    assert effects == [[0.5, 0.0, -0.5]]
    assert script.oracle_totals(rows, effects) == {key: 0.5}
    assert script.sentence_auc(rows, effects) == {"min": 1.0, "mean": 1.0}  # the voice above the circle
    statistic, threshold, total = script.best_rule(rows)
    assert (statistic, total) == ("min", 0.5) and -0.2 < threshold <= -0.01
    # the same rule on another clip, whose confidence puts the circle above the voice
    heldout = [_row(script, "B", confidence=(-0.3, -0.5, -0.02))]
    out = script.summarise(rows, heldout)
    assert out["fit"] == {"captions": 1, "clips": 1, "greedy_total": 1.0, "abstained_total": 0.5, "ratio": 0.5}
    held = out["heldout"]
    if threshold > -0.02:  # the circle is left out with the rest: Miss 1, Hall 0
        assert (held["sentences_kept"], held["abstained_total"]) == (0, 1.0)
    else:  # only the voice and the tone are left out: Miss 1, Hall 1/2
        assert (held["sentences_kept"], held["abstained_total"]) == (1, 1.5)
    assert held["ratio"] == held["abstained_total"] and held["best_in_sample"]["ratio"] == 1.0
    assert held["ratio_ci95"] is None and list(held["tasks"]) == ["global"]  # no local caption to pair
    assert out["oracle"] == {"total": 0.5, "ratio": 0.5}
    assert out["sentence_auc"] == {"min": 0.0, "mean": 0.0}  # B's confidence ranks them the wrong way


def test_the_benchmarks_total_weighs_the_two_tasks_alike():
    script = load_script("benchmarks/abstention_headroom.py")
    tone = ["A high tone sounds."]
    rows = [
        _row(script, "A"),  # Total 1.0 as written; 0.5 without its two unsure sentences
        _row(script, "A", (-0.01,), "local", "A high tone sounds.", tone),  # right: 0.0
        _row(script, "A", (-0.5,), "local", "A low tone sounds.", tone),  # incorrect: 1.0; left out: missed, 1.0
    ]
    whole = script.whole_totals(rows)
    assert script.by_clip(rows, whole) == {"A": {"global": [1.0], "local": [0.0, 1.0]}}
    assert script.stage_total(rows, whole) == pytest.approx((1.0 + 0.5) / 2)
    after = script.abstained_totals(rows, "mean", -0.1)
    assert script.stage_total(rows, after) == pytest.approx((0.5 + 0.5) / 2)
    out = script.summarise(rows, rows)
    assert out["heldout"]["tasks"]["local"] == {
        "captions": 2,
        "greedy_total": 0.5,
        "abstained_total": 0.5,
        "ratio": 1.0,
    }
    assert out["heldout"]["ratio"] == pytest.approx(0.5 / 0.75, abs=1e-4)
    assert out["heldout"]["ratio_ci95"] == [pytest.approx(0.6667, abs=1e-4)] * 2  # one clip: every draw is A


def test_a_caption_without_events_is_refused():
    script = load_script("benchmarks/abstention_headroom.py")

    def events_of(row):
        return EVENTS if row.get("id", row.get("video_id")) == "A" and row.get("task", "global") == "global" else None

    with pytest.raises(SystemExit, match="'Z' \\(global\\) has a caption but no events"):
        script.caption_rows([{"key": "k", "id": "Z", "video": "/m/Z.mp4", "prompt": "p", "predict": "x"}], events_of)
    rows = script.caption_rows(
        [
            {
                "key": "k1",
                "id": "A",
                "video": "/m/A.mp4",
                "task": "global",
                "prompt": "<video>Describe.",
                "predict": CAPTION,
            },
            {
                "key": "k2",
                "video_id": "A",
                "video": "/m/A.mp4",
                "task": "global",
                "prompt": "Describe.",
                "caption": "x.",
            },
        ],
        events_of,
    )
    assert [(r["key"], r["clip"], r["prompt"], len(r["spans"])) for r in rows] == [
        ("k1", "A", "Describe.", 3),
        ("k2", "A", "Describe.", 1),
    ]


def test_a_folder_that_is_not_a_run_is_refused(tmp_path):
    (tmp_path / "mrdpo").mkdir()
    with pytest.raises(SystemExit, match="not a finished learning-benchmark or mrDPO run folder"):
        load_script("benchmarks/abstention_headroom.py").main(
            ["--out", str(tmp_path), "--results", str(tmp_path / "x")]
        )
    assert not (tmp_path / "x").exists()


@pytest.mark.slow
def test_on_the_demo_folder(demo_run, tmp_path):
    # the demo's rounds, and room for the greedy captions outside its folder
    mrdpo = linked_folder(demo_run[0] / "mrdpo", tmp_path / "mrdpo")
    results = tmp_path / "abstention.json"
    script = load_script("benchmarks/abstention_headroom.py")
    assert script.main(["--out", str(mrdpo), "--results", str(results)]) == 0
    out = json.loads(results.read_text())
    config = json.loads((mrdpo / "config.json").read_text())
    clips = len(open(config["train_videos"]).read().splitlines())
    captions = sum(
        len((mrdpo / "headroom" / f).read_text().splitlines()) for f in ("greedy.jsonl", "greedy_local.jsonl")
    )
    assert (out["fit"]["clips"], out["fit"]["captions"]) == (clips, captions) and captions > clips  # + intervals
    held = out["heldout"]
    heldout_rows = (mrdpo / "round-000" / "heldout_captions.jsonl").read_text().splitlines()
    assert held["captions"] == len(heldout_rows) and set(held["tasks"]) == {"global", "local"}
    # keeping every sentence is one of the rules tried, so the chosen one is no worse in sample
    assert out["fit"]["abstained_total"] <= out["fit"]["greedy_total"] and held["best_in_sample"]["ratio"] <= 1
    assert held["ratio"] == pytest.approx(held["abstained_total"] / held["greedy_total"], abs=1e-3)
    assert held["ratio_ci95"][0] <= held["ratio"] + 1e-3 and held["ratio"] - 1e-3 <= held["ratio_ci95"][1]
    assert 0 <= held["sentences_kept"] <= held["sentences"]
    assert out["oracle"]["total"] <= held["greedy_total"]
