"""What a media file holds, read from its container without decoding anything: its video and
audio streams and where each starts and ends on the file's timeline (:func:`probe` ->
:class:`MediaInfo`). :mod:`vs2_plugin.data.media` decodes what this describes.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from vs2_plugin.errors import MediaError

#: Demuxers (MPEG-PS, MPEG-TS) whose stream durations FFmpeg estimates from the timestamps of the
#: file's last PES packets, counting one frame per packet; an audio PES packet holds several
#: frames (~0.19 s of AAC as FFmpeg muxes MPEG-TS), so :func:`probe` demuxes the audio's end.
PTS_ESTIMATED_FORMATS = frozenset({"mpeg", "mpegts"})
#: How far before the estimated end :func:`probe` demuxes such a file.
PTS_TAIL_S = 2.0


@dataclass(frozen=True)
class MediaInfo:
    """Container metadata of one file (from :func:`probe`; nothing decoded)."""

    path: str
    container: str  #: FFmpeg demuxer name, e.g. ``"mov,mp4,m4a,3gp,3g2,mj2"``
    duration_s: float  #: the timeline frames are sampled over, from 0: to the video's end, else the audio's
    has_video: bool
    has_audio: bool
    fps: float | None = None
    num_frames: int | None = None  #: header count; ``round(length * fps)`` when absent (mkv/webm)
    width: int | None = None
    height: int | None = None
    video_duration_s: float | None = None  #: where the video ends on the timeline (its start + its length)
    audio_duration_s: float | None = None  #: where the audio ends on the timeline (its start + its length)
    audio_sample_rate: int | None = None  #: native rate of the audio stream
    audio_channels: int | None = None


def _check_file(path: str | os.PathLike) -> Path:
    p = Path(path)
    if not p.exists():
        raise MediaError(p, "file not found")
    if not p.is_file():
        raise MediaError(p, "a folder, not a media file" if p.is_dir() else "not a regular file")
    if p.stat().st_size == 0:
        raise MediaError(p, "file is empty (0 bytes)")
    return p


def _open(p: Path):
    import av

    try:
        return av.open(str(p), "r")
    except (av.FFmpegError, OSError, ValueError, UnicodeDecodeError) as exc:
        raise MediaError(p, f"not a readable media file ({reader_error(exc)})") from None


def reader_error(exc: BaseException) -> str:
    """What a reader's exception says, as one line for a message that names the file already:
    FFmpeg's errno and the file name it appends dropped (a spooled upload's would be a temporary
    path), "[Errno 1094995529] Invalid data found when processing input: 'x.mp4'" ->
    "Invalid data found when processing input"."""
    text = (str(exc).strip() or type(exc).__name__).splitlines()[0]
    text = re.sub(r"\[Errno -?\d+\] ", "", text)
    for name in (getattr(exc, "filename", None), getattr(exc, "filename2", None)):
        if name:
            text = text.replace(f": {str(name)!r}", "").replace(f" {str(name)!r}", "")
    return text[:200]


def _streams(container):
    import av

    video = next(
        (
            s
            for s in container.streams.video
            # cover art in mp3/m4a files is a one-picture "video" stream
            if not (s.disposition & av.stream.Disposition.attached_pic)
        ),
        None,
    )
    audio = next(iter(container.streams.audio), None)
    return video, audio


def _tagged_duration(stream) -> float | None:
    """The ``DURATION`` tag Matroska / WebM muxers (FFmpeg, mkvmerge) write per track, in seconds:
    those containers give a stream no duration of its own, and the container's is the longest
    stream's, so a track shorter than the video would read as cut short."""
    tag = next((v for k, v in stream.metadata.items() if k.upper() == "DURATION"), None)
    match = re.fullmatch(r"(\d+):(\d{2}):(\d{2}(?:\.\d+)?)", str(tag or "").strip())
    if not match:
        return None
    hours, minutes, seconds = match.groups()
    value = int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    return value if value > 0 else None


def _stream_duration(stream, container) -> float | None:
    if stream.duration is not None and stream.time_base is not None and stream.duration > 0:
        return float(stream.duration * stream.time_base)
    if (tagged := _tagged_duration(stream)) is not None:
        return tagged
    if container.duration is not None and container.duration > 0:
        return container.duration / 1_000_000  # AV_TIME_BASE
    return None


def _stream_start(stream, container) -> float:
    """Where ``stream`` starts on the file's timeline (0 = the container's start time)."""
    if stream.start_time is None or stream.time_base is None or container.start_time is None:
        return 0.0
    # to whole microseconds, the container's precision: an mp3 starting at 1105/44100 s
    # would otherwise end 0.3 us short of its 5.0 s
    return round(float(stream.start_time * stream.time_base) - container.start_time / 1_000_000, 6)


