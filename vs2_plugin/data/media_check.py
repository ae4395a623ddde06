"""The cheap per-file check of :mod:`vs2_plugin.data.validate`: what is wrong with one media file.

Container metadata plus a demux of the file's last seconds (no decoding) finds missing, empty,
unreadable and cut-short files, missing streams and durations out of bounds; ``decode`` also
decodes the file the way training reads it, which finds damage inside it. Results are cached
per file version (path, mtime, size), and :func:`check_many` checks files on a thread pool.
:func:`tokens_problem` says whether the media of one sample fit the run's ``cutoff_len``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from vs2_plugin.data import media, media_info
from vs2_plugin.errors import ConfigError, MediaError

#: How far the packets may end before the header's duration (plus one frame) without the
#: file being called truncated; the same slack :func:`vs2_plugin.data.media.read_media` allows.
TAIL_TOLERANCE_S = media.AUDIO_SHORTFALL_TOLERANCE_S
#: How much of a file's end :func:`check_media` demuxes (from the keyframe before it).
TAIL_WINDOW_S = 2.0
#: Files checked at the same time (threads; the checks wait on the disk or on FFmpeg).
CHECK_WORKERS = min(8, os.cpu_count() or 1)


@dataclass(frozen=True)
class MediaLimits:
    """What media must satisfy (see the module docstring)."""

    min_duration_s: float = media.MIN_DURATION_S
    max_duration_s: float | None = None
    require_video_audio: bool = False
    #: video and audio tokens the media of one sample may need at most (the run's ``cutoff_len``:
    #: LLaMA-Factory cuts a longer sequence, inside the media); None: unchecked (:func:`tokens_problem`)
    max_media_tokens: int | None = None
    #: the ``vs2 tokens`` settings, as (key, value) pairs over :data:`vs2_plugin.data.token_report.DEFAULTS`
    #: (the model's processor and audio windows, the run's frame rate and caps): how media tokens are
    #: counted, and how ``decode`` samples frames (:meth:`sampling`)
    token_settings: tuple[tuple[str, Any], ...] = ()
    #: the audio of a <video> becomes tokens (use_audio_in_video with an audio-capable model)
    video_audio_tokens: bool = False
    #: a <video> with an audio track is bad: the multimodal plugin refuses it, as the model has an
    #: audio branch, use_audio_in_video is false and its VS2_IGNORE_VIDEO_AUDIO opt-out is not set
    refuse_video_audio: bool = False
    #: also decode the file the way training reads it (slower; finds damage inside the file)
    decode: bool = False
    #: the tokens the run's template makes of a sample's text (:class:`vs2_plugin.data.train_check.TemplateTokens`):
    #: with it, the media are checked against ``cutoff_len`` with the text around them (:func:`cutoff_problem`)
    text_tokens: Any = None

    def __post_init__(self) -> None:
        # the token settings check their own values (ConfigError naming the bad one)
        from vs2_plugin.data.token_report import check_settings

        check_settings(self.sampling())
        optional = ("max_duration_s", "max_media_tokens")
        minimums = {"min_duration_s": 0, "max_duration_s": 0, "max_media_tokens": 1}
        for name, minimum in minimums.items():
            value = getattr(self, name)
            if value is None and name in optional:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < minimum:
                raise ConfigError(f"media limits: {name} must be a number >= {minimum}, got {value!r}")

    def sampling(self) -> dict[str, Any]:
        """Every ``vs2 tokens`` setting: :data:`~vs2_plugin.data.token_report.DEFAULTS` with
        ``token_settings`` over them."""
        from vs2_plugin.data.token_report import DEFAULTS

        return {**DEFAULTS, **dict(self.token_settings)}


# ----------------------------------------------------------------------------- media


def _tail_end(path: str, info: media.MediaInfo) -> dict[str, float | None]:
    """Where the packets of each stream really end: demux the last seconds (no decoding).

    On the file's timeline (0 = the container's start), as media_info places each stream: audio
    muxed to start 3 s in ends 3 s later than its own length."""
    import av

    with av.open(path, "r") as container:
        video, audio = media_info._streams(container)
        wanted = [s for s in (video, audio) if s is not None]
        ends = media_info._packet_ends(container, wanted, max(0.0, info.duration_s - TAIL_WINDOW_S))
        return {kind: None if s is None else ends.get(s.index) for kind, s in (("video", video), ("audio", audio))}


@lru_cache(maxsize=65536)
def _probe_and_tail(path: str, mtime_ns: int, size: int) -> tuple[media.MediaInfo, dict[str, float | None]]:
    info = media.probe(path)
    return info, _tail_end(path, info)


def check_media(path: str | os.PathLike, kind: str, limits: MediaLimits | None = None) -> str | None:
    """What is wrong with ``path`` used as a ``kind`` ("video" or "audio") input; None if nothing.

    Reads container metadata and demuxes the last :data:`TAIL_WINDOW_S` seconds of packets;
    decodes nothing. Results are cached per file version.
    """
    limits = limits or MediaLimits()
    p = str(path)
    try:
        st = os.stat(p)
    except OSError:
        st = None
    try:
        if st is None or st.st_size == 0:
            media.probe(p)  # raises the message for a missing / empty / irregular file
        info, tail = _probe_and_tail(p, st.st_mtime_ns, st.st_size)
    except MediaError as exc:
        return exc.problem
    except Exception as exc:  # noqa: BLE001 - any reader failure makes the file unusable
        return f"not a readable media file ({media_info.reader_error(exc)})"
    if kind == "video" and not info.has_video:
        what = "an audio-only file" if info.has_audio else "no video stream"
        return f"no video stream ({what}), but it is given as a <video>; put audio-only files in the audios column"
    if kind == "audio" and not info.has_audio:
        return "no audio stream, but it is given as an <audio>"
    if kind == "video" and limits.require_video_audio and not info.has_audio:
        return "no audio stream, but audio is required (vs2_require_audio: true)"
    if kind == "video" and limits.refuse_video_audio and info.has_audio:
        from vs2_plugin.data.mm_plugin import IGNORE_VIDEO_AUDIO_ENV  # imported already by whoever set the flag

        return (
            "the video has an audio track and the model has an audio branch, but use_audio_in_video is false, "
            f"so the audio would be dropped; set use_audio_in_video: true, or {IGNORE_VIDEO_AUDIO_ENV}=1 to use "
            "the frames only"
        )
    duration = info.duration_s if kind == "video" else float(info.audio_duration_s or info.duration_s)
    if duration < limits.min_duration_s:
        return f"too short: {duration:.2f} s (minimum {limits.min_duration_s:g} s, vs2_min_duration_s)"
    if limits.max_duration_s is not None and duration > limits.max_duration_s:
        return f"too long: {duration:.1f} s (maximum {limits.max_duration_s:g} s, vs2_max_duration_s)"
    for stream, declared in (("video", info.video_duration_s), ("audio", info.audio_duration_s)):
        end = tail.get(stream)
        if declared is None:
            continue
        slack = TAIL_TOLERANCE_S + (1.0 / info.fps if stream == "video" and info.fps else 0.0)
        if end is None or end < declared - slack:
            got = "no packets" if end is None else f"packets end at {end:.2f} s"
            return f"{stream} data ends early ({got}, header says {declared:.2f} s); truncated or corrupt file"
    uses_audio = info.has_audio and (kind == "audio" or limits.video_audio_tokens)
    if limits.decode:
        return _decode_problem(p, kind, uses_audio, limits, st.st_mtime_ns, st.st_size)
    return None


@lru_cache(maxsize=65536)
def _decode_problem(path: str, kind: str, audio: bool, limits: MediaLimits, mtime_ns: int, size: int) -> str | None:
    """Decode ``path`` as training does (:func:`vs2_plugin.data.media.read_media`, with the frame
    rate, caps and group of ``limits.token_settings``); the problem, if any."""
    s = limits.sampling()
    group = int(s["group_size"])
    try:
        media.read_media(
            path,
            float(s["fps"]),
            max(int(s["max_frames"]), group),
            need_video=kind == "video",
            need_audio=audio,
            group_size=group,
            max_pixels=int(s["video_max_pixels"]),
            min_duration_s=0.0,
        )
    except MediaError as exc:
        return exc.problem
    except Exception as exc:  # noqa: BLE001 - any reader failure makes the file unusable
        return f"decoding failed ({media_info.reader_error(exc)})"
    return None


def media_tokens(path: str | os.PathLike, kind: str, limits: MediaLimits) -> tuple[int, int]:
    """(video, audio) tokens a ``kind`` input ``path`` takes in the sequence, as ``vs2 tokens``
    counts them (:func:`vs2_plugin.data.token_report.token_report`, under ``limits.token_settings``);
    audio only where it becomes tokens: an <audio>, or a video's track with ``video_audio_tokens``."""
    p = str(path)
    st = os.stat(p)
    return _media_tokens(p, kind, limits.token_settings, limits.video_audio_tokens, st.st_mtime_ns, st.st_size)


