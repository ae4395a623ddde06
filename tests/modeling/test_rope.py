"""Hand-checked 3D positions for interleaved audio-visual sequences (vs2_plugin.modeling.rope)."""

from __future__ import annotations

import math

import pytest
import torch

from vs2_plugin.modeling.interleave import interleave_plan
from vs2_plugin.modeling.rope import RopeTokens, audio_time_offsets, interleaved_rope_index

IMG, VID, AUD = 90, 91, 92
VS, VE, AS, AE = 80, 81, 82, 83
TOKENS = RopeTokens(
    image_token_id=IMG, video_token_id=VID, audio_token_id=AUD, spatial_merge_size=2, tokens_per_second=2
)


def rope(ids, **kwargs):
    positions, deltas = interleaved_rope_index(torch.tensor([ids]), TOKENS, **kwargs)
    return positions[:, 0].tolist(), deltas[0, 0].item()


def test_interleaved_video_with_audio():
    # 2 temporal groups of 2x2 merged tokens, 1 s per group at 2 steps/s -> group t = 3 + 0, 3 + 2.
    # 0.5 s audio windows: windows 0, 1 (0 s, 0.5 s) follow group 0, windows 2, 3 (1 s, 1.5 s)
    # group 1; each window's t = 3 + floor(start_s * 2) = 3, 4 | 5, 6, and h = w = 3 + 2 (one
    # past the 2x2 grid), so no audio token sits on a video patch.
    tokens = RopeTokens(IMG, VID, AUD, spatial_merge_size=2, tokens_per_second=2, audio_window_s=0.5)
    ids = [1, 2, VS] + [VID] * 4 + [AUD] * 2 + [VID] * 4 + [AUD] * 2 + [VE, 3, 4]
    positions, deltas = interleaved_rope_index(
        torch.tensor([ids]), tokens, video_grid_thw=torch.tensor([[2, 4, 4]]), second_per_grid_ts=torch.tensor([1.0])
    )
    t, h, w = positions[:, 0].tolist()
    assert t == [0, 1, 2, 3, 3, 3, 3, 3, 4, 5, 5, 5, 5, 5, 6, 7, 8, 9]
    assert h == [0, 1, 2, 3, 3, 4, 4, 5, 5, 3, 3, 4, 4, 5, 5, 7, 8, 9]
    assert w == [0, 1, 2, 3, 4, 3, 4, 5, 5, 3, 4, 3, 4, 5, 5, 7, 8, 9]
    assert deltas.item() == 10 - len(ids)


def test_audio_time_offsets_hand_worked():
    # 0.2 s windows at 2 steps/s: 0.4 steps per window; exact decimals, so window 5 (1.0 s) is 2, not 1.
    assert audio_time_offsets(0, 11, window_s=0.2, queries_per_window=1, tokens_per_second=2) == [
        0,
        0,
        0,
        1,
        1,
        2,
        2,
        2,
        3,
        3,
        4,
    ]
    # two tokens per window share its time; counting starts at the video's first audio token
    assert audio_time_offsets(4, 4, window_s=0.5, queries_per_window=2, tokens_per_second=3) == [3, 3, 4, 4]
    # 0.1 * 3 is 0.30000000000000004 in floats: window 10 starts at 1 s = step 3 exactly
    assert audio_time_offsets(10, 1, window_s=0.1, queries_per_window=1, tokens_per_second=3) == [3]
    assert audio_time_offsets(7, 0, window_s=0.2, queries_per_window=1, tokens_per_second=2) == []