def _stream_end(stream, container) -> float | None:
    """Where ``stream`` ends on the file's timeline (0 = the container's start time).

    A stream's own duration is its length, not its end: audio muxed to start 3 s into an
    8 s video lasts 5 s but ends at 8 s. The container's duration (and Matroska's
    ``DURATION`` tag, the track's last timestamp) is already an end.
    """
    if stream.duration is not None and stream.time_base is not None and stream.duration > 0:
        return _stream_start(stream, container) + float(stream.duration * stream.time_base)
    return _stream_duration(stream, container)


def _packet_ends(container, streams: list, from_s: float) -> dict[int, float]:
    """Where the packets of ``streams`` end on the file's timeline (0 = the container's start),
    by stream index: demuxed (nothing decoded) from the keyframe of ``streams[0]`` before
    ``from_s`` to the end of the file (from its start where it cannot seek). A stream without
    packets there is missing; data cut inside a packet ends the reading."""
    import av

    origin = (container.start_time or 0) / 1_000_000
    main = streams[0]
    if from_s > 0 and main.time_base is not None:
        try:
            container.seek(int((from_s + origin) / main.time_base), stream=main, backward=True)
        except av.FFmpegError:
            pass  # not seekable: read from the start (still no decoding)
    ends: dict[int, float] = {}
    try:
        for packet in container.demux(streams):
            if packet.pts is None or packet.time_base is None or not packet.size:
                continue
            end = float((packet.pts + (packet.duration or 0)) * packet.time_base) - origin
            ends[packet.stream.index] = max(ends.get(packet.stream.index, end), end)
    except av.FFmpegError:
        pass  # data cut inside a packet: what was read so far is where it ends
    return ends


def _demuxed_end(p: Path, estimate_s: float) -> float | None:
    """Where the audio packets of a :data:`PTS_ESTIMATED_FORMATS` file end, demuxed from
    :data:`PTS_TAIL_S` before FFmpeg's estimate ``estimate_s``. A second open: the caller's
    container is demuxed from its start next (:func:`read_media`)."""
    with _open(p) as container:
        audio = _streams(container)[1]
        ends = _packet_ends(container, [audio], max(0.0, estimate_s - PTS_TAIL_S))
        end = ends.get(audio.index)  # (a stream is read while its file is open)
    return None if end is None else round(end, 6)


def _info_from_container(p: Path, container) -> MediaInfo:
    video, audio = _streams(container)
    if video is None and audio is None:
        raise MediaError(p, "no video or audio stream")
    fields: dict = {}
    if video is not None:
        rate = video.average_rate or video.guessed_rate or video.base_rate
        fps = float(rate) if rate else None
        # the end, not the length: frames are sampled on the timeline the audio is placed on, so a
        # video starting 2 s in is sampled over [0, its end) (the first frame stands before its start)
        video_start = _stream_start(video, container)
        video_duration = _stream_end(video, container)
        if video_duration is None and video.frames and fps:
            video_duration = video_start + video.frames / fps
        if video_duration is None:
            raise MediaError(p, "video duration unknown (no duration in the container header)")
        num_frames = video.frames or (round((video_duration - video_start) * fps) if fps else None)
        fields.update(
            fps=fps,
            num_frames=num_frames,
            width=video.codec_context.width or None,
            height=video.codec_context.height or None,
            video_duration_s=video_duration,
        )
    if audio is not None:
        # the end, not the length: decoded audio is silence up to the stream's start, then the stream
        audio_duration = _stream_end(audio, container)
        if audio_duration is None:
            raise MediaError(p, "audio duration unknown (no duration in the container header)")
        if container.format.name in PTS_ESTIMATED_FORMATS:
            audio_duration = max(audio_duration, _demuxed_end(p, audio_duration) or 0.0)
        fields.update(
            audio_duration_s=audio_duration,
            audio_sample_rate=audio.codec_context.sample_rate or None,
            audio_channels=audio.codec_context.channels or None,
        )
    duration = fields["video_duration_s"] if video is not None else fields["audio_duration_s"]
    return MediaInfo(
        path=str(p),
        container=container.format.name,
        duration_s=duration,
        has_video=video is not None,
        has_audio=audio is not None,
        **fields,
    )


def probe(path: str | os.PathLike) -> MediaInfo:
    """Container metadata of ``path`` without decoding anything.

    Works for video (mp4, avi, mkv, webm, ...) with or without audio and for audio-only files
    (wav, mp3, flac, m4a, ogg, ...). Cover-art pictures do not count as video. MPEG-PS / TS
    files have no durations in a header: there the audio's last packets are demuxed
    (:data:`PTS_ESTIMATED_FORMATS`).

    :raises MediaError: missing, empty or unreadable file; no stream; unknown duration.
    """
    p = _check_file(path)
    with _open(p) as container:
        return _info_from_container(p, container)


# ---------------------------------------------------------------------------- decoding
