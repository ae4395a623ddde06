"""Synthetic audio-visual clips with exactly known events, and their LLaMA-Factory datasets.

Each clip (``D`` seconds, an even whole number drawn in ``[min_seconds, max_seconds]``) is planned on a grid
of one-second slots ``t = 1 .. D-1``: a slot holds at most one visual event (a coloured shape
appears at one of five positions, moves to another, or disappears) and at
most one audio event (a low / medium / high tone, a burst of noise, or a word spoken by
espeak-ng), so audio events can have a visual counterpart at the same time or none. Events
sit on whole seconds and frames are sampled at slot centres (``k + 0.5`` s, as the model's
frame sampler does at 1 fps), so every frame the model sees shows a settled state.

Everything is drawn from ``numpy.random.default_rng([seed, split, index])``: a clip depends
only on the seed, its split and its index (adding training clips never changes the held-out
ones), and the same seed gives byte-identical JSON(L) files and identical decoded frames
(x264 and AAC run single-threaded and bit-exact).

Output folder::

    clips.jsonl          every clip: id, split, video, audio, duration, caption, audio_caption,
                         events (kind, time, attributes), atomic events, local intervals
    train.jsonl          mrDPO video lists (id, video, reference, events, local[start, end,
    heldout.jsonl        reference, events]) -- ``train_videos`` / ``heldout_videos`` of vs2 mrdpo
    synth_align.json     alignment data: audio-only captions (+ transcriptions) of train clips
    synth_sft.json       SFT data: global + local captions of train clips
    synth_sft_heldout.json   the same for held-out clips (evaluation only)
    dataset_info.json    the LLaMA-Factory datasets above (dataset_dir = the output folder; the
                         other datasets of an existing one are kept)
    media/<id>.mp4, media/<id>.wav   the clip (H.264 + AAC) and its audio track alone (16 kHz)
    manifest.json        the generation settings
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import wave
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from itertools import combinations, pairwise
from pathlib import Path

import numpy as np

from vs2_plugin.data.sharegpt import caption_row, dataset_entry
from vs2_plugin.errors import ConfigError, DataError, Vs2Error
from vs2_plugin.synth.grammar import (
    COLOURS,
    PITCHES,
    POSITIONS,
    SHAPES,
    WORDS,
    Event,
    atomic_events,
    tell_events,
)

#: "text": clips that are planned but never rendered; only their captions are written (the
#: text corpus of ``synth_text``, for language pretraining of a model built from scratch)
SPLITS = ("train", "heldout", "text")
SAMPLE_RATE = 16000
INTRO = "The video shows coloured shapes on a dark background."
ALIGN_PROMPT = "Describe the audio in order."
TRANSCRIBE_PROMPT = "Transcribe the speech."
MAX_VISIBLE = 3
#: a move takes this long from its slot: frames sampled at slot centres (k + 0.5 s) show where
#: the shape was and where it went, never a shape half-way
MOVE_SECONDS = 0.4
TONE_HZ = {"low": 262.0, "medium": 523.0, "high": 1047.0}
#: how long a tone and a noise burst sound; spoken words are trimmed to WORD_MAX_SECONDS
SOUND_SECONDS = {"tone": 0.6, "noise": 0.5}
WORD_MAX_SECONDS = 0.9
COLOUR_RGB = {
    "red": (230, 40, 40),
    "green": (40, 200, 60),
    "blue": (50, 90, 240),
    "yellow": (240, 220, 40),
    "purple": (160, 60, 200),
    "white": (240, 240, 240),
}
BACKGROUND = (25, 25, 25)
POSITION_XY = {
    "top left": (0.25, 0.25),
    "top right": (0.75, 0.25),
    "bottom left": (0.25, 0.75),
    "bottom right": (0.75, 0.75),
    "centre": (0.5, 0.5),
}


@dataclass
class SynthConfig:
    """Settings of ``vs2 synth`` (validated; every error names the bad value).

    size 112 x 112 at most 12544 pixels is what the tiny recipes' ``video_max_pixels`` reads
    without resizing; fps 4 (any even fps) gives the 1-fps frame sampler settled frames at every
    slot centre.
    """

    out: str
    seed: int = 0
    n_train: int = 48
    n_heldout: int = 16
    #: captions of this many more clips (never rendered) as the text-only corpus ``synth_text``
    n_text: int = 0
    min_seconds: float = 4.0
    max_seconds: float = 12.0
    fps: int = 4
    size: int = 112
    vary_wording: bool = True

    def __post_init__(self) -> None:
        for name, minimum in (("seed", 0), ("n_train", 0), ("n_heldout", 0), ("n_text", 0), ("fps", 1), ("size", 32)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")
        if self.n_train + self.n_heldout < 1:
            raise ConfigError(f"n_train + n_heldout must be >= 1, got {self.n_train} + {self.n_heldout}")
        if self.size % 2:
            raise ConfigError(f"size must be even (H.264 4:2:0), got {self.size}")
        if self.fps % 2:  # frame i is at i / fps: only an even fps has one at every k + 0.5 s
            raise ConfigError(
                f"fps must be even, so that a frame falls on every slot centre (k + 0.5 s) where the "
                f"model's 1-fps sampler reads a settled scene, got {self.fps}"
            )
        for name in ("min_seconds", "max_seconds"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 3 <= value <= 60:
                raise ConfigError(f"{name} must be a number of seconds in [3, 60], got {value!r}")
        self.min_seconds, self.max_seconds = float(self.min_seconds), float(self.max_seconds)
        if not even_durations(self.min_seconds, self.max_seconds):
            raise ConfigError(
                f"min_seconds={self.min_seconds:g} .. max_seconds={self.max_seconds:g} holds no even "
                f"whole number of seconds (clip durations are even, see vs2_plugin.synth.generate)"
            )


def even_durations(min_seconds: float, max_seconds: float) -> list[int]:
    """Clip durations allowed in ``[min_seconds, max_seconds]``: even whole seconds, so that the
    model's 1-fps sampler (frames in temporal groups of 2) takes exactly one frame per second,
    at ``k + 0.5`` s.

    >>> even_durations(4, 12), even_durations(3, 5.5), even_durations(5.2, 5.8)
    ([4, 6, 8, 10, 12], [4], [])
    """
    lo = int(np.ceil(min_seconds))
    return [d for d in range(lo + lo % 2, int(np.floor(max_seconds)) + 1, 2)]


@dataclass
class Clip:
    id: str
    split: str
    duration: int
    events: list[Event]
    local: list[tuple[float, float]] = field(default_factory=list)


# ------------------------------------------------------------------------------ planning


def _plan_events(rng: np.random.Generator, duration: int) -> list[Event]:
    """Events on the slots ``1 .. duration-1``: visual ones keep a consistent scene (an object
    moves (over :data:`MOVE_SECONDS`) or disappears only while visible, never to an occupied
    position; a colour + shape pair is used once per clip), audio ones are independent."""
    visible: dict[tuple[str, str], str] = {}
    used: set[tuple[str, str]] = set()
    events: list[Event] = []
    for t in range(1, duration):
        t = float(t)
        if rng.random() < 0.7:
            free = [p for p in POSITIONS if p not in visible.values()]
            options = []
            if len(visible) < MAX_VISIBLE and free:
                options.append("appear")
            if visible and free:
                options.append("move")
            if visible:
                options.append("disappear")
            weights = np.array([{"appear": 0.5, "move": 0.3, "disappear": 0.2}[o] for o in options])
            kind = options[int(rng.choice(len(options), p=weights / weights.sum()))]
            if kind == "appear":
                fresh = [(c, s) for c in COLOURS for s in SHAPES if (c, s) not in used]
                colour, shape = fresh[int(rng.integers(len(fresh)))]
                position = free[int(rng.integers(len(free)))]
                visible[colour, shape] = position
                used.add((colour, shape))
                events.append(Event("appear", colour=colour, shape=shape, position=position, time=t))
            else:
                keys = sorted(visible)
                colour, shape = keys[int(rng.integers(len(keys)))]
                if kind == "move":
                    position = free[int(rng.integers(len(free)))]
                    visible[colour, shape] = position
                    events.append(Event("move", colour=colour, shape=shape, position=position, time=t))
                else:
                    del visible[colour, shape]
                    events.append(Event("disappear", colour=colour, shape=shape, time=t))
        if rng.random() < 0.55:
            kind = ("tone", "noise", "speech")[int(rng.choice(3, p=[0.4, 0.2, 0.4]))]
            if kind == "tone":
                events.append(Event("tone", pitch=PITCHES[int(rng.integers(len(PITCHES)))], time=t))
            elif kind == "speech":
                events.append(Event("speech", word=WORDS[int(rng.integers(len(WORDS)))], time=t))
            else:
                events.append(Event("noise", time=t))
    return events


def _plan_local(rng: np.random.Generator, duration: int, events: list[Event]) -> list[tuple[float, float]]:
    """Two (clips under 8 s) or three local intervals cut at half seconds, each holding an event,
    as even in length as that allows."""
    times = sorted({e.time for e in events})
    n = 2 if duration < 8 else 3
    while n >= 2:
        valid = []
        for cuts in combinations([k + 0.5 for k in range(1, duration - 1)], n - 1):
            bounds = [0.0, *cuts, float(duration)]
            if all(any(a <= t < b for t in times) for a, b in pairwise(bounds)):
                valid.append(bounds)
        if valid:  # the most even cuts (shortest longest interval), drawn among ties
            longest = [max(b - a for a, b in pairwise(v)) for v in valid]
            valid = [v for v, m in zip(valid, longest) if m == min(longest)]
            bounds = valid[int(rng.integers(len(valid)))]
            return list(pairwise(bounds))
        n -= 1
    return [(0.0, float(duration))]


def plan_clip(seed: int, split: str, index: int, config: SynthConfig) -> Clip:
    """The events and local intervals of one clip (pure: depends on seed, split, index, config).

    A plan must have a visual and an audio event and events in two slots at least (so two
    local intervals exist); plans that do not are redrawn from the same stream.
    """
    rng = np.random.default_rng([seed, SPLITS.index(split), index])
    durations = even_durations(config.min_seconds, config.max_seconds)
    duration = durations[int(rng.integers(len(durations)))]
    for _ in range(1000):
        events = _plan_events(rng, duration)
        kinds = {e.modality for e in events}
        if kinds == {"visual", "audio"} and len({e.time for e in events}) >= 2:
            break
    else:  # pragma: no cover - needs a 1000-fold unlucky stream
        raise Vs2Error(f"could not plan clip {split}/{index} of seed {seed}")
    return Clip(f"synth_{split}_{index:04d}", split, duration, events, _plan_local(rng, duration, events))


# ------------------------------------------------------------------------------ rendering


def _shape_mask(shape: str, xx: np.ndarray, yy: np.ndarray, cx: float, cy: float, r: float) -> np.ndarray:
    dx, dy = xx - cx, yy - cy
    if shape == "square":
        return (np.abs(dx) <= r * 0.85) & (np.abs(dy) <= r * 0.85)
    if shape == "circle":
        return dx * dx + dy * dy <= r * r
    if shape == "triangle":  # pointing up
        return (dy >= -r) & (dy <= r) & (np.abs(dx) <= (dy + r) / 2)
    return np.abs(dx) + np.abs(dy) <= r * 1.1  # diamond


@lru_cache(maxsize=4)
def _pixel_grid(size: int) -> np.ndarray:
    """Row and column coordinates of a ``size x size`` canvas (computed once per size, read-only)."""
    grid = np.mgrid[0:size, 0:size].astype(np.float32)
    grid.flags.writeable = False
    return grid


def visible_objects(clip: Clip, t: float, size: int) -> list[tuple[str, str, str, np.ndarray]]:
    """``(colour, shape, position, mask)`` of every object on screen at ``t`` seconds, ``mask`` a
    ``(size, size)`` bool array of its pixels (``position``: where it appeared or last moved to)."""
    tracks: dict[tuple[str, str], list[Event]] = {}
    for e in clip.events:
        if e.modality == "visual":
            tracks.setdefault((e.colour, e.shape), []).append(e)
    yy, xx = _pixel_grid(size)
    out = []
    for (colour, shape), track in tracks.items():
        if t < track[0].time or any(e.kind == "disappear" and t >= e.time for e in track):
            continue
        pos, named = np.array(POSITION_XY[track[0].position]), track[0].position
        for e in track[1:]:
            if e.kind == "move" and t >= e.time:
                frac = min(1.0, (t - e.time) / MOVE_SECONDS)
                pos, named = pos + frac * (np.array(POSITION_XY[e.position]) - pos), e.position
        out.append((colour, shape, named, _shape_mask(shape, xx, yy, pos[0] * size, pos[1] * size, size * 0.14)))
    return out


def render_frames(clip: Clip, fps: int, size: int) -> np.ndarray:
    """uint8 frames ``(duration * fps, size, size, 3)``: each object drawn where it is at that time."""
    frames = np.empty((clip.duration * fps, size, size, 3), np.uint8)
    frames[:] = BACKGROUND
    for i in range(len(frames)):
        for colour, _shape, _position, mask in visible_objects(clip, i / fps, size):
            frames[i][mask] = COLOUR_RGB[colour]
    return frames


def _speech(word: str, cache: Path) -> np.ndarray:
    """A word spoken by espeak-ng at 16 kHz, silence trimmed, peak 0.6, at most 0.9 s."""
    wav = cache / f"{word}.wav"
    if not wav.is_file():
        if shutil.which("espeak-ng") is None:
            raise Vs2Error("espeak-ng is needed for the spoken words of vs2 synth (Debian: apt-get install espeak-ng)")
        subprocess.run(["espeak-ng", "-v", "en", "-s", "170", "-w", str(wav), word], check=True, capture_output=True)
    with wave.open(str(wav)) as f:
        rate = f.getframerate()
        x = np.frombuffer(f.readframes(f.getnframes()), np.int16).astype(np.float64) / 32768.0
    loud = np.flatnonzero(np.abs(x) > 0.02)
    x = x[loud[0] : loud[-1] + 1] if len(loud) else x
    n = round(len(x) * SAMPLE_RATE / rate)
    x = np.interp(np.arange(n) * rate / SAMPLE_RATE, np.arange(len(x)), x)
    x = x[: int(WORD_MAX_SECONDS * SAMPLE_RATE)]
    return 0.6 * x / max(np.abs(x).max(), 1e-9)


def render_audio(clip: Clip, seed: int, cache: Path) -> np.ndarray:
    """float waveform at :data:`SAMPLE_RATE`: tones 0.6 s, noise bursts 0.5 s, words <= 0.9 s."""
    audio = np.zeros(clip.duration * SAMPLE_RATE)
    rng = np.random.default_rng([seed, SPLITS.index(clip.split), int(clip.id.rsplit("_", 1)[1]), 1])
    for e in clip.events:
        if e.kind == "tone":
            n = int(SOUND_SECONDS["tone"] * SAMPLE_RATE)
            sound = 0.35 * np.sin(2 * np.pi * TONE_HZ[e.pitch] * np.arange(n) / SAMPLE_RATE)
        elif e.kind == "noise":
            sound = np.clip(rng.normal(0.0, 0.15, int(SOUND_SECONDS["noise"] * SAMPLE_RATE)), -0.5, 0.5)
        elif e.kind == "speech":
            sound = _speech(e.word, cache)
        else:
            continue
        fade = min(160, len(sound) // 2)  # 10 ms ramps: no clicks
        ramp = np.linspace(0.0, 1.0, fade)
        sound[:fade] *= ramp
        sound[len(sound) - fade :] *= ramp[::-1]
        start = int(e.time * SAMPLE_RATE)
        audio[start : start + len(sound)] += sound[: len(audio) - start]
    return np.clip(audio, -1.0, 1.0)


def write_wav(path: Path, audio: np.ndarray) -> None:
    with wave.open(str(path), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(SAMPLE_RATE)
        f.writeframes((audio * 32767).astype("<i2").tobytes())


def encode_mp4(path: Path, frames: np.ndarray, wav: Path, fps: int) -> None:
    """H.264 (yuv420p) + AAC mp4, single-threaded and bit-exact so a seed gives the same file."""
    if shutil.which("ffmpeg") is None:
        raise Vs2Error("ffmpeg is needed to write the clips of vs2 synth (Debian: apt-get install ffmpeg)")
    _, h, w, _ = frames.shape
    cmd = [
        "ffmpeg",
        "-nostdin",
        "-y",
        "-loglevel",
        "error",
        "-threads",
        "1",
        "-f",
        "rawvideo",
        "-pix_fmt",
        "rgb24",
        "-s",
        f"{w}x{h}",
        "-r",
        str(fps),
        "-i",
        "pipe:0",
        "-i",
        str(wav),
        "-map",
        "0:v",
        "-map",
        "1:a",
        "-c:v",
        "libx264",
        "-preset",
        "veryfast",
        "-crf",
        "18",
        "-pix_fmt",
        "yuv420p",
        "-threads",
        "1",
        "-x264-params",
        "threads=1",
        "-c:a",
        "aac",
        "-b:a",
        "48k",
        "-ar",
        str(SAMPLE_RATE),
        "-ac",
        "1",
        "-map_metadata",
        "-1",
        "-fflags",
        "+bitexact",
        "-flags:v",
        "+bitexact",
        "-flags:a",
        "+bitexact",
        str(path),
    ]
    proc = subprocess.run(cmd, input=frames.tobytes(), capture_output=True, check=False)
    if proc.returncode:
        raise Vs2Error(f"ffmpeg could not write {path}: {proc.stderr.decode(errors='replace').strip()[-300:]}")


# ------------------------------------------------------------------------------ captions and rows


def clip_record(clip: Clip, seed: int, vary_wording: bool) -> dict:
    """The clip's captions and events as one JSON-able row (paths relative to the output folder)."""
    rng = (
        np.random.default_rng([seed, SPLITS.index(clip.split), int(clip.id.rsplit("_", 1)[1]), 2])
        if vary_wording
        else None
    )
    audio_events = [e for e in clip.events if e.modality == "audio"]
    local = []
    for start, end in clip.local:
        inside = [e for e in clip.events if start <= e.time < end]
        local.append(
            {"start": start, "end": end, "reference": tell_events(inside, rng), "events": atomic_events(inside)}
        )
    return {
        "id": clip.id,
        "split": clip.split,
        "video": f"media/{clip.id}.mp4",
        "audio": f"media/{clip.id}.wav",
        "duration": float(clip.duration),
        "reference": tell_events(clip.events, rng, intro=INTRO),
        "events": atomic_events(clip.events),
        "audio_caption": tell_events(audio_events, rng),
        "audio_events": atomic_events(audio_events),
        "timeline": [e.to_dict() for e in clip.events],
        "local": local,
    }


