"""App. F pair selection against Table 3, and the LLaMA-Factory pairwise dataset files."""

import json

import pytest

from vs2_plugin.errors import ConfigError
from vs2_plugin.judge.pairs import TABLE3, RoundThresholds, Schedule, choose_pairs, select_pairs, write_pairwise_dataset
from vs2_plugin.judge.types import ScoredSample


def sample(video, error, rep, task="global", sid=None, media=("v.mp4",)):
    return ScoredSample(
        video_id=video,
        task=task,
        prompt="Describe the video.",
        caption=f"caption {video} {sid or error}",
        error=error,
        rep=rep,
        sample_id=sid or f"{video}-{error}-{rep}",
        media=list(media),
    )


def test_table3_values():
    assert TABLE3[1] == RoundThresholds(0.05, 0.01, 0.20, 0.01)
    for r in (2, 3, 4, 5):
        assert TABLE3[r] == RoundThresholds(0.20, -0.01, 0.45, 0.0)
    assert TABLE3[6].delta_e_global == pytest.approx(0.25)
    assert TABLE3[7].delta_e_global == pytest.approx(0.30)
    assert Schedule().for_round(12) == TABLE3[7]  # later rounds reuse the last row


def test_round1_global_needs_both_margins():
    t = Schedule().for_round(1)  # delta_e >= 5 %, delta_r >= 1 %
    kept = choose_pairs([sample("a", 0.30, 0.02), sample("a", 0.40, 0.05)], t)
    assert len(kept) == 1 and kept[0].chosen.error == 0.30 and kept[0].rejected.error == 0.40
    # exactly at the thresholds counts (0.35 - 0.30 == 0.05 up to float error)
    assert len(choose_pairs([sample("b", 0.30, 0.02), sample("b", 0.35, 0.03)], t)) == 1
    # error gap too small
    assert choose_pairs([sample("c", 0.30, 0.02), sample("c", 0.34, 0.10)], t) == []
    # better error but not less repetitive by 1 %
    assert choose_pairs([sample("d", 0.10, 0.02), sample("d", 0.40, 0.025)], t) == []


def test_negative_rep_threshold_allows_slightly_more_repetitive_chosen():
    t = Schedule().for_round(2)  # delta_e_g >= 20 %, delta_r_g >= -1 %
    kept = choose_pairs([sample("a", 0.10, 0.030), sample("a", 0.35, 0.025)], t)  # chosen 0.5 % more repetitive
    assert len(kept) == 1 and kept[0].chosen.error == 0.10
    assert kept[0].rep_margin == pytest.approx(-0.005)
    assert choose_pairs([sample("b", 0.10, 0.040), sample("b", 0.35, 0.025)], t) == []  # 1.5 % worse: out
    assert choose_pairs([sample("c", 0.10, 0.0), sample("c", 0.25, 0.0)], t) == []  # error gap 15 % < 20 %


def test_local_thresholds_apply_to_local_task():
    t = Schedule().for_round(2)  # local: delta_e_t >= 45 %, delta_r_t >= 0
    assert choose_pairs([sample("a", 0.10, 0.0, "local"), sample("a", 0.50, 0.0, "local")], t) == []
    kept = choose_pairs([sample("a", 0.10, 0.0, "local"), sample("a", 0.60, 0.0, "local")], t)
    assert len(kept) == 1 and kept[0].task == "local"
    # the same numbers as global pass the 20 % global threshold
    assert len(choose_pairs([sample("a", 0.10, 0.0), sample("a", 0.50, 0.0)], t)) == 1


def test_fully_negative_thresholds_pick_the_better_orientation():
    t = RoundThresholds(-0.05, -0.05, -0.05, -0.05)
    kept = choose_pairs([sample("a", 0.30, 0.0), sample("a", 0.28, 0.0)], t)
    assert len(kept) == 1 and kept[0].chosen.error == 0.28


def test_one_pair_per_video_and_task_with_largest_error_margin():
    t = Schedule().for_round(1)
    group = [
        sample("a", 0.2, 0.0, sid="s1"),
        sample("a", 0.5, 0.05, sid="s2"),
        sample("a", 0.9, 0.1, sid="s3"),
        sample("b", 0.1, 0.0),
        sample("b", 0.1, 0.0),
    ]
    kept = choose_pairs(group, t)
    assert len(kept) == 1
    assert (kept[0].chosen.sample_id, kept[0].rejected.sample_id) == ("s1", "s3")


def test_schedule_from_config_and_validation():
    s = Schedule.from_config(
        {
            1: {"e_g": 0.1, "r_g": -0.02, "e_t": 0.3, "r_t": 0.0},
            3: {"delta_e_global": 0.4, "delta_r_global": 0, "delta_e_local": 0.5, "delta_r_local": 0},
        }
    )
    assert s.for_round(2).delta_e_global == pytest.approx(0.1)
    assert s.for_round(5).delta_e_global == pytest.approx(0.4)
    assert Schedule.from_config([{"e_g": 0.1, "r_g": 0, "e_t": 0.2, "r_t": 0}]).for_round(
        1
    ).delta_e_local == pytest.approx(0.2)
    with pytest.raises(ConfigError, match="delta_e_global"):
        RoundThresholds(5, 0, 0, 0)  # percentages instead of fractions
    with pytest.raises(ConfigError):
        Schedule().for_round(0)
    # a misspelt or forgotten threshold is named, with close matches, not as a Python signature
    with pytest.raises(
        ConfigError, match=r"round 1: unknown threshold\(s\) delta_e_globl \(did you mean delta_e_global"
    ):
        Schedule.from_config({1: {"delta_e_globl": 0.1, "r_g": 0, "e_t": 0.2, "r_t": 0}})
    with pytest.raises(ConfigError, match=r"schedule round 'round1': a round is a number from 1"):
        Schedule.from_config({"round1": {"e_g": 0.1, "r_g": 0, "e_t": 0.2, "r_t": 0}})
    assert Schedule.from_config({"2": {"e_g": 0.1, "r_g": 0, "e_t": 0.2, "r_t": 0}}).for_round(2).delta_e_global == 0.1
    with pytest.raises(ConfigError, match=r"round 2: missing threshold\(s\) delta_r_local;"):
        Schedule.from_config([{"e_g": 0.1, "r_g": 0, "e_t": 0.2, "r_t": 0}, {"e_g": 0.1, "r_g": 0, "e_t": 0.2}])


