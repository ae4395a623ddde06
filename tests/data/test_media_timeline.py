"""Frames and audio on one timeline: a video stream starting late, MPEG-TS files (container start 1.4 s)."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest

from tests.support.media_factory import FFMPEG, make_video, requires_ffmpeg
from vs2_plugin.data.media import AUDIO_SAMPLE_RATE, audio_sample_count, probe, read_media
from vs2_plugin.data.media_check import MediaLimits, check_media
from vs2_plugin.data.token_report import DEFAULTS, token_report

pytestmark = requires_ffmpeg

SR = AUDIO_SAMPLE_RATE


def _ffmpeg(*args) -> None:
    subprocess.run([FFMPEG, "-v", "error", "-y", *map(str, args)], check=True, capture_output=True)


def _shown(frame: np.ndarray) -> float:
    """The video's own time a ramp frame shows (luma ``20 + 40 * t``)."""
    return (frame.mean() * 219 / 255 + 16 - 20) / 40


def _rms(samples: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_video_starting_late_is_sampled_on_the_audio_timeline(tmp_path, suffix):
    """4 s of frames starting 2 s into 6 s of audio (a beep at 3.0-3.2 s): the frames are sampled
    over the whole 6 s, each showing what the file shows at its time; before 2 s, the first frame."""
    ramp = make_video(tmp_path / "ramp.mp4", 4.0, fps=10, audio=None, brightness_ramp=True)
    beep = "aevalsrc='if(between(t,3,3.2),0.5*sin(2*PI*1000*t),0)':s=48000:d=6"
    path = tmp_path / f"late_video{suffix}"
    _ffmpeg(
        "-itsoffset", 2, "-i", ramp, "-f", "lavfi", "-i", beep,
        "-map", "0:v", "-map", "1:a", "-c:v", "copy", "-c:a", "aac", path,
    )  # fmt: skip

    info = probe(path)
    assert info.duration_s == pytest.approx(6.0, abs=0.05)  # the video's end on the timeline, not its 4 s
    decoded = read_media(path, fps_phi=2.0, max_frames_m=30)
    assert len(decoded.frame_times_s) == 12
    for target, used, frame in zip(decoded.frame_times_s, decoded.frame_pts_s, decoded.frames):
        if target < 2.0:  # before the video starts: its first frame
            assert used == pytest.approx(2.0, abs=0.03) and _shown(frame) == pytest.approx(0.0, abs=0.06)
        else:
            assert abs(used - target) <= 0.25
            assert _shown(frame) + 2.0 == pytest.approx(used, abs=0.06)
    # the beep lies in the slot of the frame showing the video's second 1.0
    loud = np.flatnonzero(np.abs(decoded.audio) > 0.1) / SR
    assert loud[0] == pytest.approx(3.0, abs=0.05)
    slot = int(loud[0] // (info.duration_s / len(decoded.frame_times_s)))
    assert _shown(decoded.frames[slot]) == pytest.approx(1.0, abs=0.3)
    # every frame has its own audio (none piled up on the last frame)
    per_frame = token_report(path, {**DEFAULTS, "fps": 2.0})["audio_tokens_per_frame"]
    assert len(per_frame) == 12 and max(per_frame) - min(per_frame) <= 1
    assert check_media(path, "video", MediaLimits(video_audio_tokens=True, decode=True)) is None


def _packet_end(path, kind: str) -> float:
    """Where the packets of the ``kind`` stream end, on the container's timeline (a full demux)."""
    import av

    with av.open(str(path)) as container:
        stream = getattr(container.streams, kind)[0]
        end = max(float((p.pts + p.duration) * p.time_base) for p in container.demux(stream) if p.size)
        return end - container.start_time / 1_000_000


@pytest.mark.parametrize("with_video", [True, False])
def test_mpegts_audio_is_read_to_its_end(tmp_path, with_video):
    """FFmpeg packs several AAC frames into one MPEG-TS packet and estimates the track's duration
    from the last one's first frame: ~0.19 s of sound had been cut off the end."""
    path = tmp_path / "clip.ts"
    video = ["-f", "lavfi", "-i", "testsrc=size=64x64:rate=10:duration=5"] if with_video else []
    codecs = ["-c:v", "libx264", "-c:a", "aac"] if with_video else ["-c:a", "aac"]
    _ffmpeg(*video, "-f", "lavfi", "-i", "sine=frequency=440:duration=5", *codecs, "-f", "mpegts", path)

    end = _packet_end(path, "audio")
    assert end == pytest.approx(5.04, abs=0.03)
    info = probe(path)
    assert info.audio_duration_s == pytest.approx(end, abs=1e-3)
    if with_video:
        assert info.video_duration_s == pytest.approx(_packet_end(path, "video"), abs=1e-3)
    audio = read_media(path, need_audio=True).audio
    assert len(audio) == audio_sample_count(info.audio_duration_s)
    # the tone (after the 1024 samples of encoder delay) to its end at ~5.02 s
    last_loud = np.flatnonzero(np.abs(audio) > 0.05)[-1] / SR
    assert last_loud == pytest.approx(5.0 + 1024 / 44100, abs=0.01)
    assert _rms(audio[int(4.9 * SR) : int(5.0 * SR)]) > 0.05
    kind = "video" if with_video else "audio"
    assert check_media(path, kind, MediaLimits(video_audio_tokens=True, decode=True)) is None