def align_rows(records: list[dict]) -> list[dict]:
    """Alignment data (paper sec. 3.2): audio-only captions, and transcriptions of the words."""
    rows = []
    for r in records:
        rows.append(caption_row("<audio>" + ALIGN_PROMPT, r["audio_caption"], "audios", r["audio"]))
        words = [e["word"] for e in r["timeline"] if e["kind"] == "speech"]
        if words:
            rows.append(
                caption_row(
                    "<audio>" + TRANSCRIBE_PROMPT, " ".join(w.capitalize() + "." for w in words), "audios", r["audio"]
                )
            )
    return rows


def sft_rows(records: list[dict]) -> list[dict]:
    """SFT data: the global caption and every local caption, with the project's prompts."""
    from vs2_plugin.pipeline.config import DEFAULT_GLOBAL_PROMPT, DEFAULT_LOCAL_PROMPT

    rows = []
    for r in records:
        rows.append(caption_row("<video>" + DEFAULT_GLOBAL_PROMPT, r["reference"], "videos", r["video"]))
        for iv in r["local"]:
            prompt = DEFAULT_LOCAL_PROMPT.format(start=iv["start"], end=iv["end"])
            rows.append(caption_row("<video>" + prompt, iv["reference"], "videos", r["video"]))
    return rows


