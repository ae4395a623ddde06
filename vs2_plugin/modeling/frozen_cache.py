"""Outputs of a frozen encoder kept by input content, so a clip seen again is not encoded again.

Whisper's encoder is frozen in every training stage (paper sec. 4.1) and always reads a full
30 s segment, so on a small model it is a large part of a training step (a quarter of a tiny
model's), and every epoch encodes the same segments again. :class:`FrozenOutputCache` keeps each
segment's encoder states, keyed by a digest of the segment's log-mel and by the encoder's
weights (their storage and in-place version counters: loading other weights, casting or an
optimizer step on them makes new keys), in
least-recently-used order within a byte budget. The states a hit returns are the ones the same
encoder computed for the same input (in another batch, so equal up to float rounding), so results
do not change; only time does.

Off by default (``VideoSalmonn2Config.audio_encoder_cache_mb`` = 0): with real datasets a pass
rarely sees a segment twice before the budget is spent. The tiny models turn it on.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable

import torch
from torch import nn


def weights_fingerprint(module: nn.Module) -> tuple:
    """What changes whenever ``module``'s weights or mode could: storage, in-place version, dtype."""
    tensors = [*module.parameters(), *module.buffers()]
    return (module.training, *((t.data_ptr(), t._version, t.dtype) for t in tensors))


def row_digest(row: torch.Tensor) -> bytes:
    """Content digest of one input row (shape, dtype and bytes)."""
    data = row.detach().contiguous().cpu()
    digest = hashlib.blake2b(digest_size=16)
    digest.update(f"{tuple(data.shape)}|{data.dtype}".encode())
    digest.update(data.view(torch.uint8).numpy().tobytes() if data.numel() else b"")
    return digest.digest()


class FrozenOutputCache:
    """``cache(encoder, batch)`` = ``encoder(batch)``, row by row from the cache where it can.

    ``encoder`` maps (S, ...) inputs to (S, ...) outputs row-independently (Whisper encodes each
    segment alone) and must not need gradients; rows not in the cache are encoded together in
    one call. ``max_bytes`` bounds the outputs held; the least recently used go first.
    """

    def __init__(self, max_bytes: int):
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 0:
            raise ValueError(f"max_bytes must be a non-negative integer, got {max_bytes!r}")
        self.max_bytes = max_bytes
        self.entries: OrderedDict[tuple, torch.Tensor] = OrderedDict()
        self.bytes = 0
        self.hits = 0
        self.misses = 0

    def __call__(self, encoder: Callable[[torch.Tensor], torch.Tensor], batch: torch.Tensor) -> torch.Tensor:
        module = encoder if isinstance(encoder, nn.Module) else None
        weights = weights_fingerprint(module) if module is not None else ()
        keys = [(weights, row_digest(row)) for row in batch]
        first_of: dict[tuple, int] = {}  # each missing input once, even if the batch repeats it
        for i, key in enumerate(keys):
            if key not in self.entries:
                first_of.setdefault(key, i)
        self.hits += len(keys) - len(first_of)
        self.misses += len(first_of)
        found: dict[tuple, torch.Tensor] = {}
        if first_of:
            with torch.no_grad():
                found = dict(zip(first_of, encoder(batch[list(first_of.values())])))
        rows = []
        for key in keys:
            if key not in found:
                self.entries.move_to_end(key)
            rows.append(found[key] if key in found else self.entries[key])
        for key, value in found.items():  # stored after the lookups: storing may evict
            self._put(key, value)
        return torch.stack(rows)

    def _put(self, key: tuple, value: torch.Tensor) -> None:
        size = value.numel() * value.element_size()
        if size > self.max_bytes:
            return
        self.entries[key] = value.detach().clone()  # a row of the batch output: keep only the row
        self.bytes += size
        while self.bytes > self.max_bytes:
            _, old = self.entries.popitem(last=False)
            self.bytes -= old.numel() * old.element_size()