def test_audio_of_a_61s_clip_is_on_the_video_clock_and_off_its_grid():
    """The time-placed layout of a 61 s clip (30 frames, 15 groups of 2.0333 s, 0.2 s windows)."""
    plan = interleave_plan(61.0, 30)
    per_group, grid = 12, (15, 6, 8)  # 3 x 4 merged tokens per group
    ids = [VS]
    for audio in plan.audio_tokens_per_group:
        ids += [VID] * per_group + [AUD] * audio
    ids += [VE]
    spg = 2 * 61.0 / 30
    positions, _ = interleaved_rope_index(
        torch.tensor([ids]), TOKENS, video_grid_thw=torch.tensor([grid]), second_per_grid_ts=torch.tensor([spg])
    )
    pos = positions[:, 0].T.tolist()
    video = [tuple(p) for p, i in zip(pos, ids) if i == VID]
    audio = [tuple(p) for p, i in zip(pos, ids) if i == AUD]
    assert len(audio) == plan.audio_tokens_total == 305 and len(video) == 15 * 12
    assert not set(audio) & set(video)
    times = [p[0] for p in audio]
    assert times == sorted(times)
    # window j (start 0.2 j s) -> 1 + floor(0.4 j); the last window starts at 60.8 s -> 1 + 121
    assert times == [1 + (2 * j) // 5 for j in range(305)]
    assert {(p[1], p[2]) for p in audio} == {(1 + 3, 1 + 4)}
    # every audio token lies between the temporal positions of its group and the next
    group_t = [1 + math.floor(g * spg * 2) for g in range(16)]
    k = 0
    for g, count in enumerate(plan.audio_tokens_per_group):
        for _ in range(count):
            assert group_t[g] <= times[k] <= group_t[g + 1], (g, k)
            k += 1


def test_silent_video_and_fractional_time_scale():
    # 3 groups, 0.5 s per group at 3 tokens/s -> t offsets floor(1.5 g) = 0, 1, 3; text resumes at max + 1.
    tokens = RopeTokens(IMG, VID, AUD, spatial_merge_size=2, tokens_per_second=3)
    ids = [VS] + [VID] * 3 + [VE, 5]
    positions, deltas = interleaved_rope_index(
        torch.tensor([ids]), tokens, video_grid_thw=torch.tensor([[3, 2, 2]]), second_per_grid_ts=torch.tensor([0.5])
    )
    t, h, w = positions[:, 0].tolist()
    assert t == [0, 1, 2, 4, 5, 6]
    assert h == [0, 1, 1, 1, 5, 6] and w == [0, 1, 1, 1, 5, 6]
    assert deltas.item() == 7 - len(ids)


def test_image_grid():
    ids = [VS] + [IMG] * 6 + [VE]
    (t, h, w), delta = rope(ids, image_grid_thw=torch.tensor([[1, 4, 6]]))
    assert t == [0, 1, 1, 1, 1, 1, 1, 4]
    assert h == [0, 1, 1, 1, 2, 2, 2, 4]
    assert w == [0, 1, 2, 3, 1, 2, 3, 4]
    assert delta == 5 - len(ids)


def test_audio_only_item_is_one_dimensional():
    ids = [1, AS, AUD, AUD, AUD, AE, 2]
    (t, h, w), delta = rope(ids)
    assert t == h == w == list(range(7))
    assert delta == 0


def test_padding_left_and_right_is_skipped():
    ids = [1, VS] + [VID] * 4 + [AUD] * 2 + [VE]
    grid = torch.tensor([[1, 4, 4], [1, 4, 4]])
    pad = [0, 0, 0]
    batch = torch.tensor([pad + ids, ids + pad])
    mask = torch.tensor([[0] * 3 + [1] * len(ids), [1] * len(ids) + [0] * 3])
    positions, deltas = interleaved_rope_index(batch, TOKENS, video_grid_thw=grid, attention_mask=mask)
    alone, alone_delta = interleaved_rope_index(torch.tensor([ids]), TOKENS, video_grid_thw=grid[:1])
    assert torch.equal(positions[:, 0, 3:], alone[:, 0]) and torch.equal(positions[:, 1, :-3], alone[:, 0])
    assert (positions[:, 0, :3] == 1).all() and (positions[:, 1, -3:] == 1).all()
    assert deltas.flatten().tolist() == [alone_delta.item()] * 2


def test_two_videos_in_one_batch_use_their_own_grids():
    a = [VS] + [VID] * 4 + [AUD] + [VE]  # grid (1, 4, 4): 4 tokens
    b = [VS] + [VID] * 4 + [VE, 7]  # grid (2, 2, 4): 2 tokens per group
    batch = torch.tensor([a, b])
    grids = torch.tensor([[1, 4, 4], [2, 2, 4]])
    positions, _ = interleaved_rope_index(batch, TOKENS, video_grid_thw=grids)
    assert positions[0, 1, 1:5].tolist() == [1, 1, 3, 3]  # second video: groups at t = 1 and 1 + 2


@pytest.mark.parametrize(
    "ids, message",
    [
        ([VS] + [VID] * 4 + [VE], "needs 8"),
        ([VS] + [VID] * 3 + [VE], "whole temporal groups of 4"),
        ([VS] + [VID] * 2 + [AUD] + [VID] * 6 + [VE], "whole temporal groups of 4"),
        ([VS] + [VID] * 8 + [VE, VS] + [VID] * 4 + [VE], "more videos"),
    ],
)
def test_malformed_sequences_are_reported(ids, message):
    with pytest.raises(ValueError, match=message) as info:
        rope(ids, video_grid_thw=torch.tensor([[2, 4, 4]]))
    if message != "more videos":  # a video cut short: what cuts it in training is named
        assert "raise cutoff_len" in str(info.value)


def test_doctests_and_bad_audio_geometry_named():
    import doctest

    from vs2_plugin.modeling import rope as rope_module

    assert doctest.testmod(rope_module).failed == 0
    with pytest.raises(ValueError, match="audio_window_s must be a positive number, got 0"):
        RopeTokens(IMG, VID, AUD, audio_window_s=0)
    with pytest.raises(ValueError, match="audio_queries_per_window must be a positive integer, got 1.5"):
        RopeTokens(IMG, VID, AUD, audio_queries_per_window=1.5)
