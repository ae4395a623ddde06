"""Read a media file once: the sampled frames and the 16 kHz mono audio track (paper sec. 3.1).

* :func:`probe` reads container metadata only (no decoding) -> :class:`MediaInfo`
  (:mod:`vs2_plugin.data.media_info`, where each stream starts and ends on the file's timeline).
* :func:`sample_frame_times` is the sec. 3.1 sampling rule as a pure function.
* :func:`read_media` opens the file once and, in a single demux pass, decodes the chosen
  frames and the audio track -> :class:`DecodedMedia`.

Decoding uses PyAV (FFmpeg; a LLaMA-Factory dependency). decord was measured and rejected
for this job: its ``AudioReader`` returns wrong samples whenever it resamples or keeps more
than one channel (correlation ~0 with FFmpeg's output on the bundled mp3/AAC files), and
it needs two opens (``AVReader`` is a ``VideoReader`` plus an ``AudioReader``).

Frames are taken with as little decoding as gives the exact pictures: a group of pictures
(GOP, keyframe to keyframe) without a sampled time is never decoded; inside a needed GOP
decoding stops after its last sampled frame (see ``_VideoTaker``); the decoder skips
frames no other frame references (``skip_frame=NONREF``) and runs frame-threaded. Only the
sampled frames are converted to RGB (and scaled, see ``max_pixels``). Every frame returned
is bit-identical to the same frame from a plain full decode.

Because non-reference frames are skipped, a sampled frame is the *decoded* frame nearest
to its target time (at most a few frame intervals away, inside the frame's own time slot);
:attr:`DecodedMedia.frame_pts_s` records the timestamps actually used.

Every :func:`read_media` call that starts decoding counts as one decode of that file
(:func:`decode_count`, :func:`reset_decode_counts`, :func:`add_decode_listener`); counters
are per process (DataLoader workers each keep their own).
"""

from __future__ import annotations

import math
import os
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vs2_plugin.data.media_info import (
    MediaInfo,
    _check_file,
    _info_from_container,
    _open,
    _streams,
    probe,  # noqa: F401 (media.probe: read by the data check, token counts and tests)
    reader_error,
)
from vs2_plugin.errors import ConfigError, MediaError
from vs2_plugin.modeling.geometry import VIDEO_DEFAULTS
from vs2_plugin.modeling.interleave import DEFAULT_GROUP_SIZE

#: Whisper's input rate.
AUDIO_SAMPLE_RATE = 16000
#: Clips shorter than this are rejected by default (configurable per call).
MIN_DURATION_S = 1.0
#: Decoded audio may fall short of the header's duration by this much before the file is
#: called truncated (encoder delay and padding make small differences normal).
AUDIO_SHORTFALL_TOLERANCE_S = 0.5
#: Undecoded video packets held back while it is unknown whether their GOP is needed.
MAX_HELD_BYTES = 64 * 2**20


@dataclass
class DecodedMedia:
    """Frames and audio of one file, decoded in one pass by :func:`read_media`."""

    info: MediaInfo
    frame_times_s: list[float] = field(default_factory=list)  #: target times (slot centres)
    frame_pts_s: list[float] = field(default_factory=list)  #: timestamps of the frames returned
    frames: np.ndarray | None = None  #: uint8, (N, H, W, 3) RGB; ``None`` when no video decoded
    audio: np.ndarray | None = None  #: float32 mono at ``sample_rate``; ``None`` when no audio
    sample_rate: int = AUDIO_SAMPLE_RATE
    group_size: int = DEFAULT_GROUP_SIZE

    @property
    def num_frames(self) -> int:
        return 0 if self.frames is None else int(self.frames.shape[0])

    @property
    def audio_duration_s(self) -> float | None:
        """``info.audio_duration_s`` up to one sample: the audio is cut or padded to
        :func:`audio_sample_count` samples of it."""
        return None if self.audio is None else len(self.audio) / self.sample_rate


