"""Data-path benchmark: how fast media reach the model, against LLaMA-Factory 0.9.5's path.

(a) ``reader``: sampled frames + 16 kHz mono audio of one 60 s 1280x720 25 fps clip
    (ffmpeg ``testsrc2`` + a 440 Hz sine, libx264 with ffmpeg's default settings, AAC 48 kHz
    stereo), 30 frames (phi = 1, m = 30), frames capped at 256*256 pixels. Measured again on
    the same clip encoded with a keyframe every 2 s (detail only).

    * ours: :func:`vs2_plugin.media.read_media` - one open, one demux pass, frames and audio.
    * LLaMA-Factory: the exact functions its Qwen2-VL plugin runs for a video with an audio
      track, called on the same file: ``Qwen2VLPlugin._regularize_videos`` (PyAV, decodes
      every frame and keeps the sampled ones, then PIL-resizes to ``video_max_pixels``) and
      ``BasePlugin._regularize_audios`` (``torchaudio.load`` through torchcodec, channel mean,
      ``torchaudio.functional.resample``). The plugin instance comes from the public
      ``get_mm_plugin``; the two methods are called directly, as its ``_get_mm_inputs`` does.

    Both sides run alternately, ``--repeats`` times each; the medians are compared.
    ``reader_speedup`` = LLaMA-Factory median / ours median.

(b) ``pipeline``: preprocessing + collation of pairwise (DPO) samples through the
    multimodal plugin; not written yet, see :func:`pipeline_part`.

Usage::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/data_path.py [--repeats 5] [--parts reader]

Writes ``benchmarks/results/data_path.json`` (keys of parts not run are kept from the last
run). The clip is cached under ``outputs/bench_media/``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "data_path.json"
CACHE = REPO / "outputs" / "bench_media"

CLIP_SECONDS = 60
FPS_PHI = 1.0
MAX_FRAMES = 30
VIDEO_MAX_PIXELS = 256 * 256
VIDEO_MIN_PIXELS = 16 * 16
SAMPLE_RATE = 16000


def make_clip(seconds: int = CLIP_SECONDS, gop: int | None = None) -> Path:
    """The 60 s 720p clip with an AAC track (made once, then reused).

    ``gop=None`` keeps libx264's defaults (a keyframe every 250 frames = 10 s, B-frames);
    ``gop=50`` puts one every 2 s, as streaming encoders usually do.
    """
    suffix = "" if gop is None else f"_gop{gop}"
    path = CACHE / f"testsrc2_{seconds}s_1280x720_25fps_aac{suffix}.mp4"
    if path.exists():
        return path
    if shutil.which("ffmpeg") is None:
        sys.exit("ffmpeg is required to make the benchmark clip (apt-get install ffmpeg)")
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".part.mp4")
    subprocess.run(
        [
            "ffmpeg", "-v", "error", "-y",
            "-f", "lavfi", "-i", f"testsrc2=size=1280x720:rate=25:duration={seconds}",
            "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}",
            "-c:v", "libx264", "-pix_fmt", "yuv420p", *([] if gop is None else ["-g", str(gop)]),
            "-c:a", "aac", "-ac", "2", "-shortest", str(tmp),
        ],
        check=True,
    )
    tmp.rename(path)
    return path


def _timed(fn):
    """(wall seconds, CPU seconds of this process incl. decoder threads, result)."""
    cpu_start, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    out = fn()
    wall, cpu_end = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF)
    cpu = (cpu_end.ru_utime - cpu_start.ru_utime) + (cpu_end.ru_stime - cpu_start.ru_stime)
    return wall, cpu, out


def ours(clip: Path) -> dict:
    from vs2_plugin.media import read_media

    decoded = read_media(clip, FPS_PHI, MAX_FRAMES, need_video=True, need_audio=True, max_pixels=VIDEO_MAX_PIXELS)
    return {"frames": decoded.num_frames, "frame_size": list(decoded.frames.shape[1:3]), "audio_samples": len(decoded.audio)}


def llamafactory(clip: Path) -> dict:
    from llamafactory.data.mm_plugin import get_mm_plugin

    plugin = get_mm_plugin("qwen2_vl", image_token="<|image_pad|>", video_token="<|video_pad|>")
    videos = plugin._regularize_videos(
        [str(clip)],
        image_max_pixels=VIDEO_MAX_PIXELS,
        image_min_pixels=VIDEO_MIN_PIXELS,
        video_fps=FPS_PHI,
        video_maxlen=MAX_FRAMES,
    )["videos"][0]
    audio = plugin._regularize_audios([str(clip)], sampling_rate=SAMPLE_RATE)["audios"][0]
    return {"frames": len(videos), "frame_size": [videos[0].height, videos[0].width], "audio_samples": int(audio.shape[-1])}


def compare_readers(clip: Path, repeats: int) -> dict:
    """Alternate LLaMA-Factory's readers and ours on ``clip``; medians, best runs, CPU time."""
    ours(clip), llamafactory(clip)  # warm-up: imports, file cache
    times = {"ours": [], "llamafactory": []}
    cpu = {"ours": [], "llamafactory": []}
    outputs = {}
    for _ in range(repeats):
        for name, fn in (("llamafactory", llamafactory), ("ours", ours)):
            seconds, cpu_seconds, outputs[name] = _timed(lambda fn=fn: fn(clip))
            times[name].append(round(seconds, 3))
            cpu[name].append(round(cpu_seconds, 3))
    median = {name: statistics.median(values) for name, values in times.items()}
    best = {name: min(values) for name, values in times.items()}
    cpu_median = {name: statistics.median(values) for name, values in cpu.items()}
    return {
        "speedup_of_medians": round(median["llamafactory"] / median["ours"], 2),
        "speedup_of_best": round(best["llamafactory"] / best["ours"], 2),
        # CPU time is less sensitive to other load; ours decodes with 2 threads (frame threading)
        "cpu_speedup_of_medians": round(cpu_median["llamafactory"] / cpu_median["ours"], 2),
        "seconds_median": median,
        "seconds_best": best,
        "seconds_all": times,
        "cpu_seconds_median": cpu_median,
        "outputs": outputs,
    }


