"""Which audio tokens follow which frame: the slot arithmetic of paper sec. 3.1, eq. (2), (6)-(8).

Pure Python (no torch, no numpy). Everything here is a function of durations and counts, so
the number of placeholder tokens can be computed from container metadata alone
(:func:`vs2_plugin.data.media.probe`) and is guaranteed to match what the model is fed.

Time model
----------
* **Frame slots.** ``n`` frames sampled from a clip of ``T`` seconds own ``n`` equal slots
  ``[i*T/n, (i+1)*T/n)``; frame ``i`` is taken at the slot centre (see
  :func:`vs2_plugin.data.media.sample_frame_times`). The slots tile ``[0, T)`` exactly, so every
  audio instant belongs to exactly one frame.
* **Groups.** Qwen2.5-VL merges ``group_size`` (``temporal_patch_size``, 2) consecutive frames
  into one temporal group; the group's slot is the union of its frames' slots. The paper's
  "frame i" (eq. 6-8) is group i here. An odd frame count makes a last group of one real
  frame (the processor pads it by repeating that frame), whose slot is that frame's slot.
* **Audio tokens (eq. 2-5).** Audio is cut into ``l = ceil(T / segment_s)`` segments of
  ``segment_s`` (30 s, Whisper's t_max); the window-level Q-Former turns each segment into
  ``segment_s / window_s`` windows of ``queries_per_window`` tokens. Windows of consecutive
  segments are back to back, so window ``j`` of the concatenated output covers
  ``[j*window_s, (j+1)*window_s)`` on the absolute time axis and token ``k`` belongs to window
  ``k // queries_per_window``.
* **Which tokens are kept.** A window is kept when it *starts* before the real audio duration;
  windows that lie wholly in the zero padding of the last segment are dropped (the public
  reference code keeps them and spreads everything evenly over the frames, which drifts for
  clips that are not a multiple of 30 s). The model must keep the first
  :func:`audio_token_count` tokens of the aligner output, in order.
* **Placement (time-accurate eq. 6-7).** A kept token goes right after the frame (group) whose
  slot contains the **start** of its window. Windows that start at or after the end of the
  video (audio slightly longer than video) go after the last group. Nothing is lost or
  duplicated: the per-group counts sum to :func:`audio_token_count`.

Arithmetic is exact: durations are converted to fractions of the decimal numbers they print
as (``0.2`` is exactly 1/5), so 0.2 s windows tile 30 s without float drift and a window that
starts exactly on a slot boundary belongs to the later slot.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from itertools import pairwise

from vs2_plugin.errors import ConfigError
from vs2_plugin.modeling.geometry import AUDIO_DEFAULTS

# window, queries and segment defaults: the paper's geometry (sec. 4.1), written once in geometry.py
_WINDOW_S, _QUERIES, _SEGMENT_S = AUDIO_DEFAULTS.window_s, AUDIO_DEFAULTS.queries_per_window, AUDIO_DEFAULTS.segment_s
#: LLaMA-Factory's ``video_max_pixels`` / ``video_min_pixels`` defaults, for callers that work from
#: metadata alone and must not import it (``vs2 tokens``: importing it takes seconds); a test
#: checks them against its ModelArguments, elsewhere they are read from there
#: Qwen2-VL's image/video processor defaults: patch side, spatial merge, pixel range of a frame
QWEN_PATCH_SIZE = 14
QWEN_MERGE_SIZE = 2
QWEN_MIN_PIXELS = 128 * 28 * 28
QWEN_MAX_PIXELS = 768 * 28 * 28
LF_VIDEO_MAX_PIXELS = 256 * 256
LF_VIDEO_MIN_PIXELS = 16 * 16
#: Qwen2.5-VL ``temporal_patch_size``: frames merged into one temporal group.
DEFAULT_GROUP_SIZE = 2


def exact_decimal(value: float, name: str, *, positive: bool = True) -> Fraction:
    """``value`` as the exact decimal it prints as; ConfigError naming ``name`` if invalid."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(number) or (number <= 0 if positive else number < 0):
        raise ConfigError(f"{name} must be a {'positive' if positive else 'non-negative'} finite number, got {value!r}")
    return Fraction(repr(number))


