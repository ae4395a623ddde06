"""vs2_plugin.modeling.interleave: hand-worked token counts and placements (paper eq. 2, 6-8)."""

from __future__ import annotations

import bisect
import doctest
import random
import subprocess
import sys
from fractions import Fraction

import pytest

from vs2_plugin.errors import ConfigError
from vs2_plugin.modeling import interleave
from vs2_plugin.modeling.interleave import (
    audio_segment_count,
    audio_token_count,
    frame_slot_edges,
    interleave_plan,
    placeholder_layout,
    regularized_frame_size,
    visual_tokens_per_group,
    windows_per_segment,
)


def test_doctests():
    assert doctest.testmod(interleave).failed == 0


def test_module_is_pure_python():
    code = "import sys, vs2_plugin.modeling.interleave; bad = {'torch', 'numpy', 'transformers'} & set(sys.modules); assert not bad, bad"
    subprocess.run([sys.executable, "-c", code], check=True)


# ------------------------------------------------------------------ counts


def test_segments_eq2():
    assert [audio_segment_count(t) for t in (0.5, 29.9, 30.0, 30.01, 60.0, 61.0)] == [1, 1, 1, 2, 2, 3]


def test_windows_per_segment():
    assert windows_per_segment(0.2) == 150  # paper sec. 4.1: 150 tokens per 30 s
    assert windows_per_segment(0.5) == 60  # public code: 60 per 30 s
    assert windows_per_segment(0.3) == 100  # 0.3 is not exact in binary; exact as a decimal
    with pytest.raises(ConfigError, match="window_s=0.7"):
        windows_per_segment(0.7)


def test_audio_token_count_drops_padding_past_the_end():
    assert audio_token_count(30.0) == 150
    assert audio_token_count(60.0) == 300
    # 61 s: 3 segments = 450 aligner outputs, but only windows starting before 61 s are kept
    assert audio_token_count(61.0) == 305
    assert audio_token_count(61.0, window_s=0.5) == 122
    assert audio_token_count(2.5) == 13  # windows at 0, 0.2, ..., 2.4
    assert audio_token_count(2.4) == 12  # a window starting exactly at the end is dropped
    assert audio_token_count(2.41) == 13  # a partly filled last window is kept
    assert audio_token_count(0.05) == 1
    assert audio_token_count(29.99) == 150 and audio_token_count(30.01) == 151
    assert audio_token_count(61.0, 0.2, queries_per_window=2) == 610


@pytest.mark.parametrize(
    "call, bad",
    [
        (lambda: audio_token_count(0), "duration_s"),
        (lambda: audio_token_count(5, window_s=-1), "window_s"),
        (lambda: audio_token_count(5, queries_per_window=0), "queries_per_window"),
        (lambda: interleave_plan(5, -1), "num_frames"),
        (lambda: interleave_plan(5, 4, group_size=0), "group_size"),
        (lambda: frame_slot_edges(5, 0), "num_frames"),
    ],
)
def test_bad_values_are_named(call, bad):
    with pytest.raises(ConfigError, match=bad):
        call()


# ------------------------------------------------------------------ placement, hand-worked


def test_61s_clip_phi1_m30_windows_02():
    """30 frames, slots of 61/30 s. Windows start at 0.2 j; slot i takes
    ceil(305 (i+1) / 30) - ceil(305 i / 30) of them: 11, 10, 10, 10, 10, 10, then repeat
    (6 slots = 12.2 s = 61 windows)."""
    plan = interleave_plan(61.0, 30, window_s=0.2, group_size=2)
    assert plan.audio_tokens_per_frame == (11, 10, 10, 10, 10, 10) * 5
    assert plan.audio_tokens_per_group == (21, 20, 20) * 5
    assert plan.audio_tokens_total == 305 == sum(plan.audio_tokens_per_group)
    assert plan.audio_segments == 3 and plan.num_groups == 15
    # the public code's even spread would give every frame 450 / 30 = 15 tokens, putting
    # audio from 2.0 s onward (token 15 starts at 3.0 s) behind the wrong frame


