"""vs2_plugin.data.media: probing, the sec. 3.1 sampling rule, one-pass decoding, clear errors."""

from __future__ import annotations

import doctest
import subprocess

import numpy as np
import pytest

from tests.support.media_factory import FFMPEG, make_audio, make_speech, make_video, requires_ffmpeg, truncate
from vs2_plugin.data import media
from vs2_plugin.data.media import (
    audio_sample_count,
    decode_count,
    frame_count,
    probe,
    read_media,
    reset_decode_counts,
    sample_frame_times,
    scaled_size,
)
from vs2_plugin.errors import ConfigError, MediaError
from vs2_plugin.modeling.interleave import audio_segment_count

# name -> (has_video, has_audio, fps, width, height, duration_s, audio rate, audio channels)
SHARED_FILES = {
    "1.mp4": (True, False, 25.0, 640, 360, 9.72, None, None),
    "3.mp4": (True, False, 24000 / 1001, 640, 360, 6.088333, None, None),
    "4.mp4": (True, False, 30.0, 224, 224, 5.0, None, None),
    "2.avi": (True, False, 359 / 12, 320, 240, 9.02507, None, None),
    "4_av.mp4": (True, True, 30.0, 224, 224, 5.0, 44100, 2),
    "bigbuckbunny.mp4": (True, True, 25.0, 1280, 720, 5.28, 48000, 6),
    "1.mp3": (False, True, None, None, None, 4.032, 48000, 2),
    "4.mp3": (False, True, None, None, None, 5.0, 44100, 2),
    "2.wav": (False, True, None, None, None, 2.901313, 16000, 1),
    "3.flac": (False, True, None, None, None, 5.855, 16000, 1),
}


def test_doctests():
    assert doctest.testmod(media).failed == 0


# ------------------------------------------------------------------ sampling rule (pure)


def test_61s_clip_gives_30_uniform_frames_at_slot_centres():
    times = sample_frame_times(61.0, fps_phi=1.0, max_frames_m=30)
    assert len(times) == 30
    slot = 61.0 / 30  # phi * T = 61 > m: m frames spread over the whole clip
    assert times == pytest.approx([(i + 0.5) * slot for i in range(30)])
    assert times[0] == pytest.approx(1.016667, abs=1e-6) and times[-1] == pytest.approx(59.983333, abs=1e-6)


def test_short_clips_round_down_to_whole_groups():
    assert sample_frame_times(2.5) == pytest.approx([0.625, 1.875])  # phi*T = 2.5 -> 2 frames
    assert sample_frame_times(2.5, group_size=1) == pytest.approx([0.625, 1.875])
    assert sample_frame_times(3.0, group_size=1) == pytest.approx([0.5, 1.5, 2.5])
    assert frame_count(3.0) == 2  # odd count -> down to a whole temporal group
    assert frame_count(0.4) == 2  # always at least one group
    assert frame_count(0.4, group_size=1) == 1
    assert frame_count(10.0, fps_phi=2.0) == 20
    assert frame_count(61.0, max_frames_m=31) == 30  # m itself rounded down to whole groups
    assert frame_count(3.0, fps_phi=1 / 3, group_size=1) == 1  # 3 * (1/3) is one frame, not 0.999


@pytest.mark.parametrize(
    "kwargs, bad",
    [
        ({"duration_s": 0.0}, "duration_s"),
        ({"duration_s": 5.0, "fps_phi": 0}, "fps_phi"),
        ({"duration_s": 5.0, "max_frames_m": 1}, "max_frames_m"),
        ({"duration_s": 5.0, "group_size": 0}, "group_size"),
        ({"duration_s": float("nan")}, "duration_s"),
    ],
)
def test_sampling_rule_rejects_bad_values_by_name(kwargs, bad):
    with pytest.raises(ConfigError, match=bad):
        frame_count(**kwargs)