def _positive_int(value: int, name: str, *, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def _ceil(value: Fraction) -> int:
    return -((-value.numerator) // value.denominator)


def windows_per_segment(window_s: float = _WINDOW_S, segment_s: float = _SEGMENT_S) -> int:
    """Q-Former windows in one ``segment_s`` audio segment; ``window_s`` must divide it.

    >>> windows_per_segment(0.2), windows_per_segment(0.5)
    (150, 60)
    """
    ratio = exact_decimal(segment_s, "segment_s") / exact_decimal(window_s, "window_s")
    if ratio.denominator != 1:
        raise ConfigError(f"window_s={window_s!r} must divide segment_s={segment_s!r} into a whole number of windows")
    return int(ratio)


def audio_segment_count(duration_s: float, segment_s: float = _SEGMENT_S) -> int:
    """Eq. (2): ``l = ceil(T / t_max)`` Whisper segments (at least 1).

    >>> audio_segment_count(61.0), audio_segment_count(60.0), audio_segment_count(2.5)
    (3, 2, 1)
    """
    return max(1, _ceil(exact_decimal(duration_s, "duration_s") / exact_decimal(segment_s, "segment_s")))


def _kept_windows(duration: Fraction, window: Fraction, segments: int, per_segment: int) -> int:
    # windows j >= 0 with j * window < duration, never more than the segments produce
    return min(_ceil(duration / window), segments * per_segment)


def audio_token_count(
    duration_s: float,
    window_s: float = _WINDOW_S,
    queries_per_window: int = _QUERIES,
    segment_s: float = _SEGMENT_S,
) -> int:
    """Audio tokens kept for ``duration_s`` seconds of audio (eq. 2-5 minus the padding).

    ``queries_per_window * ceil(T / window_s)``: every window that starts before ``T`` is
    kept (a partly filled last window counts), windows wholly in the last segment's zero
    padding are dropped.

    >>> audio_token_count(30.0), audio_token_count(61.0), audio_token_count(61.0, 0.5)
    (150, 305, 122)
    >>> audio_token_count(2.5), audio_token_count(2.55), audio_token_count(2.5, 0.2, 2)
    (13, 13, 26)
    """
    duration = exact_decimal(duration_s, "duration_s")
    window = exact_decimal(window_s, "window_s")
    _positive_int(queries_per_window, "queries_per_window")
    per_segment = windows_per_segment(window_s, segment_s)
    segments = audio_segment_count(duration_s, segment_s)
    return queries_per_window * _kept_windows(duration, window, segments, per_segment)


def frame_slot_edges(duration_s: float, num_frames: int) -> list[float]:
    """Edges of the ``num_frames`` equal time slots tiling ``[0, duration_s)`` (len n + 1).

    >>> frame_slot_edges(5.0, 4)
    [0.0, 1.25, 2.5, 3.75, 5.0]
    """
    duration = exact_decimal(duration_s, "duration_s")
    _positive_int(num_frames, "num_frames")
    return [float(duration * i / num_frames) for i in range(num_frames + 1)]


@dataclass(frozen=True)
class InterleavePlan:
    """Where the audio tokens of one clip go (see the module docstring for the time model).

    ``slot_edges_s`` has one slot per frame (or, for audio-only input, per ``audio_slot_s``
    slot); ``audio_tokens_per_frame[i]`` tokens start in slot ``i``. ``audio_tokens_per_group``
    sums the frames of each temporal group (audio-only: equal to the per-slot list).
    """

    duration_s: float
    num_frames: int  #: sampled frames; 0 for audio-only input
    group_size: int
    slot_edges_s: tuple[float, ...]
    audio_tokens_per_frame: tuple[int, ...]
    audio_tokens_per_group: tuple[int, ...]
    audio_tokens_total: int
    audio_segments: int  #: eq. (2) l; 0 when there is no audio

    @property
    def num_groups(self) -> int:
        return len(self.audio_tokens_per_group)

    @property
    def slots_s(self) -> list[tuple[float, float]]:
        return list(zip(self.slot_edges_s[:-1], self.slot_edges_s[1:]))


def interleave_plan(
    duration_s: float,
    num_frames: int,
    *,
    window_s: float = _WINDOW_S,
    queries_per_window: int = _QUERIES,
    group_size: int = DEFAULT_GROUP_SIZE,
    has_audio: bool = True,
    audio_duration_s: float | None = None,
    segment_s: float = _SEGMENT_S,
    audio_slot_s: float = 1.0,
) -> InterleavePlan:
    """Audio tokens after each frame group: eq. (6)-(8), placed by time instead of evenly.

    :param duration_s: length of the visual timeline (the video stream), seconds.
    :param num_frames: frames sampled over it (:func:`vs2_plugin.data.media.sample_frame_times`);
        ``0`` means audio-only input, reported in slots of ``audio_slot_s`` seconds (the last
        one shorter), each its own group.
    :param has_audio: ``False`` (silent video) gives all zeros and ``audio_segments == 0``.
    :param audio_duration_s: real audio length when it differs from the video's (defaults
        to ``duration_s``); tokens are counted from it, windows starting after the last slot
        go to the last group.

    Worked example: a 5 s clip, 4 frames (slots of 1.25 s), 0.5 s windows, groups of 2.
    Windows start at 0, 0.5, ..., 4.5 (10 kept, 1 segment). Starts in [0, 1.25): 0, 0.5, 1.0
    -> 3; [1.25, 2.5): 1.5, 2.0 -> 2; [2.5, 3.75): 2.5, 3.0, 3.5 -> 3; [3.75, 5): 4.0, 4.5 -> 2.

    >>> plan = interleave_plan(5.0, 4, window_s=0.5)
    >>> plan.audio_tokens_per_frame, plan.audio_tokens_per_group, plan.audio_tokens_total
    ((3, 2, 3, 2), (5, 5), 10)
    >>> interleave_plan(5.0, 4, has_audio=False).audio_tokens_per_group
    (0, 0)
    >>> interleave_plan(2.5, 0, window_s=0.5).audio_tokens_per_frame  # audio-only, 1 s slots
    (2, 2, 1)
    """
    duration = exact_decimal(duration_s, "duration_s")
    _positive_int(num_frames, "num_frames", minimum=0)
    _positive_int(group_size, "group_size")
    _positive_int(queries_per_window, "queries_per_window")
    window = exact_decimal(window_s, "window_s")
    per_segment = windows_per_segment(window_s, segment_s)

    if num_frames > 0:
        edges = [duration * i / num_frames for i in range(num_frames + 1)]
        frames_per_group = group_size
    else:
        slot = exact_decimal(audio_slot_s, "audio_slot_s")
        count = _ceil(duration / slot)
        edges = [min(slot * i, duration) for i in range(count + 1)]
        frames_per_group = 1

    if has_audio:
        audio_duration = duration if audio_duration_s is None else exact_decimal(audio_duration_s, "audio_duration_s")
        segments = audio_segment_count(float(audio_duration), segment_s)
        kept = _kept_windows(audio_duration, window, segments, per_segment)
        # first window starting at or after each edge, capped at the kept windows
        first = [min(_ceil(edge / window), kept) for edge in edges[:-1]] + [kept]
        per_frame = [queries_per_window * (b - a) for a, b in pairwise(first)]
        total = queries_per_window * kept
    else:
        segments = 0
        per_frame = [0] * (len(edges) - 1)
        total = 0

    per_group = [sum(per_frame[i : i + frames_per_group]) for i in range(0, len(per_frame), frames_per_group)]
    assert sum(per_group) == total, (per_group, total)  # conservation: nothing lost or duplicated
    return InterleavePlan(
        duration_s=float(duration),
        num_frames=num_frames,
        group_size=frames_per_group,
        slot_edges_s=tuple(float(edge) for edge in edges),
        audio_tokens_per_frame=tuple(per_frame),
        audio_tokens_per_group=tuple(per_group),
        audio_tokens_total=total,
        audio_segments=segments,
    )


def placeholder_layout(
    visual_tokens_per_group: int | Sequence[int],
    audio_tokens_per_group: Sequence[int],
    *,
    merge: bool = True,
) -> list[tuple[str, int]]:
    """Eq. (7)-(8) as placeholder runs: each group's video tokens, then its audio tokens.

    :param visual_tokens_per_group: one count for every group, or one per group.
    :param merge: join neighbouring runs of the same kind (a group with no audio lets two
        video runs touch) and drop empty runs; ``False`` keeps one video and one audio run per
        group, including empty ones, so run ``2*i`` / ``2*i+1`` belong to group ``i``.

    >>> placeholder_layout(4, [2, 0, 1])
    [('video', 4), ('audio', 2), ('video', 8), ('audio', 1)]
    >>> placeholder_layout(0, [3, 2])  # audio-only input
    [('audio', 5)]
    """
    audio = [_positive_int(a, "audio tokens per group", minimum=0) for a in audio_tokens_per_group]
    if isinstance(visual_tokens_per_group, int):
        visual = [visual_tokens_per_group] * len(audio)
    else:
        visual = list(visual_tokens_per_group)
    if len(visual) != len(audio):
        raise ConfigError(f"{len(visual)} visual group counts for {len(audio)} audio group counts")
    visual = [_positive_int(v, "visual tokens per group", minimum=0) for v in visual]

    runs: list[tuple[str, int]] = []
    for v, a in zip(visual, audio):
        for kind, count in (("video", v), ("audio", a)):
            if not merge:
                runs.append((kind, count))
            elif count == 0:
                continue
            elif runs and runs[-1][0] == kind:
                runs[-1] = (kind, runs[-1][1] + count)
            else:
                runs.append((kind, count))
    return runs


def regularized_frame_size(
    width: int, height: int, video_max_pixels: int = LF_VIDEO_MAX_PIXELS, video_min_pixels: int = LF_VIDEO_MIN_PIXELS
) -> tuple[int, int]:
    """Frame size after LLaMA-Factory's frame regularisation (``video_max_pixels`` /
    ``video_min_pixels`` caps with truncation, 28 px minimum side, aspect clamp at 200).

    >>> regularized_frame_size(1280, 720)
    (341, 192)
    """
    if width * height > video_max_pixels:
        factor = math.sqrt(video_max_pixels / (width * height))
        width, height = int(width * factor), int(height * factor)
    if width * height < video_min_pixels:
        factor = math.sqrt(video_min_pixels / (width * height))
        width, height = int(width * factor), int(height * factor)
    if min(width, height) < 28:
        width, height = max(width, 28), max(height, 28)
    if width / height > 200:
        width = height * 180
    if height / width > 200:
        height = width * 180
    return width, height


def visual_group_grid(
    width: int,
    height: int,
    *,
    patch_size: int = QWEN_PATCH_SIZE,
    merge_size: int = QWEN_MERGE_SIZE,
    min_pixels: int = QWEN_MIN_PIXELS,
    max_pixels: int = QWEN_MAX_PIXELS,
    video_max_pixels: int | None = LF_VIDEO_MAX_PIXELS,
    video_min_pixels: int = LF_VIDEO_MIN_PIXELS,
) -> tuple[int, int]:
    """``(grid_h, grid_w)`` in patches of one temporal group of a ``width`` x ``height`` video
    (the last two numbers of Qwen2.5-VL's ``video_grid_thw``).

    The frame is first regularised as LLaMA-Factory does (skipped when ``video_max_pixels``
    is ``None``), then ``smart_resize`` (transformers) snaps it to multiples of
    ``patch_size * merge_size`` within ``[min_pixels, max_pixels]``. Defaults are the Qwen2-VL
    video processor's and LLaMA-Factory's. transformers is imported only when this is called.
    """
    from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize

    if video_max_pixels is not None:
        width, height = regularized_frame_size(width, height, video_max_pixels, video_min_pixels)
    factor = patch_size * merge_size
    resized_h, resized_w = smart_resize(height, width, factor=factor, min_pixels=min_pixels, max_pixels=max_pixels)
    return resized_h // patch_size, resized_w // patch_size


def visual_tokens_per_group(width: int, height: int, *, merge_size: int = 2, **grid_settings) -> int:
    """LLM tokens of one temporal group of a ``width`` x ``height`` video (Qwen2.5-VL):
    ``(grid_h / merge) * (grid_w / merge)`` of :func:`visual_group_grid` (same keywords)."""
    grid_h, grid_w = visual_group_grid(width, height, merge_size=merge_size, **grid_settings)
    return (grid_h // merge_size) * (grid_w // merge_size)
