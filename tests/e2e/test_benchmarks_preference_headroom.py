"""benchmarks/preference_headroom.py: hand-worked on a made-up mrDPO folder, then on the demo's."""

from __future__ import annotations

import json

import pytest

from tests.support.paths import linked_folder
from tests.support.scripts import load_script

GLOBAL, LOCAL = "global", "local"


def _row(clip: str, task: str, caption: str, total: float, status: str = "ok") -> dict:
    return {
        "video_id": clip,
        "video": f"/media/{clip}.mp4",
        "task": task,
        "caption": caption,
        "judgment": {"status": status, "total_rate": total},
    }


def _write_round(folder, rows, pairs=()):
    folder.mkdir(parents=True)
    (folder / "judged.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (folder / "pairs").mkdir()
    (folder / "pairs" / "pairs.json").write_text(
        json.dumps(
            [
                {
                    "chosen": {"from": "gpt", "value": c},
                    "rejected": {"from": "gpt", "value": r},
                    "videos": [f"/media/{v}.mp4"],
                }
                for v, c, r in pairs
            ]
        )
    )


def test_hand_worked_rounds(tmp_path):
    mrdpo = tmp_path / "mrdpo"
    (mrdpo / "round-000").mkdir(parents=True)  # the starting model's held-out evaluation: no samples
    _write_round(
        mrdpo / "round-001",
        [
            _row("A", GLOBAL, "a good", 0.2),
            _row("A", GLOBAL, "a bad", 0.6),
            _row("B", GLOBAL, "b same", 0.5),
            _row("B", GLOBAL, "b same", 0.5),  # the same caption twice: one distinct sample
            _row("C", GLOBAL, "c worse", 1.0),
            _row("C", GLOBAL, "c better", 0.4),
            _row("C", GLOBAL, "c failed", 0.0, status="failed"),  # not judged: left out
            _row("A", LOCAL, "a local good", 0.0),
            _row("A", LOCAL, "a local bad", 1.0),
        ],
        pairs=[("A", "a good", "a bad"), ("A", "a local good", "a local bad")],
    )
    _write_round(
        mrdpo / "round-002",
        [
            _row("A", GLOBAL, "a one", 0.3),
            _row("A", GLOBAL, "a two", 0.3),
            _row("B", GLOBAL, "b", 0.7),
            _row("C", GLOBAL, "c one", 0.4),
            _row("C", GLOBAL, "c two", 0.6),
        ],
    )
    control = tmp_path / "control"  # fresh samples of round 1's starting model, another seed
    _write_round(
        control / "round-001",
        [_row("A", GLOBAL, "a fresh", 0.5), _row("B", GLOBAL, "b fresh", 0.6), _row("C", GLOBAL, "c fresh", 0.6)],
    )
    script = load_script("benchmarks/preference_headroom.py")
    first, second = script.summarise(mrdpo)["rounds"]
    with_control = script.summarise(mrdpo, control)["rounds"]
    # per clip mean of its distinct samples: A 0.4, B 0.5, C 0.7; best: A 0.2, B 0.5, C 0.4
    assert first["clips"] == 3 and first["distinct_samples_per_clip"] == pytest.approx(5 / 3, abs=0.01)
    assert first["sample_total"] == pytest.approx(1.6 / 3, abs=1e-4)
    assert first["best_of_samples_total"] == pytest.approx(1.1 / 3, abs=1e-4)
    assert first["best_of_samples_ratio"] == pytest.approx(1.1 / 1.6, abs=1e-4)
    # only A's global pair counts; its local pair is another prompt
    assert (first["paired_clips"], first["chosen_total"], first["rejected_total"]) == (1, 0.2, 0.6)
    paired, unpaired = first["after_round_paired"], first["after_round_unpaired"]
    assert (paired["clips"], paired["sample_total_before"], paired["sample_total_after"]) == (1, 0.4, 0.3)
    assert paired["change"] == pytest.approx(-0.1)
    assert paired["change_ci95"] == pytest.approx([-0.1, -0.1])  # one clip: every draw is that clip
    # B 0.5 -> 0.7, C 0.7 -> 0.5: no change on average
    assert (unpaired["clips"], unpaired["sample_total_before"], unpaired["sample_total_after"]) == (2, 0.6, 0.6)
    assert unpaired["change"] == pytest.approx(0.0)
    assert unpaired["change_ci95"] == pytest.approx([-0.2, 0.2])  # draws of B twice / C twice
    # against fresh samples of the starting model: A 0.3 - 0.5; B and C 0.6 - 0.6
    paired, unpaired = with_control[0]["after_round_paired"], with_control[0]["after_round_unpaired"]
    assert (paired["control_sample_total"], unpaired["control_sample_total"]) == (0.5, 0.6)
    assert paired["change_vs_control"] == pytest.approx(-0.2) and unpaired["change_vs_control"] == pytest.approx(0.0)
    assert "control_sample_total" not in first["after_round_paired"]  # no control given
    assert "control_sample_total" not in str(with_control[1])  # the control is the first round's only
    # the last round has no next round's samples to show where it moved the policy
    assert second["sample_total"] == pytest.approx(0.5) and second["paired_clips"] == 0
    assert "after_round_paired" not in second


def test_greedy_headroom_hand_worked(tmp_path):
    script = load_script("benchmarks/preference_headroom.py")
    events = {"A": ['A voice says "apple".', "A high tone sounds."], "B": ["A high tone sounds."]}

    def predictions(name, a_caption, b_caption):
        path = tmp_path / name
        rows = [{"id": "A", "task": GLOBAL, "predict": a_caption}, {"id": "B", "task": GLOBAL, "predict": b_caption}]
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        return script.prediction_totals(path, events)

    # the exact judge: the voice told with another word is incorrect (Hall 1/2), the voice left out
    # is missed (Miss 1/2), the tone of another pitch incorrect (Hall 1/1)
    greedy = predictions("greedy.jsonl", 'A voice says "river". Then a high tone sounds.', "A high tone sounds.")
    first = predictions("s1.jsonl", "A high tone sounds.", "A low tone sounds.")
    second = predictions("s2.jsonl", 'A voice says "apple". Then a high tone sounds.', "A low tone sounds.")
    assert (greedy, first, second) == ({"A": 0.5, "B": 0.0}, {"A": 0.5, "B": 1.0}, {"A": 0.0, "B": 1.0})
    out = script.greedy_headroom(greedy, [first, second])
    assert (out["clips"], out["greedy_total"], out["sample_totals"]) == (2, 0.25, [0.75, 0.5])
    # best of 1: (0.5 + 1.0) / 2; best of 2: (0.0 + 1.0) / 2
    assert out["best_of"] == {"1": 0.75, "2": 0.5}
    assert out["best_of_ratio_to_greedy"] == {"1": 3.0, "2": 2.0}
    # round 1's policy, greedy: A (paired) 0.5 -> 0.0, B (unpaired) 0.0 -> 0.5
    change = script.greedy_change(greedy, {"A": 0.0, "B": 0.5}, paired={"A"})
    assert change["paired"] == {
        "clips": 1,
        "greedy_total_before": 0.5,
        "greedy_total_after": 0.0,
        "change": -0.5,
        "change_ci95": [-0.5, -0.5],
    }
    assert (change["unpaired"]["clips"], change["unpaired"]["change"]) == (1, 0.5)
    assert script.greedy_change(greedy, {"A": 0.0, "B": 0.5}, paired=set())["paired"] is None
    with pytest.raises(SystemExit, match="not in the run's RL clip list"):
        script.prediction_totals(tmp_path / "greedy.jsonl", {"A": events["A"]})  # B is not an RL clip


def test_a_folder_without_rounds_is_refused(tmp_path):
    (tmp_path / "mrdpo" / "round-000").mkdir(parents=True)
    with pytest.raises(SystemExit, match="no round with judged samples"):
        load_script("benchmarks/preference_headroom.py").summarise(tmp_path / "mrdpo")


@pytest.mark.slow
def test_on_the_demo_folder(demo_run, tmp_path):
    # the demo's rounds, and room for the greedy captions outside its folder
    mrdpo = linked_folder(demo_run[0] / "mrdpo", tmp_path / "mrdpo")
    results = tmp_path / "headroom.json"
    script = load_script("benchmarks/preference_headroom.py")
    assert script.main(["--out", str(mrdpo), "--greedy-headroom", "2", "--results", str(results)]) == 0
    payload = json.loads(results.read_text())
    greedy = payload["greedy"]
    clips = len(script.rl_clip_events(mrdpo))
    assert greedy["clips"] == clips and len(greedy["sample_totals"]) == 2
    for name in ("greedy.jsonl", "sample_seed1.jsonl", "sample_seed2.jsonl", "greedy_after_round1.jsonl"):
        assert len((mrdpo / "headroom" / name).read_text().splitlines()) == clips
    assert greedy["best_of"]["2"] <= greedy["best_of"]["1"] == greedy["sample_totals"][0]
    moved = greedy["after_round_1"]  # the demo's round 1 trains on the pairs of some of its clips
    assert sum(moved[g]["clips"] for g in ("paired", "unpaired") if moved[g]) == clips
    assert moved["paired"]["clips"] == payload["rounds"][0]["paired_clips"]
    rounds = payload["rounds"]
    assert [r["round"] for r in rounds] == ["round-001", "round-002"]  # the demo trains two rounds
    for r in rounds:
        assert r["clips"] > 0 and 0 <= r["paired_clips"] <= r["clips"]
        assert r["best_of_samples_total"] <= r["sample_total"]
        if r["paired_clips"]:
            assert r["chosen_total"] < r["rejected_total"]  # the demo's rule: any strictly lower Total
    assert (
        rounds[0]["after_round_paired"] is None or rounds[0]["after_round_paired"]["clips"] == rounds[0]["paired_clips"]
    )