def test_select_pairs_goes_through_the_hook_and_a_plugin_can_override():
    from vs2_plugin import hookimpl
    from vs2_plugin.plugins import build_plugin_manager

    pm = build_plugin_manager(entry_points=[])
    samples = [sample("a", 0.1, 0.0), sample("a", 0.9, 0.5)]
    assert len(select_pairs(samples, 1, pm=pm)) == 1

    class NoPairs:
        @hookimpl
        def vs2_select_pairs(self, samples, thresholds, round_index):
            return []

    pm.register(NoPairs(), name="no-pairs")
    assert select_pairs(samples, 1, pm=pm) == []


def test_a_plugin_rule_that_answers_something_else_than_pairs_is_named():
    from vs2_plugin import hookimpl
    from vs2_plugin.plugins import PluginFailure, build_plugin_manager

    pm = build_plugin_manager(entry_points=[])

    class Dicts:
        @hookimpl
        def vs2_select_pairs(self, samples, thresholds, round_index):
            return [{"chosen": samples[0], "rejected": samples[1]}]

    pm.register(Dicts(), name="dict-pairs")
    samples = [sample("a", 0.1, 0.0), sample("a", 0.9, 0.5)]
    with pytest.raises(PluginFailure, match=r"vs2_select_pairs plugin \(dict-pairs\) answered with dict: expected"):
        select_pairs(samples, 1, pm=pm)

    class Broken:
        @hookimpl(tryfirst=True)
        def vs2_select_pairs(self, samples, thresholds, round_index):
            return samples[5]

    pm.register(Broken(), name="broken-rule")
    with pytest.raises(PluginFailure, match=r"plugin 'broken-rule' failed in vs2_select_pairs: IndexError"):
        select_pairs(samples, 1, pm=pm)


def test_a_blank_caption_is_never_paired_whatever_rule_answers():
    """Silence (Miss 100 %, Hall 0, error 1.0) beats a caption with error 1.6 by the rates alone;
    the pair would be untrainable (LLaMA-Factory refuses an empty reply) and teach silence."""
    from dataclasses import replace

    from vs2_plugin import hookimpl
    from vs2_plugin.plugins import build_plugin_manager

    pm = build_plugin_manager(entry_points=[])
    talker = sample("a", 1.6, 0.05, sid="talks")
    blank = replace(sample("a", 1.0, 0.0, sid="blank"), caption=" \n")
    assert [p.chosen.sample_id for p in choose_pairs([blank, talker], Schedule().for_round(1))] == ["blank"]
    assert select_pairs([blank, talker], 1, pm=pm) == []
    # with a third caption, the pair is made of the two that have text
    good = sample("a", 0.5, 0.0, sid="good")
    pairs = select_pairs([blank, talker, good], 1, pm=pm)
    assert [(p.chosen.sample_id, p.rejected.sample_id) for p in pairs] == [("good", "talks")]

    seen = []

    class Spy:
        @hookimpl
        def vs2_select_pairs(self, samples, thresholds, round_index):
            seen.extend(s.sample_id for s in samples)

    pm.register(Spy(), name="spy")
    select_pairs([blank, talker, good], 1, pm=pm)
    assert sorted(seen) == ["good", "talks"]  # a plugin never sees it either


def test_write_pairwise_dataset(tmp_path):
    (tmp_path / "dataset_info.json").write_text(json.dumps({"other": {"file_name": "other.json"}}))
    kept = choose_pairs([sample("a", 0.1, 0.0), sample("a", 0.9, 0.5)], Schedule().for_round(1))
    path = write_pairwise_dataset(kept, tmp_path, "vs2_round1")
    records = json.loads(path.read_text())
    assert records == [
        {
            "conversations": [{"from": "human", "value": "<video>Describe the video."}],
            "chosen": {"from": "gpt", "value": kept[0].chosen.caption},
            "rejected": {"from": "gpt", "value": kept[0].rejected.caption},
            "videos": ["v.mp4"],
        }
    ]
    info = json.loads((tmp_path / "dataset_info.json").read_text())
    assert "other" in info
    assert info["vs2_round1"]["ranking"] is True and info["vs2_round1"]["formatting"] == "sharegpt"
    assert info["vs2_round1"]["columns"] == {
        "messages": "conversations",
        "chosen": "chosen",
        "rejected": "rejected",
        "videos": "videos",
    }


def test_dataset_info_entry_is_understood_by_llamafactory(tmp_path):
    parser = pytest.importorskip("llamafactory.data.parser")
    kept = choose_pairs([sample("a", 0.1, 0.0), sample("a", 0.9, 0.5)], Schedule().for_round(1))
    write_pairwise_dataset(kept, tmp_path, "vs2_round1")
    attrs = parser.get_dataset_list(["vs2_round1"], str(tmp_path))
    assert attrs[0].ranking and attrs[0].formatting == "sharegpt"
    assert (attrs[0].messages, attrs[0].chosen, attrs[0].rejected, attrs[0].videos) == (
        "conversations",
        "chosen",
        "rejected",
        "videos",
    )
