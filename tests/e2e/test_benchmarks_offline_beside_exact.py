"""benchmarks/offline_beside_exact.py: rank arithmetic by hand, and the offline judge beside exact
judgments on captions whose errors are known."""

from __future__ import annotations

import json
import math

import pytest

from tests.support.scripts import load_script
from vs2_plugin.pipeline.videos import Interval, VideoEntry


@pytest.fixture(scope="module")
def obe():
    return load_script("benchmarks/offline_beside_exact.py")


def test_average_ranks_share_ties(obe):
    assert obe.average_ranks([3, 1, 3]).tolist() == [2.5, 1.0, 2.5]
    assert obe.average_ranks([0.2, 0.1, 0.3, 0.1]).tolist() == [3.0, 1.5, 4.0, 1.5]


def test_rank_correlation(obe):
    assert obe.rank_correlation([1, 2, 3], [10, 20, 30]) == pytest.approx(1.0)
    assert obe.rank_correlation([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    # ranks [1, 2, 3] against [1.5, 1.5, 3]: Pearson = 1.5 / sqrt(2 * 1.5) = 0.866
    assert obe.rank_correlation([1, 2, 3], [5, 5, 9]) == pytest.approx(math.sqrt(3) / 2)
    assert math.isnan(obe.rank_correlation([1, 2], [4, 4]))


def test_same_order_share_counts_ties_half_and_skips_exact_ties(obe):
    assert obe.same_order_share([(1, 2, 0.1, 0.3), (1, 2, 0.5, 0.5), (2, 2, 0, 1)]) == (0.75, 2)
    assert obe.same_order_share([(2, 1, 0.1, 0.3)]) == (0.0, 1)
    share, n = obe.same_order_share([(1, 1, 0, 1)])
    assert math.isnan(share) and n == 0


def test_stage_files_follow_the_pipeline_order(obe, tmp_path):
    for folder in ("eval/base", "mrdpo/round-000", "mrdpo/round-001", "mrdpo_after_rebirth/round-000"):
        (tmp_path / folder).mkdir(parents=True)
        (tmp_path / folder / "heldout_judged.jsonl").write_text("")
    (tmp_path / "mrdpo" / "round-002").mkdir()  # a round that never evaluated
    names = [name for name, _ in obe.stage_files(tmp_path)]
    assert names == ["base (post-alignment, before SFT)", "SFT", "mrDPO round 1", "rebirth"]


EVENTS = ["A red square appears at the top left.", 'A voice says "apple".', "A high tone sounds."]
REFERENCE = 'A red square appears at the top left. Then a voice says "apple". Then a high tone sounds.'


def _row(key, caption, miss, task="global", start=None, end=None):
    return {
        "key": key,
        "video_id": "v",
        "task": task,
        "start": start,
        "end": end,
        "caption": caption,
        "judgment": {"status": "ok", "miss_rate": miss, "hall_rate": 0.0, "total_rate": miss},
    }


def test_judge_stages_on_captions_with_known_misses(obe, tmp_path):
    """Two stages of one clip: one tells every event, one tells none of them. The offline judge
    sees the same order as the exact judgments (which the rows carry), per stage and per pair."""
    video = VideoEntry(
        id="v",
        video="v.mp4",
        reference=REFERENCE,
        events=EVENTS,
        local=[Interval(start=0.0, end=2.5, events=EVENTS[:1], reference=EVENTS[0])],
    )
    good = [_row("g", REFERENCE, 0.0), _row("l", EVENTS[0], 0.0, "local", 0.0, 2.5)]
    bad = [
        _row("g", "A green circle moves to the bottom right.", 1.0),
        _row("l", "Nothing happens.", 1.0, "local", 0.0, 2.5),
    ]
    stages = []
    for name, rows in (("SFT", good), ("mrDPO round 1", bad)):
        path = tmp_path / f"{len(stages)}.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        stages.append((name, path))
    report = obe.judge_stages(stages, {"v": video})
    assert report["captions"] == 4
    by_stage = {s["stage"]: s for s in report["stages"]}
    assert by_stage["SFT"]["exact"]["global"]["total_rate"] == 0.0
    assert by_stage["SFT"]["offline"]["global"]["miss_rate"] == 0.0
    assert by_stage["mrDPO round 1"]["offline"]["global"]["miss_rate"] == 1.0
    assert report["same_order_share"]["global"] == {"share": 1.0, "pairs": 1}
    assert report["same_order_share"]["local"] == {"share": 1.0, "pairs": 1}
    assert report["stage_order_agreement"] == {"share": 1.0, "pairs": 1}
