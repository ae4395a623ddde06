"""Real bad (and awkward but good) media for the reliability tests, made with ffmpeg and Python."""

from __future__ import annotations

import random
import subprocess
from pathlib import Path

from tests.support.media_factory import FFMPEG, make_audio, make_video, truncate


def make_vfr_video(path: Path, duration: float = 6.0) -> Path:
    """A variable-frame-rate clip: 25 fps for the first 2 s, then every third frame (8.33 fps).

    Frames are grey with luma ``20 + 40 * t`` (``t`` its own time), so a frame's time can be
    read back from its pixels.
    """
    source = f"color=c=black:s=96x64:r=25:d={duration},format=yuv420p,geq=lum='min(250,20+40*T)':cb=128:cr=128"
    subprocess.run(
        [
            FFMPEG,
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            source,
            "-vf",
            "select='lt(t,2)+not(mod(n,3))'",
            "-fps_mode",
            "vfr",
            "-c:v",
            "libx264",
            "-pix_fmt",
            "yuv420p",
            "-g",
            "12",
            str(path),
        ],
        check=True,
        capture_output=True,
    )
    return Path(path)


def damage(source: Path, target: Path, at: float = 0.5, length: int = 3000, seed: int = 0) -> Path:
    """``source`` with ``length`` bytes at ``at`` of the file overwritten by noise (header intact)."""
    data = bytearray(Path(source).read_bytes())
    start = int(len(data) * at)
    data[start : start + length] = random.Random(seed).randbytes(length)
    Path(target).write_bytes(bytes(data))
    return Path(target)


def build(folder: Path) -> dict[str, Path]:
    """Every file the tests use, by name. ``missing`` is a path that does not exist."""
    folder.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}
    files["good"] = make_video(folder / "good.mp4", 3.0)
    files["good2"] = make_video(folder / "good2.mp4", 2.5, size="64x48")
    files["missing"] = folder / "missing.mp4"
    files["empty"] = folder / "empty.mp4"
    files["empty"].write_bytes(b"")
    files["text"] = folder / "notes.mp4"
    files["text"].write_text("this is a text file, not a video\n" * 20)
    # a download cut short: the index (moov, at the front) is complete, the data is not
    whole = make_video(folder / "whole_faststart.mp4", 6.0, faststart=True)
    files["truncated"] = truncate(whole, folder / "truncated.mp4", 0.6)
    # damaged in the middle: metadata and the last packets are fine, decoding is not
    files["damaged"] = damage(whole, folder / "damaged.mp4")
    # cut short with the index at the end: the container cannot be opened at all
    files["truncated_noindex"] = truncate(make_video(folder / "whole.mp4", 4.0), folder / "truncated_noindex.mp4", 0.7)
    files["audio_only"] = make_audio(folder / "audio_only.m4a", 3.0)
    files["silent"] = make_video(folder / "silent.mp4", 3.0, audio=None)
    files["short"] = make_video(folder / "short.mp4", 0.5)
    files["long"] = make_video(folder / "long.mp4", 100.0, size="32x32", fps=2, audio_rate=16000, channels=1)
    files["vfr"] = make_vfr_video(folder / "vfr.mp4")
    files["six_channel"] = make_video(folder / "six_channel.mp4", 3.0, audio_rate=48000, channels=6)
    return files
