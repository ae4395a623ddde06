"""The frozen-encoder cache: same outputs as encoding, fewer encoder calls, keyed by weights, bounded."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from vs2_plugin.errors import ConfigError
from vs2_plugin.modeling.frozen_cache import FrozenOutputCache


class CountingEncoder(nn.Module):
    """Row-independent encoder (a Linear over the last axis) that counts the rows it encodes."""

    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(6, 4)
        self.rows = 0

    def forward(self, x):
        self.rows += x.shape[0]
        return self.proj(x)


def rows(n, seed=0):
    return torch.randn(n, 3, 6, generator=torch.Generator().manual_seed(seed))


def test_hits_return_the_encoded_rows_and_skip_the_encoder():
    encoder, cache = CountingEncoder(), FrozenOutputCache(2**20)
    a, b = rows(2, seed=1), rows(1, seed=2)
    first = cache(encoder, a)
    assert encoder.rows == 2 and (cache.hits, cache.misses) == (0, 2)
    mixed = torch.cat([a[1:], b, a[:1]])  # two seen rows around a new one
    out = cache(encoder, mixed)
    assert encoder.rows == 3, "only the new row is encoded"
    assert (cache.hits, cache.misses) == (2, 3)
    with torch.no_grad():  # equal up to the rounding of another batch shape
        torch.testing.assert_close(out, encoder.proj(mixed), rtol=1e-6, atol=1e-6)
    assert torch.equal(out[0], first[1]) and torch.equal(out[2], first[0])
    assert not out.requires_grad


def test_changed_weights_are_a_miss():
    encoder, cache = CountingEncoder(), FrozenOutputCache(2**20)
    x = rows(2)
    before = cache(encoder, x)
    with torch.no_grad():
        encoder.proj.weight.add_(1.0)  # in place: same storage, new version
    after = cache(encoder, x)
    assert encoder.rows == 4
    assert not torch.allclose(before, after)
    with torch.no_grad():
        torch.testing.assert_close(after, encoder.proj(x), rtol=1e-6, atol=1e-6)
    encoder.load_state_dict({k: v.clone() for k, v in CountingEncoder().state_dict().items()})
    cache(encoder, x)
    assert encoder.rows == 6, "loaded weights are new keys"


def test_budget_evicts_the_least_recently_used():
    encoder = CountingEncoder()
    row_bytes = 3 * 4 * 4  # (3, 4) float32 outputs per row
    cache = FrozenOutputCache(2 * row_bytes)
    r1, r2, r3 = rows(1, 1), rows(1, 2), rows(1, 3)
    cache(encoder, r1)
    cache(encoder, r2)
    cache(encoder, r1)  # r1 now the most recent
    cache(encoder, r3)  # evicts r2
    assert cache.bytes == 2 * row_bytes and len(cache.entries) == 2
    encoder.rows = 0
    cache(encoder, torch.cat([r1, r3]))
    assert encoder.rows == 0
    cache(encoder, r2)
    assert encoder.rows == 1
    small = FrozenOutputCache(row_bytes)  # room for one row: a hit and a miss in one batch
    small(encoder, r1)
    out = small(encoder, torch.cat([r1, r2]))
    with torch.no_grad():
        torch.testing.assert_close(out, encoder.proj(torch.cat([r1, r2])), rtol=1e-6, atol=1e-6)
    assert list(small.entries.values())[0].shape == (3, 4) and small.bytes == row_bytes


def test_a_row_twice_in_one_batch_is_stored_once():
    encoder, cache = CountingEncoder(), FrozenOutputCache(2**20)
    x = rows(1)
    out = cache(encoder, torch.cat([x, x]))
    assert torch.equal(out[0], out[1])
    assert len(cache.entries) == 1 and cache.bytes == 3 * 4 * 4
    cache(encoder, rows(2, seed=9))  # two new rows encoded in one call
    for stored in cache.entries.values():
        assert stored.untyped_storage().nbytes() == 3 * 4 * 4, "a row of its own, not a view of the batch output"


def test_zero_budget_keeps_nothing_and_bad_budgets_are_refused():
    encoder, cache = CountingEncoder(), FrozenOutputCache(0)
    cache(encoder, rows(2))
    cache(encoder, rows(2))
    assert encoder.rows == 4 and not cache.entries
    with pytest.raises(ValueError, match="-1"):
        FrozenOutputCache(-1)


def test_model_audio_features_equal_with_and_without_the_cache(tiny_model_dir):
    from transformers import AutoModelForImageTextToText

    from vs2_plugin.modeling import register_auto_classes

    register_auto_classes()
    model = AutoModelForImageTextToText.from_pretrained(tiny_model_dir).eval()
    inner = model.model
    assert inner.audio_encoder_cache is not None, "the tiny model turns the cache on"
    for p in inner.audio_encoder.parameters():
        p.requires_grad_(False)
    mel = torch.randn(3, 80, 3000, generator=torch.Generator().manual_seed(0))
    segments, tokens = torch.tensor([2, 1]), torch.tensor([160, 30])
    cached = [inner.get_audio_features(mel, segments, tokens) for _ in range(2)]
    assert (inner.audio_encoder_cache.hits, inner.audio_encoder_cache.misses) == (3, 3)
    cache, inner.audio_encoder_cache = inner.audio_encoder_cache, None
    try:
        plain = inner.get_audio_features(mel, segments, tokens)
    finally:
        inner.audio_encoder_cache = cache
    assert torch.equal(cached[0], plain) and torch.equal(cached[1], plain)
    # a trainable encoder is never served from the cache (its weights change every step)
    inner.audio_encoder.conv1.weight.requires_grad_(True)
    inner.get_audio_features(mel, segments, tokens)
    assert inner.audio_encoder_cache.hits == 3


def test_config_refuses_a_negative_budget():
    from vs2_plugin.modeling.config import VideoSalmonn2Config

    assert VideoSalmonn2Config().audio_encoder_cache_mb == 0, "off unless asked for"
    with pytest.raises(ConfigError, match="audio_encoder_cache_mb.*-5"):
        VideoSalmonn2Config(audio_encoder_cache_mb=-5)
