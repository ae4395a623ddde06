"""Data-path benchmark: how fast media reach the model, against LLaMA-Factory 0.9.5's path.

(a) ``reader``: sampled frames + 16 kHz mono audio of one 60 s 1280x720 25 fps clip
    (ffmpeg ``testsrc2`` + a 440 Hz sine, libx264 with ffmpeg's default settings, AAC 48 kHz
    stereo), 30 frames (phi = 1, m = 30), frames capped at 256*256 pixels. Measured again on
    the same clip encoded with a keyframe every 2 s (detail only).

    * ours: :func:`vs2_plugin.data.media.read_media` - one open, one demux pass, frames and audio.
    * LLaMA-Factory: the exact functions its Qwen2-VL plugin runs for a video with an audio
      track, called on the same file: ``Qwen2VLPlugin._regularize_videos`` (PyAV, decodes
      every frame and keeps the sampled ones, then PIL-resizes to ``video_max_pixels``) and
      ``BasePlugin._regularize_audios`` (``torchaudio.load`` through torchcodec, channel mean,
      ``torchaudio.functional.resample``). The plugin instance comes from the public
      ``get_mm_plugin``; the two methods are called directly, as its ``_get_mm_inputs`` does.

    Both sides run alternately, ``--repeats`` times each; the medians are compared.
    ``reader_speedup`` = LLaMA-Factory median / ours median.

(b) ``pipeline``: preprocessing + collation of 64 pairwise (DPO) samples, one 60 s clip each,
    through LLaMA-Factory's ``PairwiseDatasetProcessor`` and ``PairwiseDataCollatorWithPadding``:
    our ``video_salmonn2`` template/plugin against its ``qwen2_omni`` template with
    ``use_audio_in_video`` (tiny offline processors, no weights). Decodes are counted on both
    sides; ``pipeline_speedup`` = LLaMA-Factory seconds per pair / ours (see :func:`pipeline_part`).

Usage::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/data_path.py [--repeats 5] [--parts reader,pipeline]

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
            "ffmpeg",
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            f"testsrc2=size=1280x720:rate=25:duration={seconds}",
            "-f",
            "lavfi",
            "-i",
            f"sine=frequency=440:sample_rate=48000:duration={seconds}",
            "-c:v",
            "libx264",
            "-pix_fmt",
            "yuv420p",
            *([] if gop is None else ["-g", str(gop)]),
            "-c:a",
            "aac",
            "-ac",
            "2",
            "-shortest",
            str(tmp),
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
    from vs2_plugin.data.media import read_media

    decoded = read_media(clip, FPS_PHI, MAX_FRAMES, need_video=True, need_audio=True, max_pixels=VIDEO_MAX_PIXELS)
    return {
        "frames": decoded.num_frames,
        "frame_size": list(decoded.frames.shape[1:3]),
        "audio_samples": len(decoded.audio),
    }


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
    return {
        "frames": len(videos),
        "frame_size": [videos[0].height, videos[0].width],
        "audio_samples": int(audio.shape[-1]),
    }


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


# ---------------------------------------------------------------------------- part (b)

PIPELINE_PAIRS = 64
#: Pairs per collator call (a DPO batch: 2x this many sequences).
PIPELINE_BATCH_PAIRS = 4
#: Pairs LLaMA-Factory's side is timed on (its cost per pair is the same for every pair: it
#: caches nothing); None = all of them.
LLAMAFACTORY_TIMED_PAIRS = 8
#: Long enough for both sides' prompts: ~1,500 Omni audio tokens for 60 s + visual tokens.
PIPELINE_CUTOFF_LEN = 8192
#: Qwen2.5-Omni's special tokens (the ``qwen2_omni`` template's and processor's).
OMNI_TOKENS = {
    "image_token": "<|IMAGE|>",
    "video_token": "<|VIDEO|>",
    "audio_token": "<|AUDIO|>",
    "vision_bos_token": "<|vision_bos|>",
    "vision_eos_token": "<|vision_eos|>",
    "audio_bos_token": "<|audio_bos|>",
    "audio_eos_token": "<|audio_eos|>",
}


def tiny_vs2_dir(root: Path = CACHE) -> Path:
    """``vs2 build-tiny`` output (tokenizer, processor, config; the weights are not used)."""
    from vs2_plugin.modeling.tiny import build_tiny_model

    out = root / "tiny_vs2"
    if not (out / "config.json").exists():
        build_tiny_model(out, seed=0)
    return out


def build_tiny_omni_processor(out_dir: Path, tokenizer_dir: Path) -> Path:
    """A ``Qwen2_5OmniProcessor`` directory, offline: the tiny tokenizer of ``tokenizer_dir``
    plus the Omni special tokens, Qwen2-VL image/video processors with the tiny model's pixel
    limits (so both sides get the same visual token counts), and a WhisperFeatureExtractor
    configured as Qwen2.5-Omni-7B's ``preprocessor_config.json`` (128 mels, ``chunk_length``
    300 s = ``n_samples`` 4,800,000). No weights: preprocessing and collation need none.
    """
    from transformers import (
        AutoTokenizer,
        Qwen2_5OmniProcessor,
        Qwen2VLImageProcessor,
        Qwen2VLVideoProcessor,
        WhisperFeatureExtractor,
    )

    from vs2_plugin.modeling.tiny import TINY_MAX_PIXELS, TINY_MIN_PIXELS

    out = Path(out_dir)
    if (out / "processor_config.json").exists():
        return out
    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir), extra_special_tokens=OMNI_TOKENS)
    processor = Qwen2_5OmniProcessor(
        image_processor=Qwen2VLImageProcessor(min_pixels=TINY_MIN_PIXELS, max_pixels=TINY_MAX_PIXELS),
        video_processor=Qwen2VLVideoProcessor(min_pixels=TINY_MIN_PIXELS, max_pixels=TINY_MAX_PIXELS),
        feature_extractor=WhisperFeatureExtractor(feature_size=128, chunk_length=300, sampling_rate=SAMPLE_RATE),
        tokenizer=tokenizer,
        chat_template=tokenizer.chat_template,
    )
    tmp = out.with_name(out.name + ".part")
    shutil.rmtree(tmp, ignore_errors=True)
    processor.save_pretrained(str(tmp))
    tmp.rename(out)
    return out


def pair_files(clip: Path, n: int, root: Path = CACHE) -> list[Path]:
    """``n`` distinct paths to ``clip`` (hard links, else copies): one video per pair, as in a
    DPO dataset, so no side can reuse a decode across pairs."""
    folder = root / "pairs"
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = folder / f"{clip.stem}_pair{i:03d}{clip.suffix}"
        if path.exists() and path.stat().st_size != clip.stat().st_size:
            path.unlink()
        if not path.exists():
            try:
                os.link(clip, path)
            except OSError:
                shutil.copyfile(clip, path)
        paths.append(path)
    return paths


def _pipeline(side: str, model_dir: Path):
    """LLaMA-Factory's own loading: ``load_tokenizer`` (patches the processor with the video
    settings and ``use_audio_in_video``) and ``get_template_and_fix_tokenizer``."""
    from llamafactory.data import get_template_and_fix_tokenizer
    from llamafactory.hparams import DataArguments, ModelArguments
    from llamafactory.model import load_tokenizer

    model_args = ModelArguments(
        model_name_or_path=str(model_dir),
        video_fps=FPS_PHI,
        video_maxlen=MAX_FRAMES,
        video_max_pixels=VIDEO_MAX_PIXELS,
        video_min_pixels=VIDEO_MIN_PIXELS,
        use_audio_in_video=True,
    )
    data_args = DataArguments(
        template="video_salmonn2" if side == "ours" else "qwen2_omni", cutoff_len=PIPELINE_CUTOFF_LEN
    )
    modules = load_tokenizer(model_args)
    template = get_template_and_fix_tokenizer(modules["tokenizer"], data_args)
    return template, modules["tokenizer"], modules["processor"], data_args


def _examples(side: str, files: list[Path]) -> dict[str, list]:
    """Pairwise samples in LLaMA-Factory's aligned format (what its converter hands the processor).

    Ours: ``<video>`` (the audio track comes with it). Qwen2.5-Omni ``use_audio_in_video``:
    ``<video><audio>`` with the same file in ``videos`` and ``audios``, the layout its plugin requires.
    """
    prompt = "<video>" if side == "ours" else "<video><audio>"
    rows = {k: [] for k in ("_prompt", "_response", "_system", "_tools", "_images", "_videos", "_audios")}
    for i, path in enumerate(files):
        rows["_prompt"].append([{"role": "user", "content": prompt + "Describe the video in detail."}])
        rows["_response"].append(
            [
                {
                    "role": "assistant",
                    "content": f"A test pattern with a moving colour wheel and a steady 440 Hz tone (clip {i}).",
                },
                {"role": "assistant", "content": f"A cat sleeps on a sofa while rain falls (clip {i})."},
            ]
        )
        rows["_system"].append("")
        rows["_tools"].append("")
        rows["_images"].append(None)
        rows["_videos"].append([str(path)])
        rows["_audios"].append([str(path)] if side != "ours" else None)
    return rows


class _MediaOpenCounter:
    """Counts ``av.open`` calls (by calling function) and ``torchaudio.load`` calls while active."""

    def __enter__(self):
        import av
        import torchaudio

        self.av_opens: dict[str, int] = {}
        self.audio_loads = 0
        self._av, self._ta = av, torchaudio
        self._open, self._load = av.open, torchaudio.load

        def open_(*args, **kwargs):
            caller = sys._getframe(1).f_code.co_name
            self.av_opens[caller] = self.av_opens.get(caller, 0) + 1
            return self._open(*args, **kwargs)

        def load(*args, **kwargs):
            self.audio_loads += 1
            return self._load(*args, **kwargs)

        av.open, torchaudio.load = open_, load
        return self

    def __exit__(self, *exc):
        self._av.open, self._ta.load = self._open, self._load
        return False


def _batch_summary(batch: dict) -> dict:
    return {k: list(v.shape) for k, v in batch.items() if hasattr(v, "shape")}


def run_pipeline(side: str, model_dir: Path, files: list[Path], batch_pairs: int) -> dict:
    """Preprocess ``len(files)`` pairs with ``PairwiseDatasetProcessor`` and collate them with
    ``PairwiseDataCollatorWithPadding`` (``batch_pairs`` pairs per call); time and count decodes."""
    from llamafactory.data import PairwiseDataCollatorWithPadding
    from llamafactory.data.processor import PairwiseDatasetProcessor
    from llamafactory.extras.constants import IGNORE_INDEX

    from vs2_plugin.data import media

    template, tokenizer, processor, data_args = _pipeline(side, model_dir)
    dataset_processor = PairwiseDatasetProcessor(
        template=template, tokenizer=tokenizer, processor=processor, data_args=data_args
    )
    collator = PairwiseDataCollatorWithPadding(
        template=template, model=None, tokenizer=tokenizer, processor=processor, label_pad_token_id=IGNORE_INDEX
    )
    examples = _examples(side, files)
    media.reset_decode_counts()
    with _MediaOpenCounter() as counter:
        pre_wall, pre_cpu, rows = _timed(lambda: dataset_processor.preprocess_dataset(examples))
        pre_decodes = media.decode_count() + counter.audio_loads + counter.av_opens.get("_regularize_videos", 0)
        features = [{k: rows[k][i] for k in rows} for i in range(len(files))]
        batches = [features[i : i + batch_pairs] for i in range(0, len(features), batch_pairs)]
        col_wall, col_cpu, outputs = _timed(lambda: [collator(b) for b in batches])
    if len(rows["chosen_input_ids"]) != len(files):
        raise RuntimeError(f"{side}: {len(files)} pairs in, {len(rows['chosen_input_ids'])} out of preprocessing")
    if side == "ours":
        decodes = media.decode_count()
        opens = sum(counter.av_opens.values())
    else:
        # every av.open of Qwen2VLPlugin._regularize_videos decodes the video stream; every
        # torchaudio.load decodes the audio track
        decodes = counter.av_opens.get("_regularize_videos", 0) + counter.audio_loads
        opens = sum(counter.av_opens.values()) + counter.audio_loads
    n = len(files)
    return {
        "pairs": n,
        "batch_pairs": batch_pairs,
        "seconds": round(pre_wall + col_wall, 3),
        "seconds_preprocess": round(pre_wall, 3),
        "seconds_collate": round(col_wall, 3),
        "cpu_seconds": round(pre_cpu + col_cpu, 3),
        "seconds_per_pair": round((pre_wall + col_wall) / n, 4),
        "decodes": decodes,
        "decodes_preprocess": pre_decodes,
        "decodes_per_pair": decodes / n,
        "media_opens": opens,
        "av_open_calls_by_caller": counter.av_opens,
        "torchaudio_load_calls": counter.audio_loads,
        "distinct_files": len({str(f) for f in files}),
        "prompt_tokens_first_pair": len(rows["chosen_input_ids"][0])
        - sum(1 for t in rows["chosen_labels"][0] if t != IGNORE_INDEX),
        "first_batch": _batch_summary(outputs[0]),
    }


def pipeline_part(
    repeats: int,
    pairs: int = PIPELINE_PAIRS,
    llamafactory_pairs: int | None = LLAMAFACTORY_TIMED_PAIRS,
    batch_pairs: int = PIPELINE_BATCH_PAIRS,
    clip: Path | None = None,
    model_dir: Path | None = None,
    work_dir: Path = CACHE,
) -> dict:
    """Part (b): preprocessing + collation of pairwise (DPO) samples, one 60 s clip per pair.

    Both sides run LLaMA-Factory 0.9.5's ``PairwiseDatasetProcessor`` then its
    ``PairwiseDataCollatorWithPadding`` (no model: nothing needs weights), with
    ``video_fps``/``video_maxlen``/``video_max_pixels`` as in part (a) and ``use_audio_in_video``:

    * ours: template ``video_salmonn2`` (vs2_plugin.data.mm_plugin), the ``vs2 build-tiny``
      tokenizer/processor;
    * LLaMA-Factory: template ``qwen2_omni`` (its ``Qwen2OmniPlugin``), a tiny
      ``Qwen2_5OmniProcessor`` built offline (:func:`build_tiny_omni_processor`).

    LLaMA-Factory's side is timed on its first ``llamafactory_pairs`` pairs (its work per pair
    is the same for every pair; whole batches) and compared per pair; ``repeats`` is unused
    (one pass each: the pass itself is long).
    """
    del repeats
    clip = clip or make_clip()
    files = pair_files(clip, pairs, work_dir)
    vs2_dir = Path(model_dir) if model_dir else tiny_vs2_dir(work_dir)
    omni_dir = build_tiny_omni_processor(work_dir / "tiny_qwen2_5_omni_processor", vs2_dir)
    lf_pairs = pairs if not llamafactory_pairs else min(pairs, llamafactory_pairs)
    load = os.getloadavg()[0]
    results = {
        "ours": run_pipeline("ours", vs2_dir, files, batch_pairs),
        "llamafactory": run_pipeline("llamafactory", omni_dir, files[:lf_pairs], batch_pairs),
    }
    ours, lf = results["ours"], results["llamafactory"]
    speedup = lf["seconds_per_pair"] / ours["seconds_per_pair"]
    cpu_speedup = (lf["cpu_seconds"] / lf["pairs"]) / (ours["cpu_seconds"] / ours["pairs"])
    print(
        f"pipeline: ours {ours['seconds']:.1f} s for {ours['pairs']} pairs ({ours['seconds_per_pair']:.2f} s/pair, "
        f"{ours['decodes_per_pair']:g} decodes/pair), LLaMA-Factory Qwen2.5-Omni {lf['seconds']:.1f} s for "
        f"{lf['pairs']} pairs ({lf['seconds_per_pair']:.2f} s/pair, {lf['decodes_per_pair']:g} decodes/pair) -> "
        f"{speedup:.2f}x per pair (CPU time {cpu_speedup:.2f}x), decodes ratio "
        f"{lf['decodes_per_pair'] / max(ours['decodes_per_pair'], 1e-9):.1f}x"
    )
    return {
        "pipeline_speedup": round(speedup, 2),
        "decodes_per_pair_ours": ours["decodes_per_pair"],
        "decodes_per_pair_llamafactory": lf["decodes_per_pair"],
        "pipeline": {
            "what": f"{pairs} pairwise (DPO) samples, one {clip.name} per pair (distinct paths, hard links), "
            "LLaMA-Factory 0.9.5 PairwiseDatasetProcessor + PairwiseDataCollatorWithPadding "
            f"({batch_pairs} pairs per collator call, model=None)",
            "pipeline_speedup_is": "llamafactory.seconds_per_pair / ours.seconds_per_pair (wall clock, preprocessing + collation)",
            "llamafactory_timed_pairs": lf["pairs"],
            "measurement_note": (
                f"LLaMA-Factory's side is timed on the first {lf['pairs']} of the {pairs} pairs (whole collator batches) "
                "and compared per pair: it decodes every video and audio track again in every process_messages and "
                "collator call and caches nothing, so its cost per pair does not depend on how many pairs run"
                if lf["pairs"] < pairs
                else "both sides timed on all pairs"
            ),
            "ours_setup": "template video_salmonn2, vs2 build-tiny tokenizer + Qwen2.5-VL processor, prompt '<video>...', "
            "use_audio_in_video: true (the clip's own AAC track, interleaved)",
            "llamafactory_setup": "template qwen2_omni (Qwen2OmniPlugin), tiny Qwen2_5OmniProcessor (same tokenizer + Omni "
            "special tokens, same Qwen2-VL pixel limits, WhisperFeatureExtractor 128 mels / 300 s as Qwen2.5-Omni-7B), "
            "prompt '<video><audio>...', videos and audios = the same file, use_audio_in_video: true",
            "decodes_counted_as": "ours: vs2_plugin.data.media.decode_count() (read_media calls; probe() opens read metadata "
            "only and are in media_opens); LLaMA-Factory: av.open calls from Qwen2VLPlugin._regularize_videos + "
            "torchaudio.load calls",
            "frames": f"phi={FPS_PHI}, m={MAX_FRAMES}, video_max_pixels={VIDEO_MAX_PIXELS}",
            "cpu_speedup_per_pair": round(cpu_speedup, 2),
            "load_average_1min_before": round(load, 2),
            **results,
        },
    }


PARTS = {"reader": reader_part, "pipeline": pipeline_part}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--parts", default=",".join(PARTS), help="comma-separated: " + ", ".join(PARTS))
    parser.add_argument("--pairs", type=int, default=PIPELINE_PAIRS, help="pipeline: pairwise samples")
    parser.add_argument(
        "--llamafactory-pairs",
        type=int,
        default=LLAMAFACTORY_TIMED_PAIRS,
        help="pipeline: pairs LLaMA-Factory's side is timed on (0 = all)",
    )
    parser.add_argument(
        "--batch-pairs", type=int, default=PIPELINE_BATCH_PAIRS, help="pipeline: pairs per collator call"
    )
    parser.add_argument("--clip", type=Path, help="pipeline: clip to use (default: the 60 s clip of part (a))")
    parser.add_argument(
        "--model-dir", type=Path, help="pipeline: a vs2 build-tiny directory (default: built under the cache)"
    )
    parser.add_argument(
        "--work-dir", type=Path, default=CACHE, help="pipeline: where pair links and tiny processors go"
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help="results JSON (updated in place)")
    args = parser.parse_args(argv)
    out = args.out
    results = json.loads(out.read_text()) if out.exists() else {}
    for name in args.parts.split(","):
        if name == "pipeline":
            results.update(
                pipeline_part(
                    args.repeats,
                    args.pairs,
                    args.llamafactory_pairs,
                    args.batch_pairs,
                    args.clip,
                    args.model_dir,
                    args.work_dir,
                )
            )
        else:
            results.update(PARTS[name](args.repeats))
    results["machine"] = {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