@pytest.mark.parametrize("duration", [0.3, 5.312, 29.99999, 30.0, 30.00001, 30.0000001, 59.99, 60.0, 60.00007, 61.0])
def test_audio_samples_slice_into_the_counted_segments(duration):
    samples = audio_sample_count(duration)
    assert samples / 16000 >= duration - 1e-9 and samples / 16000 < duration + 1 / 16000
    assert -(-samples // 480000) == audio_segment_count(duration)


def test_scaled_size_matches_llamafactory_cap():
    assert scaled_size(1280, 720, 256 * 256) == (341, 192)
    assert scaled_size(1280, 720, None) == (1280, 720)
    assert scaled_size(224, 224, 256 * 256) == (224, 224)


# ------------------------------------------------------------------ real media


@pytest.mark.parametrize("name", sorted(SHARED_FILES))
def test_probe_reads_metadata_of_every_shared_file(shared_media, name):
    has_video, has_audio, fps, width, height, duration, rate, channels = SHARED_FILES[name]
    info = probe(shared_media / name)
    assert (info.has_video, info.has_audio) == (has_video, has_audio)
    assert info.duration_s == pytest.approx(duration, abs=1e-3)
    assert (info.width, info.height) == (width, height)
    assert (info.audio_sample_rate, info.audio_channels) == (rate, channels)
    if fps is None:
        assert info.fps is None and info.num_frames is None
    else:
        assert info.fps == pytest.approx(fps, rel=1e-6)
        assert info.num_frames == pytest.approx(duration * fps, abs=1.5)


@pytest.mark.parametrize("name", sorted(SHARED_FILES))
def test_read_media_decodes_every_shared_file(shared_media, name):
    has_video, has_audio, *_ = SHARED_FILES[name]
    path = shared_media / name
    decoded = read_media(path, need_video=has_video, need_audio=has_audio, max_pixels=256 * 256)
    info = decoded.info
    if has_video:
        expected = sample_frame_times(info.duration_s)
        assert decoded.frame_times_s == pytest.approx(expected)
        assert decoded.frames.dtype == np.uint8 and decoded.frames.shape[0] == len(expected)
        assert decoded.frames.shape[1:] == (*scaled_size(info.width, info.height, 256 * 256)[::-1], 3)
        slot = info.duration_s / len(expected)
        for target, used in zip(decoded.frame_times_s, decoded.frame_pts_s):
            assert abs(used - target) <= slot / 2  # the frame used lies in its own slot
        assert decoded.frames.std() > 1  # real pictures, not blank buffers
    else:
        assert decoded.frames is None and decoded.frame_times_s == []
    if has_audio:
        assert decoded.audio.dtype == np.float32 and decoded.audio.ndim == 1
        assert len(decoded.audio) == audio_sample_count(info.audio_duration_s)
        assert np.abs(decoded.audio).max() > 0.01
    else:
        assert decoded.audio is None


def _ffmpeg_channel_average(path, channels: int) -> np.ndarray:
    raw = subprocess.run(
        [FFMPEG, "-v", "error", "-i", str(path), "-f", "f32le", "-ar", "16000", "-"],
        check=True,
        capture_output=True,
    ).stdout
    return np.frombuffer(raw, dtype=np.float32).reshape(-1, channels).mean(axis=1)


@requires_ffmpeg
@pytest.mark.parametrize("name, channels", [("bigbuckbunny.mp4", 6), ("4_av.mp4", 2), ("1.mp3", 2)])
def test_multichannel_audio_becomes_the_channel_average_at_16k(shared_media, name, channels):
    """bigbuckbunny: 6-channel 48 kHz AAC -> mono 16 kHz, 5.312 s, same signal as FFmpeg's."""
    path = shared_media / name
    audio = read_media(path, need_video=False, need_audio=True).audio
    reference = _ffmpeg_channel_average(path, channels)
    assert 0 <= len(audio) - len(reference) <= 1  # ours rounds the duration up to whole samples
    if name == "bigbuckbunny.mp4":
        assert len(audio) == 84992  # 5.312 s * 16 kHz
    audio = audio[: len(reference)]
    assert np.corrcoef(audio, reference)[0, 1] > 0.999
    assert np.sqrt(np.mean(audio**2)) == pytest.approx(np.sqrt(np.mean(reference**2)), rel=0.02)


@requires_ffmpeg
@pytest.mark.parametrize("name, channels", [("bigbuckbunny.mp4", 6), ("4_av.mp4", 2), ("1.mp3", 2)])
def test_decord_audio_reader_is_why_audio_is_read_with_pyav(shared_media, name, channels):
    """The reason ``media`` does not use decord (0.6.0) for audio: where it resamples or mixes
    channels its ``AudioReader`` returns a signal unrelated to FFmpeg's, while ours matches."""
    decord = pytest.importorskip("decord")
    path = shared_media / name
    reference = _ffmpeg_channel_average(path, channels)
    theirs = decord.AudioReader(str(path), sample_rate=16000, mono=True)[:].asnumpy().reshape(-1)
    ours = read_media(path, need_video=False, need_audio=True).audio
    n = min(len(reference), len(theirs), len(ours))
    assert np.corrcoef(ours[:n], reference[:n])[0, 1] > 0.999
    assert abs(np.corrcoef(theirs[:n], reference[:n])[0, 1]) < 0.5


def test_decode_counter_counts_read_media_not_probe(shared_media):
    reset_decode_counts()
    seen = []
    remove = media.add_decode_listener(seen.append)
    try:
        probe(shared_media / "4_av.mp4")
        assert decode_count() == 0
        read_media(shared_media / "4_av.mp4")
        read_media(shared_media / "4_av.mp4", need_video=False)
        read_media(shared_media / "2.wav")
    finally:
        remove()
    assert decode_count(shared_media / "4_av.mp4") == 2
    assert decode_count(shared_media / "2.wav") == 1
    assert decode_count() == 3 and len(seen) == 3
    reset_decode_counts()
    assert decode_count() == 0


def test_need_flags_skip_or_require_streams(shared_media):
    audio_only = read_media(shared_media / "4_av.mp4", need_video=False)
    assert audio_only.frames is None and audio_only.audio is not None
    frames_only = read_media(shared_media / "4_av.mp4", need_audio=False)
    assert frames_only.audio is None and frames_only.num_frames == 4
    with pytest.raises(MediaError, match=r"1\.mp4: no audio stream, but audio is required"):
        read_media(shared_media / "1.mp4", need_audio=True)
    with pytest.raises(MediaError, match=r"2\.wav: no video stream, but video is required"):
        read_media(shared_media / "2.wav", need_video=True)


# ------------------------------------------------------------------ generated media


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    if FFMPEG is None:
        pytest.skip("ffmpeg is not installed")
    d = tmp_path_factory.mktemp("clips")
    made = {}
    for ext in (".mp4", ".mkv", ".webm", ".avi"):
        made[f"av{ext}"] = make_video(d / f"av{ext}", 3.0)
        made[f"silent{ext}"] = make_video(d / f"silent{ext}", 3.0, audio=None)
    for ext in (".wav", ".mp3", ".flac", ".m4a", ".ogg"):
        made[f"audio{ext}"] = make_audio(d / f"audio{ext}", 3.0)
    made["ramp"] = make_video(d / "ramp.mp4", 5.0, brightness_ramp=True, beep_at=2.0)
    made["short"] = make_video(d / "short.mp4", 0.6)
    made["hd"] = make_video(d / "hd.mp4", 2.0, size="1280x720", audio=None)
    made["faststart"] = make_video(d / "faststart.mp4", 4.0, faststart=True)
    made["corrupt"] = d / "corrupt.mp4"
    made["corrupt"].write_bytes(np.random.default_rng(0).integers(0, 256, 20000, dtype=np.uint8).tobytes())
    made["empty"] = d / "empty.mp4"
    made["empty"].write_bytes(b"")
    made["cut_header"] = truncate(made["av.mp4"], d / "cut_header.mp4", 0.5)  # moov atom at the end: gone
    made["cut_data"] = truncate(made["faststart"], d / "cut_data.mp4", 0.4)  # header intact, data cut
    return made


@pytest.mark.parametrize("ext", [".mp4", ".mkv", ".webm", ".avi"])
def test_video_containers_with_and_without_audio(clips, ext):
    with_audio = read_media(clips[f"av{ext}"], need_video=True, need_audio=True)
    assert with_audio.num_frames == 2 and with_audio.frames.shape[1:] == (64, 96, 3)
    assert len(with_audio.audio) == audio_sample_count(with_audio.info.audio_duration_s)
    assert with_audio.info.audio_duration_s == pytest.approx(3.0, abs=0.05)
    silent = read_media(clips[f"silent{ext}"])
    assert silent.info.has_audio is False and silent.audio is None and silent.num_frames == 2


@pytest.mark.parametrize("ext", [".wav", ".mp3", ".flac", ".m4a", ".ogg"])
def test_audio_only_formats(clips, ext):
    info = probe(clips[f"audio{ext}"])
    assert (info.has_video, info.has_audio) == (False, True)
    assert info.duration_s == pytest.approx(3.0, abs=0.06)
    decoded = read_media(clips[f"audio{ext}"], need_audio=True)
    assert decoded.frames is None
    assert len(decoded.audio) == audio_sample_count(info.audio_duration_s)
    # a 440 Hz sine: the spectrum peak survives decoding and resampling
    spectrum = np.abs(np.fft.rfft(decoded.audio[:16000]))
    assert np.argmax(spectrum) == pytest.approx(440, abs=2)


def test_cover_art_is_not_video(tmp_path):
    if FFMPEG is None:
        pytest.skip("ffmpeg is not installed")
    song = make_audio(tmp_path / "song.mp3", 2.0)
    with_cover = tmp_path / "cover.mp3"
    subprocess.run(
        [
            FFMPEG,
            "-v",
            "error",
            "-i",
            str(song),
            "-f",
            "lavfi",
            "-i",
            "color=red:size=32x32:duration=1",
            "-frames:v",
            "1",
            "-map",
            "0",
            "-map",
            "1",
            "-c:a",
            "copy",
            "-c:v",
            "mjpeg",
            "-disposition:v",
            "attached_pic",
            str(with_cover),
        ],
        check=True,
    )
    info = probe(with_cover)
    assert (info.has_video, info.has_audio) == (False, True)
    assert read_media(with_cover).frames is None


def test_frames_come_from_their_times_and_audio_is_aligned(clips):
    """Frame luma encodes its time (20 + 40 * t); the audio burst sits at 2.0-2.2 s."""
    decoded = read_media(clips["ramp"], fps_phi=2.0, max_frames_m=30)
    assert decoded.frame_times_s == pytest.approx([0.25 + 0.5 * i for i in range(10)])
    for target, used, frame in zip(decoded.frame_times_s, decoded.frame_pts_s, decoded.frames):
        luma = frame.mean() * 219 / 255 + 16  # RGB back to limited-range luma
        assert (luma - 20) / 40 == pytest.approx(used, abs=0.06)
        assert abs(used - target) <= 0.25
    loud = np.flatnonzero(np.abs(decoded.audio) > 0.1) / 16000
    assert loud[0] == pytest.approx(2.0, abs=0.01) and loud[-1] == pytest.approx(2.2, abs=0.01)


def _reference_frames(path, times):
    """Every frame decoded the plain way (PyAV, no skipping), kept at the given timestamps."""
    import av

    wanted = {round(t, 4) for t in times}
    found = {}
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        origin = (container.start_time or 0) / 1_000_000
        for frame in container.decode(stream):
            stamp = round(float(frame.pts * stream.time_base) - origin, 4)
            if stamp in wanted:
                found[stamp] = frame.to_ndarray(format="rgb24")
    return [found[round(t, 4)] for t in times]


@pytest.mark.parametrize(
    "name, video_args",
    [
        ("short_gops.mp4", ("-g", "12", "-bf", "3")),  # most GOPs hold no sampled frame
        ("open_gops.mp4", ("-x264-params", "open-gop=1:keyint=30")),  # B-frames across GOP edges
        ("long_gop.mp4", ()),  # one GOP: only non-reference frames and the tail are skipped
        ("mpeg4.avi", ("-g", "15", "-bf", "2")),
    ],
)
def test_skipping_decode_work_returns_exact_frames(tmp_path, name, video_args):
    """Frames taken while skipping GOPs and non-reference frames equal a full decode's."""
    if FFMPEG is None:
        pytest.skip("ffmpeg is not installed")
    path = make_video(tmp_path / name, 12.0, audio=None, video_args=video_args)
    decoded = read_media(path, fps_phi=0.5, max_frames_m=30)  # 6 frames, one every 2 s
    assert len(decoded.frame_pts_s) == 6
    for ours, reference in zip(decoded.frames, _reference_frames(path, decoded.frame_pts_s)):
        np.testing.assert_array_equal(ours, reference)
    for target, used in zip(decoded.frame_times_s, decoded.frame_pts_s):
        assert abs(used - target) <= 0.25  # a few frame intervals at most


def test_held_packet_cap_keeps_frames_exact(tmp_path, monkeypatch):
    """With almost no packets held back, GOPs are decoded eagerly; frames are unchanged."""
    if FFMPEG is None:
        pytest.skip("ffmpeg is not installed")
    path = make_video(tmp_path / "gops.mp4", 12.0, audio=None, video_args=("-g", "12", "-bf", "3"))
    lazy = read_media(path, fps_phi=0.5)
    monkeypatch.setattr(media, "MAX_HELD_BYTES", 1)
    eager = read_media(path, fps_phi=0.5)
    assert eager.frame_pts_s == lazy.frame_pts_s
    np.testing.assert_array_equal(eager.frames, lazy.frames)


def test_speech_wav_is_read(tmp_path):
    path = make_speech(tmp_path / "speech.wav")
    decoded = read_media(path, need_audio=True)
    assert decoded.info.audio_sample_rate == 22050
    assert len(decoded.audio) == audio_sample_count(decoded.info.audio_duration_s)
    assert np.abs(decoded.audio).max() > 0.05


def test_max_pixels_downscales_while_decoding(clips):
    full = read_media(clips["hd"])
    small = read_media(clips["hd"], max_pixels=256 * 256)
    assert full.frames.shape[1:] == (720, 1280, 3)
    assert small.frames.shape[1:] == (192, 341, 3)


@pytest.mark.parametrize(
    "key, problem",
    [
        ("corrupt", "not a readable media file"),
        ("empty", r"file is empty \(0 bytes\)"),
        ("cut_header", "not a readable media file"),
        ("cut_data", "ends early|decoding failed"),
        ("short", r"too short: 0\.60 s \(minimum 1 s\)"),
    ],
)
def test_bad_media_errors_name_the_file(clips, key, problem):
    path = clips[key]
    with pytest.raises(MediaError, match=problem) as caught:
        read_media(path)
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)


def test_missing_file_and_configurable_minimum(clips, tmp_path):
    with pytest.raises(MediaError, match="file not found") as caught:
        probe(tmp_path / "nope.mp4")
    assert "nope.mp4" in str(caught.value)
    with pytest.raises(MediaError, match="a folder, not a media file"):
        probe(tmp_path)
    assert read_media(clips["short"], min_duration_s=0.5).num_frames == 2
    assert probe(clips["short"]).duration_s == pytest.approx(0.6, abs=0.05)  # probe never rejects length


def test_read_media_rejects_bad_sampling_values(clips):
    with pytest.raises(ConfigError, match="fps_phi"):
        read_media(clips["av.mp4"], fps_phi=-1)