def audio_sample_count(duration_s: float, sample_rate: int = AUDIO_SAMPLE_RATE) -> int:
    """Samples :func:`read_media` returns for ``duration_s`` of audio: ``ceil(T * rate)``
    (1e-6 sample of float slack), so the samples reach ``T`` and slicing them into 30 s
    segments gives exactly :func:`vs2_plugin.modeling.interleave.audio_segment_count` segments.

    >>> audio_sample_count(5.312), audio_sample_count(30.0), audio_sample_count(30.00001)
    (84992, 480000, 480001)
    """
    return max(1, math.ceil(float(duration_s) * sample_rate - 1e-6))


# ---------------------------------------------------------------------------- decode counter

_decode_lock = threading.Lock()
_decode_counts: Counter[str] = Counter()
_decode_listeners: list[Callable[[str], None]] = []


def _key(path: str | os.PathLike) -> str:
    return str(Path(path).resolve())


def decode_count(path: str | os.PathLike | None = None) -> int:
    """How many times :func:`read_media` decoded ``path`` (all files when ``None``) in this process."""
    with _decode_lock:
        return sum(_decode_counts.values()) if path is None else _decode_counts[_key(path)]


def reset_decode_counts() -> None:
    with _decode_lock:
        _decode_counts.clear()


def add_decode_listener(callback: Callable[[str], None]) -> Callable[[], None]:
    """Call ``callback(resolved_path)`` after every decode; returns a function that removes it."""
    with _decode_lock:
        _decode_listeners.append(callback)

    def remove() -> None:
        with _decode_lock:
            if callback in _decode_listeners:
                _decode_listeners.remove(callback)

    return remove


def _note_decode(path: str | os.PathLike) -> None:
    key = _key(path)
    with _decode_lock:
        _decode_counts[key] += 1
        listeners = list(_decode_listeners)
    for callback in listeners:
        callback(key)


# ---------------------------------------------------------------------------- sampling rule


def frame_count(
    duration_s: float,
    fps_phi: float = VIDEO_DEFAULTS.fps,
    max_frames_m: int = VIDEO_DEFAULTS.max_frames,
    group_size: int = DEFAULT_GROUP_SIZE,
) -> int:
    """Number of frames sec. 3.1 samples: ``n = phi * T``, at most ``m``.

    Rounding: ``floor(min(phi * T, m) / group_size) * group_size``, at least ``group_size``
    (one temporal group), so every group holds ``group_size`` real frames; this is how
    transformers' Qwen2-VL video processor rounds when it samples by fps. ``m`` itself is
    rounded down to a multiple of ``group_size`` and must hold at least one group.

    >>> frame_count(61.0), frame_count(2.5), frame_count(2.5, group_size=1), frame_count(0.4)
    (30, 2, 2, 2)
    """
    duration = _positive_float(duration_s, "duration_s")
    phi = _positive_float(fps_phi, "fps_phi")
    if isinstance(group_size, bool) or not isinstance(group_size, int) or group_size < 1:
        raise ConfigError(f"group_size must be an integer >= 1, got {group_size!r}")
    if isinstance(max_frames_m, bool) or not isinstance(max_frames_m, int) or max_frames_m < group_size:
        raise ConfigError(f"max_frames_m must be an integer >= group_size ({group_size}), got {max_frames_m!r}")
    wanted = min(phi * duration + 1e-9, float(max_frames_m))  # 1e-9: 3 * (1/3) counts as 1
    return max(group_size, math.floor(wanted / group_size) * group_size)


def sample_frame_times(
    duration_s: float,
    fps_phi: float = VIDEO_DEFAULTS.fps,
    max_frames_m: int = VIDEO_DEFAULTS.max_frames,
    group_size: int = DEFAULT_GROUP_SIZE,
) -> list[float]:
    """Times (s) of the frames sec. 3.1 samples from a ``duration_s`` clip.

    ``n = frame_count(...)`` frames own ``n`` equal slots ``[i*T/n, (i+1)*T/n)`` that tile the
    clip; frame ``i`` is taken at its slot centre ``(i + 0.5) * T / n``. Below the cap this is
    about ``phi`` frames per second; above it (``phi * T > m``) the ``m`` frames are uniformly
    spaced over the whole clip: phi' = m / T, sec. 4.1's "30 frames are uniformly sampled" (sec.
    3.1 writes phi' = floor(m / T), which is 0 frames/s once T > m). The same slots decide which audio
    tokens follow which frame (:func:`vs2_plugin.modeling.interleave.interleave_plan`).

    >>> sample_frame_times(4.0)
    [0.5, 1.5, 2.5, 3.5]
    >>> sample_frame_times(61.0)[:2], len(sample_frame_times(61.0))
    ([1.0166666666666666, 3.05], 30)
    """
    n = frame_count(duration_s, fps_phi, max_frames_m, group_size)
    return [(i + 0.5) * float(duration_s) / n for i in range(n)]