def text_rows(records: list[dict]) -> list[dict]:
    """Text-only corpus (LLaMA-Factory ``stage: pt``, column ``text``): every caption of the clips
    (global, local, audio-only), without media -- the language, not the grounding."""
    rows = []
    for r in records:
        rows.append({"text": r["reference"]})
        rows += [{"text": iv["reference"]} for iv in r["local"]]
        rows.append({"text": r["audio_caption"]})
    return rows


def video_list_row(r: dict) -> dict:
    """A row of the mrDPO driver's video lists (``train_videos`` / ``heldout_videos``)."""
    return {
        "id": r["id"],
        "video": r["video"],
        "reference": r["reference"],
        "events": r["events"],
        "local": [{k: iv[k] for k in ("start", "end", "reference", "events")} for iv in r["local"]],
    }


def _dump(path: Path, data, jsonl: bool = False) -> None:
    if jsonl:
        text = "".join(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n" for row in data)
    else:
        text = json.dumps(data, ensure_ascii=False, indent=1, sort_keys=True) + "\n"
    path.write_text(text, encoding="utf-8")


#: the ``dataset_info.json`` entries vs2 synth owns: replaced (or dropped) on every run
DATASETS = ("synth_align", "synth_sft", "synth_sft_heldout", "synth_text")


def _other_datasets(path: Path) -> dict:
    """The entries of an existing ``dataset_info.json`` that are not vs2 synth's: the output folder
    may be a dataset_dir that ``vs2 pairs`` or a user added datasets to. Read before any clip is
    rendered, so a broken file stops the run at once."""
    if not path.is_file():
        return {}
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: not valid JSON ({exc}); vs2 synth adds its datasets to it") from None
    if not isinstance(info, dict):
        raise DataError(f"{path}: expected a JSON object of datasets, got {type(info).__name__}")
    return {k: v for k, v in info.items() if k not in DATASETS}


def generate(config: SynthConfig, progress=None) -> dict:
    """Write the clips and datasets of ``config`` into ``config.out``; returns the manifest."""
    out = Path(config.out)
    info = _other_datasets(out / "dataset_info.json")
    media = out / "media"
    media.mkdir(parents=True, exist_ok=True)
    clips = [plan_clip(config.seed, "train", i, config) for i in range(config.n_train)]
    clips += [plan_clip(config.seed, "heldout", i, config) for i in range(config.n_heldout)]
    records = []
    with tempfile.TemporaryDirectory(prefix="vs2_synth_") as tmp:
        cache = Path(tmp)
        for k, clip in enumerate(clips):
            wav = media / f"{clip.id}.wav"
            write_wav(wav, render_audio(clip, config.seed, cache))
            encode_mp4(media / f"{clip.id}.mp4", render_frames(clip, config.fps, config.size), wav, config.fps)
            records.append(clip_record(clip, config.seed, config.vary_wording))
            if progress:
                progress(k + 1, len(clips))
    train = [r for r in records if r["split"] == "train"]
    held = [r for r in records if r["split"] == "heldout"]
    _dump(out / "clips.jsonl", records, jsonl=True)
    _dump(out / "train.jsonl", [video_list_row(r) for r in train], jsonl=True)
    _dump(out / "heldout.jsonl", [video_list_row(r) for r in held], jsonl=True)
    for name, rows, key in (
        ("synth_align", align_rows(train), "audios"),
        ("synth_sft", sft_rows(train), "videos"),
        ("synth_sft_heldout", sft_rows(held), "videos"),
    ):
        if rows:
            _dump(out / f"{name}.json", rows)
            info[name] = dataset_entry(f"{name}.json", key)
    if config.n_text:
        texts = [
            clip_record(plan_clip(config.seed, "text", i, config), config.seed, config.vary_wording)
            for i in range(config.n_text)
        ]
        _dump(out / "synth_text.json", text_rows(texts))
        info["synth_text"] = {"file_name": "synth_text.json", "columns": {"prompt": "text"}}
    _dump(out / "dataset_info.json", info)
    manifest = {
        "generator": "vs2 synth",
        "config": {k: v for k, v in asdict(config).items() if k != "out"},
        "clips": {"train": len(train), "heldout": len(held), "text": config.n_text},
        "events": {"train": sum(len(r["events"]) for r in train), "heldout": sum(len(r["events"]) for r in held)},
        "datasets": sorted(k for k in info if k in DATASETS),
    }
    _dump(out / "manifest.json", manifest)
    return manifest
