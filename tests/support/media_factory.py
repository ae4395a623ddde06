"""Make small test clips with ffmpeg (and espeak-ng for speech) at test time.

Every function writes one file and returns its path. Clips are tiny (low resolution, short)
so a test module makes all it needs in a second or two.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

FFMPEG = shutil.which("ffmpeg")
ESPEAK = shutil.which("espeak-ng")

requires_ffmpeg = pytest.mark.skipif(FFMPEG is None, reason="ffmpeg is not installed (apt-get install ffmpeg)")


def _ffmpeg(*args: str) -> None:
    subprocess.run([FFMPEG, "-v", "error", "-y", *args], check=True, capture_output=True)


def _audio_source(kind: str, duration: float, rate: int, channels: int) -> list[str]:
    layout = {1: "mono", 2: "stereo", 6: "5.1"}[channels]
    if kind != "sine":
        raise ValueError(f"unknown audio kind {kind!r}")
    expr = f"sine=frequency=440:sample_rate={rate}:duration={duration}"
    return ["-f", "lavfi", "-i", f"{expr},aformat=channel_layouts={layout}"]


def _beep_source(duration: float, rate: int, channels: int, beep_at: float) -> list[str]:
    layout = {1: "mono", 2: "stereo", 6: "5.1"}[channels]
    expr = f"aevalsrc='if(between(t,{beep_at},{beep_at + 0.2}),0.5*sin(2*PI*1000*t),0)':s={rate}:d={duration}"
    return ["-f", "lavfi", "-i", f"{expr},aformat=channel_layouts={layout}"]


AUDIO_CODEC = {
    ".mp4": "aac",
    ".m4a": "aac",
    ".mkv": "aac",
    ".webm": "libopus",
    ".avi": "mp3",
    ".mp3": "libmp3lame",
    ".wav": "pcm_s16le",
    ".flac": "flac",
    ".ogg": "libvorbis",
}
VIDEO_CODEC = {".mp4": "libx264", ".mkv": "libx264", ".webm": "libvpx", ".avi": "mpeg4"}


def make_video(
    path: Path,
    duration: float = 4.0,
    *,
    size: str = "96x64",
    fps: int = 25,
    audio: str | None = "sine",
    audio_rate: int = 48000,
    channels: int = 2,
    beep_at: float | None = None,
    brightness_ramp: bool = False,
    faststart: bool = False,
    video_args: tuple[str, ...] = (),
) -> Path:
    """A clip in the container (mp4, mkv, webm, avi) named by ``path``'s suffix.

    ``brightness_ramp``: grey frames whose luma is ``20 + 40 * t`` (so a frame's time can be read
    back from its pixels). ``audio``: ``None`` (silent video), ``"sine"``; ``beep_at`` makes the
    audio silent except a 0.2 s burst at that time. ``video_args``: extra encoder options
    (e.g. ``("-g", "10")`` for a keyframe every 10 frames).
    """
    path = Path(path)
    if brightness_ramp:
        video = f"color=c=black:s={size}:r={fps}:d={duration},format=yuv420p,geq=lum='min(250,20+40*T)':cb=128:cr=128"
    else:
        video = f"testsrc2=size={size}:rate={fps}:duration={duration}"
    args = ["-f", "lavfi", "-i", video]
    if audio is not None or beep_at is not None:
        args += (
            _beep_source(duration, audio_rate, channels, beep_at)
            if beep_at is not None
            else _audio_source(audio, duration, audio_rate, channels)
        )
        args += ["-c:a", AUDIO_CODEC[path.suffix]]
        if path.suffix == ".webm":
            args += ["-ar", "48000"]
    args += ["-c:v", VIDEO_CODEC[path.suffix], "-pix_fmt", "yuv420p", *video_args, "-t", str(duration)]
    if path.suffix == ".webm":
        args += ["-b:v", "200k", "-deadline", "realtime"]
    if faststart:
        args += ["-movflags", "+faststart"]
    _ffmpeg(*args, str(path))
    return path


def make_audio(
    path: Path, duration: float = 3.0, *, rate: int = 44100, channels: int = 2, beep_at: float | None = None
) -> Path:
    """An audio-only file in the format named by ``path``'s suffix."""
    path = Path(path)
    source = (
        _beep_source(duration, rate, channels, beep_at)
        if beep_at is not None
        else _audio_source("sine", duration, rate, channels)
    )
    _ffmpeg(*source, "-c:a", AUDIO_CODEC[path.suffix], str(path))
    return path


def make_speech(path: Path, text: str = "Hello, this is a test of the audio track.") -> Path:
    """Speech from espeak-ng as a 16-bit WAV (skips the test when espeak-ng is missing)."""
    if ESPEAK is None:
        pytest.skip("espeak-ng is not installed")
    subprocess.run([ESPEAK, "-w", str(path), text], check=True, capture_output=True)
    return Path(path)


def truncate(source: Path, target: Path, fraction: float) -> Path:
    """The first ``fraction`` of ``source``'s bytes (a download cut short)."""
    data = Path(source).read_bytes()
    Path(target).write_bytes(data[: int(len(data) * fraction)])
    return Path(target)
