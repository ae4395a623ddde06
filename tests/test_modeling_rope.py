"""Hand-checked 3D positions for interleaved audio-visual sequences (vs2_plugin.modeling.rope)."""

from __future__ import annotations

import pytest
import torch

from vs2_plugin.modeling.rope import RopeTokens, interleaved_rope_index

IMG, VID, AUD = 90, 91, 92
VS, VE, AS, AE = 80, 81, 82, 83
TOKENS = RopeTokens(image_token_id=IMG, video_token_id=VID, audio_token_id=AUD, spatial_merge_size=2, tokens_per_second=2)


def rope(ids, **kwargs):
    positions, deltas = interleaved_rope_index(torch.tensor([ids]), TOKENS, **kwargs)
    return positions[:, 0].tolist(), deltas[0, 0].item()


def test_interleaved_video_with_audio():
    # 2 temporal groups of 2x2 merged tokens; 3 audio tokens after group 0, 2 after group 1.
    ids = [1, 2, VS] + [VID] * 4 + [AUD] * 3 + [VID] * 4 + [AUD] * 2 + [VE, 3, 4]
    (t, h, w), delta = rope(ids, video_grid_thw=torch.tensor([[2, 4, 4]]), second_per_grid_ts=torch.tensor([1.0]))
    # group g has temporal position 3 + g * (1 s/group * 2 tokens/s); audio shares its group's t,
    # and h = w = 3 + (its index within the group).
    assert t == [0, 1, 2, 3, 3, 3, 3, 3, 3, 3, 5, 5, 5, 5, 5, 5, 6, 7, 8]
    assert h == [0, 1, 2, 3, 3, 4, 4, 3, 4, 5, 3, 3, 4, 4, 3, 4, 6, 7, 8]
    assert w == [0, 1, 2, 3, 4, 3, 4, 3, 4, 5, 3, 4, 3, 4, 3, 4, 6, 7, 8]
    assert delta == 9 - len(ids)


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
    with pytest.raises(ValueError, match=message):
        rope(ids, video_grid_thw=torch.tensor([[2, 4, 4]]))