def test_61s_clip_windows_05():
    # windows start at 0.5 j (122 kept); slot i: ceil(122 (i+1) / 30) - ceil(122 i / 30)
    plan = interleave_plan(61.0, 30, window_s=0.5)
    expected = [-(-122 * (i + 1) // 30) - -(-122 * i // 30) for i in range(30)]
    assert list(plan.audio_tokens_per_frame) == expected
    assert expected[:4] == [5, 4, 4, 4] and sum(expected) == 122


def test_short_clip_2_5s():
    plan = interleave_plan(2.5, 2, window_s=0.2)
    # slot [0, 1.25): starts 0 .. 1.2 -> 7; [1.25, 2.5): 1.4 .. 2.4 -> 6
    assert plan.audio_tokens_per_frame == (7, 6) and plan.audio_tokens_per_group == (13,)
    assert plan.slot_edges_s == (0.0, 1.25, 2.5)
    plan = interleave_plan(2.5, 2, window_s=0.5)
    assert plan.audio_tokens_per_frame == (3, 2)  # 0, .5, 1.0 | 1.5, 2.0


def test_window_starting_on_a_slot_edge_belongs_to_the_later_slot():
    plan = interleave_plan(4.0, 4, window_s=0.5, group_size=1)
    assert plan.audio_tokens_per_frame == (2, 2, 2, 2)  # 1.0 s starts slot 1, not slot 0


def test_non_multiple_of_30_duration_45s():
    plan = interleave_plan(45.0, 30, window_s=0.2)  # slots of 1.5 s, 225 windows, 2 segments
    assert plan.audio_segments == 2 and plan.audio_tokens_total == 225
    # slot i: ceil(7.5 (i+1)) - ceil(7.5 i): 8, 7, 8, 7, ...
    assert plan.audio_tokens_per_frame == (8, 7) * 15
    assert plan.audio_tokens_per_group == (15,) * 15


def test_odd_frame_count_last_group_has_one_frame():
    plan = interleave_plan(5.0, 5, window_s=0.5, group_size=2)
    assert plan.audio_tokens_per_frame == (2, 2, 2, 2, 2)
    assert plan.audio_tokens_per_group == (4, 4, 2)
    assert interleave_plan(5.0, 5, window_s=0.5, group_size=1).audio_tokens_per_group == (2,) * 5


def test_audio_only_uses_fixed_slots():
    plan = interleave_plan(2.901312, 0, window_s=0.2)  # the shared 2.wav
    assert plan.num_frames == 0 and plan.group_size == 1
    assert plan.slot_edges_s == (0.0, 1.0, 2.0, 2.901312)
    assert plan.audio_tokens_per_frame == (5, 5, 5) == plan.audio_tokens_per_group
    half = interleave_plan(2.5, 0, window_s=0.5, audio_slot_s=0.5)
    assert half.audio_tokens_per_frame == (1, 1, 1, 1, 1)


def test_silent_video_gets_no_audio():
    plan = interleave_plan(61.0, 30, has_audio=False)
    assert plan.audio_tokens_per_group == (0,) * 15 and plan.audio_tokens_total == 0
    assert plan.audio_segments == 0


def test_audio_longer_or_shorter_than_video():
    # bigbuckbunny: video 5.28 s (4 frames, slots 1.32 s), audio 5.312 s (27 windows)
    plan = interleave_plan(5.28, 4, window_s=0.2, audio_duration_s=5.312)
    assert plan.audio_tokens_per_frame == (7, 7, 6, 7) and plan.audio_tokens_total == 27
    # audio past the last slot goes after the last group
    assert interleave_plan(4.0, 2, window_s=0.5, audio_duration_s=6.0).audio_tokens_per_frame == (4, 8)
    # audio that stops early leaves later frames without audio
    assert interleave_plan(10.0, 10, window_s=0.2, audio_duration_s=4.0).audio_tokens_per_frame == (5,) * 4 + (0,) * 6


# ------------------------------------------------------------------ conservation property


def _brute_force(duration, frames, window, queries, group, audio_duration):
    """Every kept token placed one by one (exact decimals), independent of the implementation."""
    T, A, w = (Fraction(repr(float(x))) for x in (duration, audio_duration, window))
    kept = []
    j = 0
    while j * w < A and j < audio_segment_count(float(A)) * windows_per_segment(float(w)):
        kept.append(j * w)
        j += 1
    if frames:
        edges = [T * i / frames for i in range(frames + 1)]
        per_frame = [0] * frames
    else:
        edges = [min(Fraction(i), T) for i in range(-(-T.numerator // T.denominator) + 1)]
        per_frame, group = [0] * (len(edges) - 1), 1
    for start in kept:
        slot = min(bisect.bisect_right(edges, start) - 1, len(per_frame) - 1)  # last edge <= start
        per_frame[slot] += queries
    groups = [sum(per_frame[i : i + group]) for i in range(0, len(per_frame), group)]
    return per_frame, groups, queries * len(kept)


WINDOWS = [0.02, 0.1, 0.2, 0.25, 0.5, 1.0, 1.5, 3.0]


def _check(duration, frames, window, queries, group, audio_ratio):
    audio_duration = round(duration * audio_ratio, 3) or 0.001
    plan = interleave_plan(
        duration, frames, window_s=window, queries_per_window=queries, group_size=group, audio_duration_s=audio_duration
    )
    assert sum(plan.audio_tokens_per_frame) == sum(plan.audio_tokens_per_group) == plan.audio_tokens_total
    assert plan.audio_tokens_total == audio_token_count(audio_duration, window, queries)
    per_frame, groups, total = _brute_force(duration, frames, window, queries, group, audio_duration)
    assert list(plan.audio_tokens_per_frame) == per_frame and list(plan.audio_tokens_per_group) == groups
    assert plan.audio_tokens_total == total


def test_conservation_seeded_random_cases():
    rng = random.Random(1234)
    for _ in range(300):
        _check(
            duration=round(rng.uniform(0.05, 120.0), rng.choice([0, 1, 2, 3])) or 0.05,
            frames=rng.choice([0, 1, 2, 3, 5, 8, 16, 29, 30]),
            window=rng.choice(WINDOWS),
            queries=rng.randint(1, 3),
            group=rng.randint(1, 3),
            audio_ratio=rng.choice([1.0, 1.0, 0.5, 0.99, 1.01, 1.3]),
        )


def test_conservation_property():
    hypothesis = pytest.importorskip("hypothesis")
    st = hypothesis.strategies

    @hypothesis.settings(max_examples=200, deadline=None)
    @hypothesis.given(
        duration=st.decimals(min_value="0.05", max_value="400", places=3).map(float),
        frames=st.integers(0, 40),
        window=st.sampled_from(WINDOWS),
        queries=st.integers(1, 4),
        group=st.integers(1, 3),
        audio_ratio=st.sampled_from([1.0, 0.5, 0.999, 1.001, 1.5]),
    )
    def prop(duration, frames, window, queries, group, audio_ratio):
        _check(duration, frames, window, queries, group, audio_ratio)

    prop()


# ------------------------------------------------------------------ layout and visual tokens


def test_placeholder_layout():
    assert placeholder_layout(144, [14, 13]) == [("video", 144), ("audio", 14), ("video", 144), ("audio", 13)]
    assert placeholder_layout([5, 6, 7], [0, 0, 3]) == [("video", 18), ("audio", 3)]
    assert placeholder_layout([5, 6], [0, 2], merge=False) == [("video", 5), ("audio", 0), ("video", 6), ("audio", 2)]
    assert placeholder_layout(10, [0, 0]) == [("video", 20)]  # silent video
    assert placeholder_layout(0, [5, 5, 5]) == [("audio", 15)]  # audio-only
    with pytest.raises(ConfigError, match="2 visual group counts for 3"):
        placeholder_layout([1, 2], [1, 2, 3])
    with pytest.raises(ConfigError, match="audio tokens per group"):
        placeholder_layout(1, [-1])


def test_layout_of_a_plan_adds_up():
    plan = interleave_plan(61.0, 30, window_s=0.2)
    runs = placeholder_layout(84, plan.audio_tokens_per_group)
    assert sum(n for kind, n in runs if kind == "audio") == 305
    assert sum(n for kind, n in runs if kind == "video") == 84 * 15
    assert [kind for kind, _ in runs] == ["video", "audio"] * 15


def test_visual_tokens_per_group_hand_worked():
    # 1280x720 -> LLaMA-Factory cap 256*256: 341x192.
    assert regularized_frame_size(1280, 720) == (341, 192)
    # Qwen2.5-VL release pixels (3136 .. 12845056): round to /28 -> 196x336 -> 7 * 12 = 84
    assert visual_tokens_per_group(1280, 720, min_pixels=3136, max_pixels=12845056) == 84
    # video-processor defaults (min 100352): 192x341 is too small, scaled up by
    # sqrt(100352 / 65472) -> ceil to 252x448 -> 9 * 16 = 144
    assert visual_tokens_per_group(1280, 720) == 144
    # without LLaMA-Factory's cap: 720x1280 -> above max 602112 -> floor to 560x1008 -> 20 * 36
    assert visual_tokens_per_group(1280, 720, video_max_pixels=None) == 720
    assert regularized_frame_size(10, 3000) == (28, 3000)  # 28 px minimum side
