"""Audio streams that do not start at 0: decoded on the file's timeline, silence before their start."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest

from tests.support.media_factory import FFMPEG, make_audio, requires_ffmpeg
from vs2_plugin.data.media import AUDIO_SAMPLE_RATE, audio_sample_count, probe, read_media
from vs2_plugin.data.token_report import DEFAULTS, token_report

pytestmark = requires_ffmpeg

SR = AUDIO_SAMPLE_RATE


def _ffmpeg(*args) -> None:
    subprocess.run([FFMPEG, "-v", "error", "-y", *map(str, args)], check=True, capture_output=True)


def _rms(samples: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))


def _tone(path, duration):
    _ffmpeg("-f", "lavfi", "-i", f"sine=frequency=440:duration={duration}", "-c:a", "libmp3lame", path)
    return path


def _video(path, duration):
    _ffmpeg("-f", "lavfi", "-i", f"testsrc=duration={duration}:size=64x64:rate=10", "-pix_fmt", "yuv420p", path)
    return path


@pytest.mark.parametrize(
    "suffix, audio_codec",
    [
        (".mp4", "copy"),  # the mp3 stream muxed as is
        (".mp4", "aac"),
        (".mkv", "aac"),  # no per-stream duration in the header: the track's DURATION tag
    ],
)
def test_audio_starting_late_runs_to_its_end(tmp_path, suffix, audio_codec):
    """5 s of tone starting 3 s into an 8 s video: silence, then the whole tone up to ~8 s."""
    tone, video = _tone(tmp_path / "tone.mp3", 5), _video(tmp_path / "video.mp4", 8)
    path = tmp_path / f"late{suffix}"
    _ffmpeg(
        "-itsoffset",
        3,
        "-i",
        tone,
        "-i",
        video,
        "-map",
        "1:v",
        "-map",
        "0:a",
        "-c:v",
        "copy",
        "-c:a",
        audio_codec,
        path,
    )

    info = probe(path)
    assert info.audio_duration_s == pytest.approx(8.0, abs=0.05)  # start + length, not the length (5 s)
    audio = read_media(path, need_audio=True).audio
    assert len(audio) == audio_sample_count(info.audio_duration_s)
    assert np.abs(audio[: int(2.5 * SR)]).max() < 1e-4
    onset = np.flatnonzero(np.abs(audio) > 0.05)[0] / SR
    assert onset == pytest.approx(3.0, abs=0.05)
    assert _rms(audio[-SR:]) > 0.05  # lavfi's sine has amplitude 1/8: RMS ~0.088
    # the frames of the last seconds are followed by audio tokens too
    assert token_report(path, DEFAULTS)["audio_tokens_per_frame"][-1] > 0


def test_audio_starting_before_the_video_keeps_its_start(tmp_path):
    """A video starting 2 s late beside audio from 0: the audio is the timeline's first 10 s."""
    video = _video(tmp_path / "video.mp4", 8)
    path = tmp_path / "early_audio.mp4"
    _ffmpeg(
        "-itsoffset", 2, "-i", video, "-f", "lavfi", "-i", "sine=frequency=440:duration=10",
        "-map", "0:v", "-map", "1:a", "-c:v", "copy", "-c:a", "aac", path,
    )  # fmt: skip
    info = probe(path)
    assert info.audio_duration_s == pytest.approx(10.0, abs=0.05)
    audio = read_media(path, need_audio=True).audio
    assert len(audio) == audio_sample_count(info.audio_duration_s)
    assert _rms(audio[:SR]) > 0.05 and _rms(audio[-SR:]) > 0.05


def test_audio_only_mp3_lasts_its_stream_length(tmp_path):
    """An mp3's stream and container both start after the encoder delay: nothing is added or lost."""
    import av

    path = make_audio(tmp_path / "tone.mp3", 5.0)
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        assert stream.start_time > 0  # the case that needs the start subtracted exactly
        length = float(stream.duration * stream.time_base)
    info = probe(path)
    assert info.audio_duration_s == info.duration_s == length
    assert len(read_media(path).audio) == audio_sample_count(length)


@pytest.mark.parametrize("suffix, audio_codec", [(".mkv", "aac"), (".webm", "libopus"), (".mp4", "aac")])
def test_audio_shorter_than_its_video_is_no_damage(tmp_path, suffix, audio_codec):
    """8 s of frames, 5 s of sound: a Matroska / WebM track gives no duration in the header, and the
    container's (the video's 8 s) had made the sound read as cut short, by the check and in training."""
    from vs2_plugin.data.media_check import MediaLimits, check_media

    video_codec = "libvpx" if suffix == ".webm" else "libx264"
    path = tmp_path / f"short_audio{suffix}"
    _ffmpeg(
        "-f", "lavfi", "-i", "testsrc=duration=8:size=64x64:rate=10",
        "-f", "lavfi", "-i", "sine=frequency=440:duration=5",
        "-c:v", video_codec, "-c:a", audio_codec, path,
    )  # fmt: skip
    assert check_media(path, "video", MediaLimits(video_audio_tokens=True)) is None
    audio = read_media(path).audio
    assert len(audio) / SR == pytest.approx(5.0, abs=0.1)
    assert _rms(audio[-SR // 2 :]) > 0.05  # the tone to its end