@lru_cache(maxsize=65536)
def _media_tokens(
    path: str, kind: str, settings: tuple, video_audio: bool, mtime_ns: int, size: int
) -> tuple[int, int]:
    from vs2_plugin.data.token_report import DEFAULTS, token_report

    info, _ = _probe_and_tail(path, mtime_ns, size)  # the probe check_media made of this version of the file
    # min_duration_s 0: check_media has judged the length against the run's own minimum
    report = token_report(path, {**DEFAULTS, **dict(settings), "min_duration_s": 0.0}, info=info)
    video = report["visual_tokens_total"] if kind == "video" else 0
    audio = report["audio_tokens_total"] if kind == "audio" or video_audio else 0
    return video, audio


def tokens_problem(items: list[tuple[str, str]], limits: MediaLimits) -> tuple[str | None, str] | None:
    """``(file, reason)`` when the media ``items`` (``(path, kind)``) of one sample need
    ``limits.max_media_tokens`` tokens or more (the file is None for several); None when they fit.
    LLaMA-Factory would cut such a sequence inside the media tokens, which no model step survives."""
    if limits.max_media_tokens is None or not items:
        return None
    counts = [media_tokens(path, kind, limits) for path, kind in items]
    video, audio = sum(c[0] for c in counts), sum(c[1] for c in counts)
    if video + audio < limits.max_media_tokens:
        return None
    parts = " + ".join(f"{n} {what}" for what, n in (("video", video), ("audio", audio)) if n)
    fixes = ["raise cutoff_len"]
    if video:
        fixes.append("lower video_maxlen, video_max_pixels or video_fps")
    if audio:
        fixes.append("leave out long clips with vs2_max_duration_s")
    whose = "its media" if len(items) == 1 else f"its {len(items)} media files"
    return (
        items[0][0] if len(items) == 1 else None,
        f"too long for cutoff_len={limits.max_media_tokens}: {whose} alone need {video + audio} tokens ({parts}), "
        f"so the sequence would be cut inside them ({', or '.join(fixes)})",
    )


