"""3D (M-RoPE) position ids for interleaved audio-visual sequences (eq. 6-8 layout).

Qwen2.5-VL gives every token a (temporal, height, width) position. Its own index function
assumes a video's tokens are contiguous; ours walks the sequence run by run so audio tokens
may sit between the temporal groups of a video:

``<|vision_start|> [V x n]_0 [A x a_0] [V x n]_1 [A x a_1] ... <|vision_end|>``

Rules (all positions offset by ``start`` = the next free position when the item begins):

* text, special tokens, and the audio tokens of an audio-only item
  (``<|audio_start|> A x K <|audio_end|>``): ordinary 1D positions, t = h = w = p, p += 1.
* image / video tokens: Qwen2.5-VL's grid, t = start + floor(g * second_per_grid * tokens_per_second)
  for temporal group g, h = start + row, w = start + column (merged grid of R rows, C columns).
* audio tokens of a video (:func:`audio_time_offsets`): the k-th audio token of the video
  (0-based, counted over the whole video) belongs to Q-Former window j = k // queries_per_window,
  which starts at j * window_s seconds on the clip's time axis. It gets
  t = start + floor(j * window_s * tokens_per_second) -- the same clock as the video's
  temporal positions, since Qwen's group g starts at g * second_per_grid seconds and
  ``second_per_grid`` is the real slot length (``group_size * duration / frames``) --
  and h = start + R, w = start + C: the cell just past the frame's last row and column, so no
  audio token shares a 3D position with a video patch. Windows are in time order along the
  input, so audio t never decreases; a window placed after group g starts inside g's slot, so
  its t lies between group g's and group g+1's.
* after an image or video item, the next position is max(positions so far) + 1, as in the
  original Qwen2.5-VL (so text after a video continues after its last temporal position).

The paper (sec. 3.1, eq. 6-8) fixes only the token order, not the positions. The public
video-SALMONN 2 code spreads all audio tokens evenly over the frames, so an audio token's
position follows its frame rather than its own time; the public video-SALMONN 2+ code (on
Qwen2.5-VL) gives each audio window its own time position, which is what this module does.
Off-grid h / w are this project's choice: with 1D-style audio coordinates (h = w = t or
h = w = index, as Qwen2.5-Omni does for audio) some audio tokens land exactly on a video
patch's position (60 of the 306 audio tokens of a 61 s clip with an earlier version here).

``rope_deltas[b] = max position + 1 - number of real tokens``: during generation the new
token at real index i gets i + delta on all three axes.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import torch

from vs2_plugin.modeling.geometry import AUDIO_DEFAULTS
from vs2_plugin.modeling.interleave import exact_decimal

TEXT, IMAGE, VIDEO, AUDIO = 0, 1, 2, 3


@dataclass(frozen=True)
class RopeTokens:
    """Token ids, vision geometry and audio window geometry the index needs."""

    image_token_id: int
    video_token_id: int
    audio_token_id: int
    spatial_merge_size: int = 2
    tokens_per_second: float = 2.0
    audio_window_s: float = AUDIO_DEFAULTS.window_s
    audio_queries_per_window: int = AUDIO_DEFAULTS.queries_per_window

    def __post_init__(self):
        if not isinstance(self.spatial_merge_size, int) or self.spatial_merge_size < 1:
            raise ValueError(f"spatial_merge_size must be a positive integer, got {self.spatial_merge_size!r}")
        for name in ("tokens_per_second", "audio_window_s"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive number, got {value!r}")
        queries = self.audio_queries_per_window
        if isinstance(queries, bool) or not isinstance(queries, int) or queries < 1:
            raise ValueError(f"audio_queries_per_window must be a positive integer, got {queries!r}")


def audio_time_offsets(
    first: int, count: int, *, window_s: float, queries_per_window: int, tokens_per_second: float
) -> list[int]:
    """Temporal M-RoPE offsets of audio tokens ``first .. first + count - 1`` of one video.

    Token k belongs to window ``j = k // queries_per_window`` starting at ``j * window_s``
    seconds; its offset is ``floor(j * window_s * tokens_per_second)``, Qwen2.5-VL's
    ``floor(seconds * tokens_per_second)`` time scale for video groups. Exact decimal
    arithmetic: a window starting on a whole time step gets that step, not the one before.

    Worked example, 0.2 s windows, 2 steps per second (0.4 steps per window):
    windows 0..5 -> floor(0, 0.4, 0.8, 1.2, 1.6, 2.0) = 0, 0, 0, 1, 1, 2.

    >>> audio_time_offsets(0, 6, window_s=0.2, queries_per_window=1, tokens_per_second=2)
    [0, 0, 0, 1, 1, 2]
    >>> audio_time_offsets(3, 4, window_s=0.5, queries_per_window=2, tokens_per_second=2)
    [1, 2, 2, 3]
    """
    step = exact_decimal(window_s, "window_s") * exact_decimal(tokens_per_second, "tokens_per_second")
    return [math.floor((k // queries_per_window) * step) for k in range(first, first + count)]


def _grid_positions(start: int, grid_thw, groups: range, merge: int, time_scale: float) -> torch.Tensor:
    """Qwen2.5-VL positions of temporal groups ``groups`` of one image/video, shape (3, n)."""
    _, height, width = (int(v) for v in grid_thw)
    rows, cols = height // merge, width // merge
    group = torch.tensor([math.floor(g * time_scale) for g in groups], dtype=torch.long)
    t = group.repeat_interleave(rows * cols)
    h = torch.arange(rows).repeat_interleave(cols).repeat(len(groups))
    w = torch.arange(cols).repeat(rows * len(groups))
    return torch.stack([t, h, w]) + start


#: the usual cause of a video's tokens not matching its grid in training
CUT_HINT = (
    " (in training this is mostly a sequence cut inside its media tokens: the media and the text "
    "need more than cutoff_len; raise cutoff_len or lower video_maxlen / video_max_pixels)"
)


@dataclass
class _OpenVideo:
    """The video whose tokens are being placed: its grid, its temporal groups placed so far, the
    audio tokens interleaved into it, and the largest position it has used."""

    grid: tuple
    per_group: int  #: <|video_pad|> tokens per temporal group
    start: int  #: the position of its first token
    time_scale: float  #: temporal position steps per temporal group
    done: int = 0
    audio_done: int = 0
    max: int = 0

    @property
    def total(self) -> int:
        return self.per_group * int(self.grid[0])

    def video_positions(self, take: int, merge: int) -> torch.Tensor:
        """Positions of its next ``take`` video tokens: whole temporal groups (between audio runs)."""
        if self.done % self.per_group or take % self.per_group:
            raise ValueError(
                f"video tokens must come in whole temporal groups of {self.per_group} between audio "
                f"tokens; got a run of {take} for grid {tuple(self.grid)}{CUT_HINT}"
            )
        first = self.done // self.per_group
        pos = _grid_positions(
            self.start, self.grid, range(first, first + take // self.per_group), merge, self.time_scale
        )
        self.done += take
        self.max = max(self.max, int(pos.max()))
        return pos

    def audio_positions(self, length: int, tokens: RopeTokens) -> torch.Tensor:
        """Positions of ``length`` audio tokens of its soundtrack placed after a whole temporal group:
        time by :func:`audio_time_offsets`, height and width one past the frame's last row and column."""
        if self.done == 0 or self.done % self.per_group:
            raise ValueError("audio tokens inside a video must follow a whole temporal group of video tokens")
        offsets = audio_time_offsets(
            self.audio_done,
            length,
            window_s=tokens.audio_window_s,
            queries_per_window=tokens.audio_queries_per_window,
            tokens_per_second=tokens.tokens_per_second,
        )
        _, grid_h, grid_w = (int(v) for v in self.grid)
        merge = tokens.spatial_merge_size
        t = torch.tensor(offsets, dtype=torch.long) + self.start
        h = torch.full((length,), self.start + grid_h // merge)
        w = torch.full((length,), self.start + grid_w // merge)
        pos = torch.stack([t, h, w])
        self.audio_done += length
        self.max = max(self.max, int(pos.max()))
        return pos

    def next_position(self) -> int:
        """The position after it, once all its tokens are placed (ValueError otherwise)."""
        if self.done != self.total:
            raise ValueError(
                f"a video has {self.done} <|video_pad|> tokens but its grid {tuple(self.grid)} needs {self.total}"
                f"{CUT_HINT}"
            )
        return self.max + 1


def _image_positions(length: int, image_grids, next_pos: int, merge: int) -> list[torch.Tensor]:
    """Positions of a run of ``length`` <|image_pad|> tokens: one or more whole images, from ``next_pos``."""
    chunks = []
    while length:
        grid = next(image_grids, None)
        if grid is None:
            raise ValueError("more images in input_ids than rows in image_grid_thw")
        count = int(grid[0]) * int(grid[1]) * int(grid[2]) // merge**2
        if count > length:
            raise ValueError(f"an image needs {count} <|image_pad|> tokens but only {length} follow")
        chunks.append(_grid_positions(next_pos, grid, range(int(grid[0])), merge, 1.0))
        next_pos = int(chunks[-1].max()) + 1
        length -= count
    return chunks


def sequence_rope_index(
    ids: list[int],
    tokens: RopeTokens,
    image_grids,
    video_grids,
    video_seconds_per_grid,
) -> torch.Tensor:
    """Positions (3, len(ids)) of one unpadded sequence.

    ``image_grids`` / ``video_grids`` are iterators over (t, h, w) of the items in this
    sequence's order (shared across the batch); ``video_seconds_per_grid`` likewise.
    """
    kind = {tokens.image_token_id: IMAGE, tokens.video_token_id: VIDEO, tokens.audio_token_id: AUDIO}
    merge = tokens.spatial_merge_size
    chunks: list[torch.Tensor] = []
    next_pos = 0
    video: _OpenVideo | None = None
    for token_kind, run in itertools.groupby(ids, key=lambda token: kind.get(token, TEXT)):
        length = len(list(run))
        if token_kind == AUDIO and video is not None:  # a video's own soundtrack, interleaved by time
            chunks.append(video.audio_positions(length, tokens))
            continue
        if token_kind != VIDEO and video is not None:
            next_pos, video = video.next_position(), None
        if token_kind in (TEXT, AUDIO):
            chunks.append(torch.arange(next_pos, next_pos + length).expand(3, -1))
            next_pos += length
        elif token_kind == IMAGE:
            chunks += _image_positions(length, image_grids, next_pos, merge)
            next_pos = int(chunks[-1].max()) + 1
        else:  # a VIDEO run: one or more whole temporal groups, possibly starting a new video
            while length:
                if video is None or video.done == video.total:
                    if video is not None:
                        next_pos = video.next_position()
                    grid = next(video_grids, None)
                    if grid is None:
                        raise ValueError("more videos in input_ids than rows in video_grid_thw")
                    scale = float(next(video_seconds_per_grid)) * tokens.tokens_per_second
                    video = _OpenVideo(grid, int(grid[1]) * int(grid[2]) // merge**2, next_pos, scale, max=next_pos)
                take = min(length, video.total - video.done)
                chunks.append(video.video_positions(take, merge))
                length -= take
    if video is not None:
        video.next_position()  # the check that all its tokens came
    if not chunks:
        return torch.zeros(3, 0, dtype=torch.long)
    return torch.cat(chunks, dim=1)


def interleaved_rope_index(
    input_ids: torch.Tensor,
    tokens: RopeTokens,
    image_grid_thw: torch.Tensor | None = None,
    video_grid_thw: torch.Tensor | None = None,
    second_per_grid_ts=None,
    attention_mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Batch version: ``(position_ids (3, B, L), rope_deltas (B, 1))``.

    Padding (``attention_mask == 0``, left or right) is skipped; padded slots get position 1
    on every axis (they are masked anyway).
    """
    batch, length = input_ids.shape
    position_ids = torch.ones(3, batch, length, dtype=torch.long, device=input_ids.device)
    image_grids = iter(image_grid_thw.tolist() if image_grid_thw is not None else [])
    video_grids = iter(video_grid_thw.tolist() if video_grid_thw is not None else [])
    if second_per_grid_ts is None:
        seconds = itertools.repeat(1.0)
    else:
        seconds = iter(torch.as_tensor(second_per_grid_ts).flatten().tolist())
    deltas = []
    for b in range(batch):
        keep = attention_mask[b].bool() if attention_mask is not None else torch.ones(length, dtype=torch.bool)
        ids = input_ids[b][keep.to(input_ids.device)].tolist()
        pos = sequence_rope_index(ids, tokens, image_grids, video_grids, seconds)
        position_ids[:, b, keep.to(input_ids.device)] = pos.to(input_ids.device)
        deltas.append((int(pos.max()) + 1 - len(ids)) if len(ids) else 0)
    return position_ids, torch.tensor(deltas, device=input_ids.device, dtype=torch.long).unsqueeze(1)