def _positive_float(value: float, name: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(number) or number <= 0:
        raise ConfigError(f"{name} must be a positive finite number, got {value!r}")
    return number


# ---------------------------------------------------------------------------- probing


def scaled_size(width: int, height: int, max_pixels: int | None) -> tuple[int, int]:
    """``(width, height)`` shrunk (aspect kept, truncated) to at most ``max_pixels`` pixels;
    the same rule as LLaMA-Factory's ``video_max_pixels`` so its own resize is then a no-op.

    >>> scaled_size(1280, 720, 256 * 256), scaled_size(320, 240, 256 * 256), scaled_size(224, 224, 256 * 256)
    ((341, 192), (295, 221), (224, 224))
    """
    if max_pixels is None or width * height <= max_pixels:
        return width, height
    factor = math.sqrt(max_pixels / (width * height))
    return max(1, int(width * factor)), max(1, int(height * factor))


def _want(flag: bool | None, present: bool, p: Path, what: str) -> bool:
    if flag and not present:
        raise MediaError(p, f"no {what} stream, but {what} is required")
    return present if flag is None else bool(flag)


def read_media(
    path: str | os.PathLike,
    fps_phi: float = VIDEO_DEFAULTS.fps,
    max_frames_m: int = VIDEO_DEFAULTS.max_frames,
    *,
    need_video: bool | None = None,
    need_audio: bool | None = None,
    group_size: int = DEFAULT_GROUP_SIZE,
    max_pixels: int | None = None,
    min_duration_s: float = MIN_DURATION_S,
    sample_rate: int = AUDIO_SAMPLE_RATE,
) -> DecodedMedia:
    """Decode the sec. 3.1 frames and the audio track of ``path`` in one open and one pass.

    :param fps_phi, max_frames_m, group_size: the sampling rule (:func:`sample_frame_times`).
    :param need_video: ``True`` requires a video stream (MediaError if absent), ``False``
        skips frames, ``None`` decodes frames when there is video.
    :param need_audio: the same for the audio track.
    :param max_pixels: shrink frames to at most this many pixels while converting them
        (:func:`scaled_size`), keeping memory low for HD input.
    :param min_duration_s: shorter clips raise MediaError.
    :returns: frames ``uint8 (N, H, W, 3)`` at ``sample_frame_times`` (nearest decoded frame;
        times are on the file's timeline, as the audio's, so a time before a late-starting video's
        first frame takes that first frame: the picture the clip opens with, keeping one real
        frame per slot) and audio ``float32`` mono at ``sample_rate`` Hz, channels averaged,
        resampled with FFmpeg, aligned so sample 0 is time 0 and cut or zero-padded to
        :func:`audio_sample_count` ``(info.audio_duration_s)`` samples (so token and segment
        counts from :func:`probe` and from the decoded audio agree).
    :raises MediaError: see :func:`probe`; missing required stream; too short; corrupt or
        truncated data.
    """
    import av

    p = _check_file(path)
    with _open(p) as container:
        info = _info_from_container(p, container)
        want_video = _want(need_video, info.has_video, p, "video")
        want_audio = _want(need_audio, info.has_audio, p, "audio")
        if info.duration_s < min_duration_s:
            raise MediaError(p, f"too short: {info.duration_s:.2f} s (minimum {min_duration_s:g} s)")
        if not (want_video or want_audio):
            raise MediaError(p, "nothing to decode (video and audio both skipped)")
        frame_times = sample_frame_times(info.duration_s, fps_phi, max_frames_m, group_size) if want_video else []
        _note_decode(p)  # counted when decoding starts, so failed attempts count too
        try:
            frames, pts, audio = _decode_pass(
                p, container, info, frame_times, want_video, want_audio, max_pixels, sample_rate
            )
        except av.FFmpegError as exc:
            raise MediaError(p, f"decoding failed ({reader_error(exc)})") from None
    return DecodedMedia(
        info=info,
        frame_times_s=frame_times,
        frame_pts_s=pts,
        frames=frames,
        audio=audio,
        sample_rate=sample_rate,
        group_size=group_size,
    )


class _FramePicker:
    """Keeps, for each target time, the decoded frame nearest to it; frames arrive in time order.

    Targets before the first frame (a video stream starting after the container's start) take
    the first frame."""

    def __init__(self, targets: list[float], size: tuple[int, int]):
        self.targets = targets
        self.width, self.height = size
        self.chosen: list[np.ndarray] = []
        self.chosen_pts: list[float] = []
        self.previous = None  # (time, frame) of the last frame offered

    @property
    def done(self) -> bool:
        return len(self.chosen) == len(self.targets)

    def pending_before(self, end: float) -> bool:
        """Is some target earlier than ``end`` still without a frame?"""
        return not self.done and self.targets[len(self.chosen)] < end

    def _take(self, time: float, frame) -> None:
        self.chosen.append(frame.to_ndarray(format="rgb24", width=self.width, height=self.height))
        self.chosen_pts.append(time)

    def offer(self, time: float, frame) -> None:
        while not self.done and time >= self.targets[len(self.chosen)]:
            target = self.targets[len(self.chosen)]
            if self.previous is not None and target - self.previous[0] < time - target:
                self._take(*self.previous)
            else:
                self._take(time, frame)
        self.previous = (time, frame)

    def settle_before(self, end: float) -> None:
        """Targets before ``end`` that no later frame will reach take the last decoded frame."""
        while self.previous is not None and self.pending_before(end):
            self._take(*self.previous)

    def finish(self, p: Path, info: MediaInfo) -> None:
        """Targets past the last decoded frame take it if it lies in their slot; else truncated."""
        slot = info.duration_s / max(1, len(self.targets))
        while not self.done:
            target = self.targets[len(self.chosen)]
            if self.previous is None or target - self.previous[0] > slot / 2:
                last = "no frame" if self.previous is None else f"last frame at {self.previous[0]:.2f} s"
                raise MediaError(
                    p, f"video data ends early ({last}, header says {info.duration_s:.2f} s); truncated or corrupt file"
                )
            self._take(*self.previous)


class _VideoTaker:
    """Decodes only what the sampled frames need.

    Video packets are held back (undecoded) until one of them passes the next target time,
    which proves the current group of pictures (GOP, keyframe to keyframe) holds a sampled
    frame; then the held packets go to the decoder in order. When the next keyframe arrives
    the rest of the GOP is dropped unless a target still lies in it, the decoder is drained
    and reset. So GOPs without a target are never decoded and a GOP is decoded only up to
    its last sampled frame; only a suffix of a GOP is ever skipped, so every decoded frame
    has all its references. Frames nothing references are skipped by the decoder itself
    (``NONREF``). Held packets are capped at :data:`MAX_HELD_BYTES` (then decoded anyway).
    """

    def __init__(self, stream, picker: _FramePicker, origin: float):
        stream.thread_type = "AUTO"
        stream.codec_context.skip_frame = "NONREF"
        self.codec = stream.codec_context
        self.time_base = stream.time_base
        self.picker = picker
        self.origin = origin
        self.held: list = []  # packets of the current GOP not yet sent to the decoder
        self.held_bytes = 0
        self.fed = False  # has the decoder seen packets of the current GOP?

    def _time(self, item) -> float | None:
        stamp = item.pts if item.pts is not None else getattr(item, "dts", None)
        return None if stamp is None else float(stamp * self.time_base) - self.origin

    def _feed_held(self) -> None:
        for packet in self.held:
            for frame in self.codec.decode(packet):
                time = self._time(frame)
                if time is not None:
                    self.picker.offer(time, frame)
        self.held, self.held_bytes, self.fed = [], 0, True

    def _end_gop(self, end: float) -> None:
        if self.picker.pending_before(end):
            self._feed_held()  # a target lies in the part not yet decoded
        if self.fed:
            for frame in self.codec.decode(None):  # drain frames held back for reordering
                time = self._time(frame)
                if time is not None:
                    self.picker.offer(time, frame)
            self.codec.flush_buffers()  # a clean decoder for the next GOP (starts with a keyframe)
        self.held, self.held_bytes, self.fed = [], 0, False
        if end != math.inf:
            self.picker.settle_before(end)

    def add(self, packet) -> None:
        time = self._time(packet)
        if packet.is_keyframe and (self.held or self.fed) and time is not None:
            self._end_gop(end=time)
        self.held.append(packet)
        self.held_bytes += packet.size
        passed_target = time is not None and self.picker.pending_before(time)
        if passed_target or self.held_bytes > MAX_HELD_BYTES:
            self._feed_held()

    def close(self) -> None:
        self._end_gop(end=math.inf)


def _decode_pass(p, container, info, frame_times, want_video, want_audio, max_pixels, sample_rate):
    import av

    video, audio = _streams(container)
    streams = []
    origin = container.start_time / 1_000_000 if container.start_time is not None else 0.0
    picker = taker = None
    if want_video:
        picker = _FramePicker(frame_times, scaled_size(info.width, info.height, max_pixels))
        taker = _VideoTaker(video, picker, origin)
        streams.append(video)
    chunks: list[np.ndarray] = []
    audio_start = None
    resampler = None
    if want_audio:
        resampler = av.AudioResampler(format="fltp", rate=sample_rate)  # keep channels, average below
        streams.append(audio)

    def take_audio(frames) -> None:
        chunks.extend(out.to_ndarray() for out in frames if out.samples)  # (channels, samples)

    for packet in container.demux(*streams):
        if packet.stream is video:
            if picker.done:
                if not want_audio:
                    break
                continue  # every frame needed is in hand: demux on for the audio only
            if packet.size:  # (the last packet of a stream is an empty end marker)
                taker.add(packet)
        else:
            # the empty end marker flushes the audio decoder
            for frame in packet.decode():
                if audio_start is None and frame.pts is not None:
                    audio_start = float(frame.pts * audio.time_base) - origin
                take_audio(resampler.resample(frame))
    if picker is not None:
        taker.close()
        picker.finish(p, info)
    frames = np.stack(picker.chosen) if picker is not None else None
    pts = picker.chosen_pts if picker is not None else []

    samples = None
    if want_audio:
        take_audio(resampler.resample(None))
        # channels averaged once at the end (cheaper than per frame)
        samples = np.concatenate(chunks, axis=1).mean(axis=0, dtype=np.float32) if chunks else np.zeros(0, np.float32)
        samples = _align_audio(p, samples, audio_start or 0.0, info.audio_duration_s, sample_rate)
    return frames, pts, samples


def _align_audio(p: Path, samples: np.ndarray, start_s: float, duration_s: float, rate: int) -> np.ndarray:
    """Place decoded samples on the time axis (sample 0 = time 0) and fit them to the header length."""
    offset = round(start_s * rate)
    if offset > 0:
        samples = np.concatenate([np.zeros(offset, np.float32), samples])
    elif offset < 0:
        samples = samples[-offset:]
    wanted = audio_sample_count(duration_s, rate)
    if len(samples) < wanted - AUDIO_SHORTFALL_TOLERANCE_S * rate:
        raise MediaError(
            p,
            f"audio data ends early ({len(samples) / rate:.2f} s, header says {duration_s:.2f} s); truncated or corrupt file",
        )
    if len(samples) < wanted:
        samples = np.concatenate([samples, np.zeros(wanted - len(samples), np.float32)])
    return np.ascontiguousarray(samples[:wanted], dtype=np.float32)