def reader_part(repeats: int) -> dict:
    """Part (a): frames + audio of one clip, ours vs LLaMA-Factory's readers.

    The headline uses the clip with libx264's default keyframe interval (10 s), where every
    GOP holds sampled frames; the 2 s-GOP clip shows the gain from skipping whole GOPs.
    """
    load = os.getloadavg()[0]
    detail = {}
    for label, gop in (("default_gop", None), ("gop_2s", 50)):
        clip = make_clip(gop=gop)
        detail[label] = {"clip": clip.name, **compare_readers(clip, repeats)}
        result = detail[label]
        print(
            f"reader [{label}]: ours {result['seconds_median']['ours']:.2f} s, LLaMA-Factory "
            f"{result['seconds_median']['llamafactory']:.2f} s (medians of {repeats}) -> "
            f"{result['speedup_of_medians']:.2f}x (best-of-{repeats} {result['speedup_of_best']:.2f}x, "
            f"CPU time {result['cpu_speedup_of_medians']:.2f}x)"
        )
    return {
        "reader_speedup": detail["default_gop"]["speedup_of_medians"],
        "reader": {
            "clip": f"{CLIP_SECONDS} s 1280x720 25 fps testsrc2 (libx264) + AAC 48 kHz stereo",
            "frames_requested": f"phi={FPS_PHI}, m={MAX_FRAMES}, video_max_pixels={VIDEO_MAX_PIXELS}",
            "reader_speedup_is": "default_gop.speedup_of_medians (wall clock)",
            "baseline": "llamafactory.data.mm_plugin Qwen2VLPlugin._regularize_videos + _regularize_audios "
            "(LLaMA-Factory 0.9.5), called on the same file",
            "load_average_1min_before": round(load, 2),
            **detail,
        },
    }


def pipeline_part(repeats: int) -> dict:
    """Part (b), TODO: once the multimodal plugin exists, time preprocessing + collation of
    pairwise samples of the same clip through it and through LLaMA-Factory's
    ``Qwen2OmniPlugin`` path, counting decodes per pair with
    :func:`vs2_plugin.media.decode_count` (ours) and by wrapping the PyAV / torchaudio loads
    (LLaMA-Factory). Return ``pipeline_speedup``, ``decodes_per_pair_ours`` and
    ``decodes_per_pair_llamafactory`` (plus detail); an empty dict means "not measured".
    """
    return {}


PARTS = {"reader": reader_part, "pipeline": pipeline_part}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--parts", default=",".join(PARTS), help="comma-separated: " + ", ".join(PARTS))
    args = parser.parse_args(argv)
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    for name in args.parts.split(","):
        results.update(PARTS[name](args.repeats))
    results["machine"] = {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {RESULTS.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