#: the markers around each file's tokens (``<|vision_start|>`` ... ``<|vision_end|>``, the audio's alike)
MEDIA_MARKERS = 2


def cutoff_problem(
    dialogue, items: list[tuple[str, str]], placeholders: dict[str, str], limits: MediaLimits
) -> tuple[None, str] | None:
    """``(None, reason)`` when LLaMA-Factory would cut a prompt of the sample that holds media
    (:mod:`vs2_plugin.data.cutoff`): its media ``items`` (``(path, kind)``, in placeholder order per
    kind; ``placeholders`` maps each kind to its placeholder) with the text of ``dialogue`` as the
    run's template encodes it (``limits.text_tokens``) and the replies. None when each such prompt is
    kept whole, or without ``max_media_tokens`` / ``text_tokens``."""
    from vs2_plugin.data.cutoff import Turn, dialogue_turns, pairwise_cut, supervised_cut

    cutoff_len, count = limits.max_media_tokens, limits.text_tokens
    if cutoff_len is None or count is None or not items:
        return None
    files = {
        placeholders[kind]: [sum(media_tokens(path, k, limits)) + MEDIA_MARKERS for path, k in items if k == kind]
        for kind in {k for _, k in items}
    }
    turns, replies = dialogue_turns(dialogue, count, files)
    if replies is None:
        cut = supervised_cut(turns, cutoff_len, count.efficient_eos)
        if cut is None:
            return None
        k, kept = cut
        turn, reply = turns[k], f"its reply {turns[k].reply}"
        where = f"the prompt of turn {k + 1}" if len(turns) > 1 else "the prompt"
    else:
        kept = pairwise_cut(turns, *replies, cutoff_len, count.efficient_eos)
        if kept is None:
            return None
        media = sum(t.media for t in turns)
        turn = Turn(sum(t.prompt + t.reply for t in turns) - media, media, 0)
        reply, where = f"the longer reply {max(replies)}", "the prompt"
    return (
        None,
        f"too long for cutoff_len={cutoff_len} with its text: {where} holds {turn.media} media tokens and "
        f"{turn.text} of text, {reply}, so LLaMA-Factory would keep {kept} of the prompt's {turn.prompt} tokens, "
        "cutting the media or the instruction after them (raise cutoff_len, or lower video_maxlen, "
        "video_max_pixels or video_fps)",
    )


def check_many(items: set[tuple[str, str]], limits: MediaLimits, workers: int | None = None) -> dict:
    """:func:`check_media` of every ``(path, kind)``, ``workers`` files at a time (default
    :data:`CHECK_WORKERS`): the check mostly waits on the disk (or decodes, with ``decode``).
    With ``max_media_tokens`` the tokens of every good file are counted too (cached)."""
    from concurrent.futures import ThreadPoolExecutor

    def check(item: tuple[str, str]) -> str | None:
        problem = check_media(item[0], item[1], limits)
        if problem is None and limits.max_media_tokens is not None:
            media_tokens(item[0], item[1], limits)  # counted here, in parallel; the rows read the cache
        return problem

    items = sorted(items)
    workers = max(1, min(workers or CHECK_WORKERS, len(items)))
    if workers == 1:
        return {item: check(item) for item in items}
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return dict(zip(items, pool.map(check, items)))
