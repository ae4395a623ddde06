"""Ground-truth rows drawn in step with the preference pairs (the expectation of eq. 11).

Every pair row gets one ground-truth row (columns ``gt_input_ids``, ``gt_labels``, ...), so
the ground-truth batch of a step is the rows of that step's pairs: same batch size, same
shuffling, resumable with the pairs. ``match`` prefers the pair's own video and prompt (then
the ground truth can continue the pair's packed prompt); pairs without one, and ``random``
mode, get a seeded random row.
"""

from __future__ import annotations

import random
from collections import defaultdict
from typing import Hashable, Sequence

from vs2_plugin.errors import DataError
from vs2_plugin.gdpo.packing import prompt_length

MEDIA_COLUMNS = ("images", "videos", "audios")


def assign_gt_rows(pair_keys: Sequence[Hashable], gt_keys: Sequence[Hashable], mode: str, seed: int) -> list[int]:
    """Index of the ground-truth row for each pair.

    ``match``: pairs whose key occurs among ``gt_keys`` cycle through those rows; the others
    draw uniformly at random. ``random``: every pair draws uniformly at random.

    >>> assign_gt_rows(["a", "b", "a"], ["b", "a", "a"], "match", seed=0)
    [1, 0, 2]
    """
    if not gt_keys:
        raise DataError("the ground-truth dataset is empty")
    rng = random.Random(seed)
    by_key: dict[Hashable, list[int]] = defaultdict(list)
    if mode == "match":
        for index, key in enumerate(gt_keys):
            by_key[key].append(index)
    used: dict[Hashable, int] = defaultdict(int)
    rows = []
    for key in pair_keys:
        candidates = by_key.get(key)
        if candidates:
            rows.append(candidates[used[key] % len(candidates)])
            used[key] += 1
        else:
            rows.append(rng.randrange(len(gt_keys)))
    return rows


def _row_key(input_ids, labels, media) -> tuple:
    p = prompt_length(labels)
    return (tuple(input_ids[:p]), *(repr(m or []) for m in media))


def attach_gt(pairs, gt, mode: str, seed: int):
    """Return ``pairs`` with ``pair_index`` and the ``gt_*`` columns of the assigned rows."""
    return attach_gt_with_stats(pairs, gt, mode, seed)[0]


def match_rate(pair_keys: Sequence[Hashable], gt_keys: Sequence[Hashable], rows: Sequence[int]) -> float:
    """Fraction of pairs whose ground-truth row is their own video and prompt.

    >>> match_rate(["a", "b"], ["a", "c"], [0, 1])
    0.5
    """
    if not pair_keys:
        return 0.0
    return sum(gt_keys[row] == key for key, row in zip(pair_keys, rows)) / len(pair_keys)


def attach_gt_with_stats(pairs, gt, mode: str, seed: int):
    """:func:`attach_gt`, plus ``{"gt_match_rate": ..., "pairs": n}``: how often ``match`` found
    the pair's own video and prompt (the rest fell back to a random row)."""
    pair_keys, gt_keys = [], []
    media_pairs = [c for c in MEDIA_COLUMNS if c in pairs.column_names]
    for chunk in pairs.select_columns(["chosen_input_ids", "chosen_labels", *media_pairs]).iter(batch_size=512):
        for i, ids in enumerate(chunk["chosen_input_ids"]):
            pair_keys.append(_row_key(ids, chunk["chosen_labels"][i], [chunk[c][i] for c in media_pairs]))
    media_gt = [c for c in MEDIA_COLUMNS if c in gt.column_names]
    for chunk in gt.select_columns(["input_ids", "labels", *media_gt]).iter(batch_size=512):
        for i, ids in enumerate(chunk["input_ids"]):
            gt_keys.append(_row_key(ids, chunk["labels"][i], [chunk[c][i] for c in media_gt]))
    rows = assign_gt_rows(pair_keys, gt_keys, mode, seed)

    picked = gt.select(rows)
    columns = {"pair_index": list(range(len(pairs)))}
    for column in ("input_ids", "attention_mask", "labels", *media_gt):
        columns[f"gt_{column}"] = picked[column]
    for column, values in columns.items():
        pairs = pairs.add_column(column, values)
    return pairs, {"gt_match_rate": match_rate(pair_keys, gt_keys, rows), "pairs": len(pair_keys)}


def add_pair_index(pairs):
    return pairs if "pair_index" in pairs.column_names else pairs.add_column("pair_index", list(range(len(pairs))))
