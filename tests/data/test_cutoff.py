"""Where cutoff_len cuts a sample: LLaMA-Factory's arithmetic replayed on token counts."""

from __future__ import annotations

import doctest
import itertools

from vs2_plugin.data import cutoff
from vs2_plugin.data.cutoff import Turn, kept_lengths, pairwise_cut, supervised_cut


def test_doctests():
    assert doctest.testmod(cutoff).failed == 0


def test_kept_lengths_is_llamafactorys_rule_on_a_grid():
    from llamafactory.data.processor.processor_utils import infer_seqlen

    lengths = [0, 1, 7, 50, 99, 100, 101, 255, 256, 257, 600, 2000]
    for source, target, budget in itertools.product(lengths, lengths, [1, 64, 200, 256, 1024]):
        assert kept_lengths(source, target, budget) == infer_seqlen(source, target, budget), (source, target, budget)


def test_a_prompt_with_media_is_cut_when_its_reply_leaves_too_little():
    # 1,000 media tokens fit a 1,024 budget alone; with a 40-token prompt and a 60-token caption
    # the prompt keeps 964 of its 1,040 tokens
    assert supervised_cut([Turn(text=40, media=1000, reply=60)], 1024) == (0, 964)
    # an EOS kept for efficient_eos templates takes one more token
    assert supervised_cut([Turn(text=40, media=900, reply=84)], 1024) is None  # 1,024 exactly
    assert supervised_cut([Turn(text=40, media=900, reply=85)], 1024) == (0, 939)
    assert supervised_cut([Turn(text=40, media=900, reply=84)], 1024, efficient_eos=True) == (0, 939)
    # a long reply does not protect the prompt: both are cut in proportion (1,040 : 1,500)
    assert supervised_cut([Turn(text=40, media=1000, reply=1500)], 1024) == (0, 1024 - int(1024 * 1500 / 2540))
    # a turn without media may be cut: nothing breaks
    assert supervised_cut([Turn(text=2000, media=0, reply=10)], 1024) is None


def test_a_later_turn_with_media_gets_what_the_earlier_turns_left():
    first = Turn(text=30, media=0, reply=700)
    # the first keeps 730 tokens, so the second has 294: its 280-token prompt and 50-token reply overflow
    assert supervised_cut([first, Turn(text=30, media=200, reply=50)], 1024) is None
    assert supervised_cut([first, Turn(text=30, media=250, reply=50)], 1024) == (1, 244)
    # the budget is spent before the turn: it is dropped whole
    assert supervised_cut([Turn(text=24, media=0, reply=1000), Turn(text=10, media=5, reply=5)], 1024) == (1, 0)
    assert supervised_cut([Turn(text=24, media=0, reply=1000), Turn(text=10, media=0, reply=5)], 1024) is None


def test_a_preference_prompt_shares_the_budget_with_the_longer_reply():
    prompt = [Turn(text=20, media=950, reply=0)]
    assert pairwise_cut(prompt, chosen=50, rejected=54, cutoff_len=1024) is None  # 970 + 54
    assert pairwise_cut(prompt, chosen=50, rejected=55, cutoff_len=1024) == 969
    assert pairwise_cut(prompt, chosen=55, rejected=50, cutoff_len=1024) == 969
    assert pairwise_cut(prompt, chosen=50, rejected=54, cutoff_len=1024, efficient_eos=True) == 969
    assert pairwise_cut([Turn(text=2000, media=0, reply=0)], 50, 50, 1024) is None
