"""LLaMA-Factory multimodal plugin for video-SALMONN 2 (paper sec. 3.1, eq. 6-8).

What it adds to LLaMA-Factory's Qwen2-VL plugin:

* ``<video>`` expands to ``<|vision_start|>`` + per temporal group: the group's
  ``<|video_pad|>`` tokens followed by the audio tokens whose windows start in that group's
  time slot (:func:`vs2_plugin.modeling.interleave.interleave_plan`) + ``<|vision_end|>``. The audio is
  the video's own track when ``use_audio_in_video: true`` (LLaMA-Factory's flag) and the file
  has one; silent videos and ``use_audio_in_video: false`` give the plain visual layout.
* ``<audio>`` (``audios`` column) expands to ``<|audio_start|>`` + K ``<|audio_pad|>`` +
  ``<|audio_end|>`` (audio-only data, e.g. the alignment stage).
* Token counts come from container metadata and arithmetic (:func:`vs2_plugin.data.media.probe`),
  never from decoding, so preprocessing decodes nothing.
* In the collator each distinct file of a batch is decoded once, frames and audio together
  (:func:`vs2_plugin.data.media.read_media`): the chosen and rejected copies of a DPO pair, and a
  ground-truth caption of the same video, share one decode.
* A model without the audio branch (a plain Qwen2.5-VL checkpoint, ``model_type`` other than
  ``video_salmonn2``) is served like LLaMA-Factory's Qwen2-VL template serves it; giving it
  audio is an error that says so.

* Inputs: file paths, and in-memory media as LLaMA-Factory's API server hands them over (a
  base64 ``data:video/...`` URL becomes a byte stream): streams and bytes are written once to
  a content-addressed file of a per-process temporary folder (removed at exit) and read from
  there, since container metadata needs a seekable file.
* Audio is never dropped in silence: a model with the audio branch given a video with an audio
  track while ``use_audio_in_video`` is false raises :class:`DataError`, unless the environment
  sets ``VS2_IGNORE_VIDEO_AUDIO=1`` (then the frames alone are used).

Model-side settings (window length, queries per window, mel bins) come from the model's config
as transformers loads it (``AutoConfig`` for the checkpoint the processor was loaded from: a
local folder or a hub id in the cache, the config class's defaults for absent keys); sampling
settings from LLaMA-Factory's ``video_fps`` (phi), ``video_maxlen`` (m), ``video_max_pixels`` /
``video_min_pixels``.
"""

from __future__ import annotations

import os
import weakref
from copy import deepcopy
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import torch

from vs2_plugin.data import media, spool
from vs2_plugin.data.model_audio import (  # noqa: F401
    AudioSettings,
    audio_settings_of,
    model_audio_settings,
)
from vs2_plugin.errors import DataError, MediaError
from vs2_plugin.integrations.api_errors import answers_bad_media_with_400
from vs2_plugin.integrations.llamafactory import argument_default, mm_plugin_defined
from vs2_plugin.integrations.llamafactory_api import Qwen2VLPlugin
from vs2_plugin.modeling import interleave
from vs2_plugin.modeling.geometry import AUDIO_DEFAULTS, VIDEO_DEFAULTS

IMAGE_PLACEHOLDER = os.environ.get("IMAGE_PLACEHOLDER", "<image>")
VIDEO_PLACEHOLDER = os.environ.get("VIDEO_PLACEHOLDER", "<video>")
AUDIO_PLACEHOLDER = os.environ.get("AUDIO_PLACEHOLDER", "<audio>")
WHISPER_SAMPLES_PER_SEGMENT = round(AUDIO_DEFAULTS.segment_s * media.AUDIO_SAMPLE_RATE)


#: set to 1 to let a model with an audio branch see only the frames of videos with sound
IGNORE_VIDEO_AUDIO_ENV = "VS2_IGNORE_VIDEO_AUDIO"


def ignore_video_audio() -> bool:
    return os.environ.get(IGNORE_VIDEO_AUDIO_ENV, "").strip().lower() in ("1", "true", "yes", "on")


_spooled: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # stream -> path: a stream is read once


def media_path(item: Any, what: str = "video") -> str:
    """A file path for ``item``: a path as is; bytes or a byte stream (an API request's base64
    media) written once to a file of this process's spool folder (:mod:`vs2_plugin.data.spool`)."""
    if isinstance(item, (str, os.PathLike)):
        return str(item)
    if hasattr(item, "read") and item in _spooled and os.path.exists(_spooled[item]):
        return _spooled[item]  # unless trimmed from the spool since: then read again
    if isinstance(item, (bytes, bytearray, memoryview)):
        data = bytes(item)
    elif hasattr(item, "read"):
        if hasattr(item, "seek") and getattr(item, "seekable", lambda: False)():
            item.seek(0)
        data = item.read()
    else:
        raise DataError(f"{what} inputs must be file paths, bytes or byte streams; got {type(item).__name__}")
    if not data:
        raise MediaError(f"<in-memory {what}>", "empty (0 bytes)")
    path = spool.write(data)
    if not isinstance(item, (bytes, bytearray, memoryview)):
        _spooled[item] = path
    return path


@lru_cache(maxsize=4096)
def _probe_cached(path: str, mtime_ns: int) -> media.MediaInfo:
    return media.probe(path)


def probe(path: str) -> media.MediaInfo:
    """:func:`vs2_plugin.data.media.probe`, cached per file version (chosen/rejected share it)."""
    try:
        mtime = os.stat(path).st_mtime_ns
    except OSError:
        return media.probe(path)  # raises the MediaError that names the problem
    return _probe_cached(path, mtime)


def _sampling(processor) -> tuple[float, int]:
    """phi and m: LLaMA-Factory's ``video_fps`` / ``video_maxlen`` on the processor, else the paper's."""
    fps = getattr(processor, "video_fps", None) or VIDEO_DEFAULTS.fps
    maxlen = getattr(processor, "video_maxlen", None) or VIDEO_DEFAULTS.max_frames
    return float(fps), int(maxlen)


def _pixel_caps(processor) -> tuple[int, int]:
    """LLaMA-Factory's ``video_max_pixels`` / ``video_min_pixels`` on the processor, else its defaults."""
    values = []
    for name in ("video_max_pixels", "video_min_pixels"):
        value = getattr(processor, name, None)
        values.append(argument_default(name) if value is None else value)
    return values[0], values[1]


@dataclass(frozen=True)
class VideoPlan:
    """How one video is laid out in the sequence (all from metadata)."""

    info: media.MediaInfo
    num_frames: int
    grid_thw: tuple[int, int, int]
    visual_tokens_per_group: int
    plan: interleave.InterleavePlan
    use_audio: bool


@dataclass
class VideoSalmonn2Plugin(Qwen2VLPlugin):
    """Qwen2.5-VL video handling plus the audio track, interleaved by time."""

    audio_bos_token: str = "<|audio_start|>"
    audio_pad_token: str = "<|audio_pad|>"
    audio_eos_token: str = "<|audio_end|>"

    # ------------------------------------------------------------------ settings
    def audio_settings(self, processor) -> AudioSettings:
        tokenizer = getattr(processor, "tokenizer", None)
        model_dir = getattr(tokenizer, "name_or_path", None) or ""
        return model_audio_settings(str(model_dir))

    def _video_processor_settings(self, processor) -> dict[str, Any]:
        vp = getattr(processor, "video_processor", None) or getattr(processor, "image_processor")
        size = getattr(vp, "size", None) or {}
        size = (
            size
            if isinstance(size, dict)
            else {
                "shortest_edge": getattr(size, "shortest_edge", None),
                "longest_edge": getattr(size, "longest_edge", None),
            }
        )
        return {
            "patch_size": int(getattr(vp, "patch_size", interleave.QWEN_PATCH_SIZE)),
            "merge_size": int(getattr(vp, "merge_size", interleave.QWEN_MERGE_SIZE)),
            "temporal_patch_size": int(getattr(vp, "temporal_patch_size", interleave.DEFAULT_GROUP_SIZE)),
            "min_pixels": int(size.get("shortest_edge") or interleave.QWEN_MIN_PIXELS),
            "max_pixels": int(size.get("longest_edge") or interleave.QWEN_MAX_PIXELS),
        }

    def video_plan(self, path: str, processor) -> VideoPlan:
        """Frames, grid and audio placement of ``path`` from its metadata alone."""
        info = probe(path)
        if not info.has_video:
            raise MediaError(
                path, "no video stream, but it is given as a video (use the audios column for audio-only files)"
            )
        vps = self._video_processor_settings(processor)
        group = vps["temporal_patch_size"]
        phi, m = _sampling(processor)
        n = media.frame_count(info.duration_s, phi, max(m, group), group)
        max_px, min_px = _pixel_caps(processor)
        grid_h, grid_w = interleave.visual_group_grid(
            info.width,
            info.height,
            patch_size=vps["patch_size"],
            merge_size=vps["merge_size"],
            min_pixels=vps["min_pixels"],
            max_pixels=vps["max_pixels"],
            video_max_pixels=max_px,
            video_min_pixels=min_px,
        )
        grid = (-(-n // group), grid_h, grid_w)
        tokens_per_group = (grid_h // vps["merge_size"]) * (grid_w // vps["merge_size"])
        settings = self.audio_settings(processor)
        flag = bool(getattr(processor, "use_audio_in_video", False))
        if settings.enabled and info.has_audio and not flag and not ignore_video_audio():
            raise DataError(
                f"{path}: the video has an audio track and the model has an audio branch, but use_audio_in_video "
                f"is false, so the audio would be dropped; set use_audio_in_video: true (as recipes/inference/"
                f"video_salmonn2.yaml does), or set {IGNORE_VIDEO_AUDIO_ENV}=1 to use the frames only"
            )
        use_audio = flag and settings.enabled and info.has_audio
        plan = interleave.interleave_plan(
            info.duration_s,
            n,
            window_s=settings.window_s,
            queries_per_window=settings.queries_per_window,
            group_size=group,
            has_audio=use_audio,
            audio_duration_s=info.audio_duration_s if use_audio else None,
            segment_s=settings.segment_s,
        )
        return VideoPlan(info, n, grid, tokens_per_group, plan, use_audio)

    def audio_tokens(self, audio, processor) -> tuple[int, int]:
        """(kept tokens, segments) of one audio item (a path or a 16 kHz waveform)."""
        settings = self.audio_settings(processor)
        if not settings.enabled:
            raise DataError(
                "this model has no audio branch (config.json model_type is not 'video_salmonn2'); "
                "build one with `vs2 build` or drop the audio inputs"
            )
        duration = _audio_duration(audio)
        kept = interleave.audio_token_count(
            duration, settings.window_s, settings.queries_per_window, settings.segment_s
        )
        return kept, interleave.audio_segment_count(duration, settings.segment_s)

    # ------------------------------------------------------------------ preprocessing
    @answers_bad_media_with_400
    def process_messages(self, messages, images, videos, audios, processor):
        videos = [media_path(v, "video") for v in videos]
        audios = [a if isinstance(a, (np.ndarray, dict)) else media_path(a, "audio") for a in audios]
        self._validate_messages(messages, images, videos, audios)
        messages = deepcopy(messages)
        video_iter, audio_iter = iter(videos), iter(audios)
        for message in messages:
            content = message["content"]
            pieces = []
            while True:
                iv, ia = content.find(VIDEO_PLACEHOLDER), content.find(AUDIO_PLACEHOLDER)
                if iv < 0 and ia < 0:
                    break
                if ia < 0 or (0 <= iv < ia):
                    pieces.append(content[:iv])
                    pieces.append(self._video_text(next(video_iter), processor))
                    content = content[iv + len(VIDEO_PLACEHOLDER) :]
                else:
                    pieces.append(content[:ia])
                    pieces.append(self._audio_text(next(audio_iter), processor))
                    content = content[ia + len(AUDIO_PLACEHOLDER) :]
            message["content"] = "".join(pieces) + content
        # images: LLaMA-Factory's Qwen2-VL handling, unchanged
        return super().process_messages(messages, images, [], [], processor)

    def _video_text(self, video, processor) -> str:
        vp = self.video_plan(media_path(video, "video"), processor)
        if not self.expand_mm_tokens:
            return f"{self.vision_bos_token}{self.video_token}{self.vision_eos_token}"
        runs = interleave.placeholder_layout(vp.visual_tokens_per_group, vp.plan.audio_tokens_per_group)
        body = "".join((self.video_token if kind == "video" else self.audio_pad_token) * count for kind, count in runs)
        return f"{self.vision_bos_token}{body}{self.vision_eos_token}"

    def _audio_text(self, audio, processor) -> str:
        kept, _ = self.audio_tokens(audio, processor)
        count = kept if self.expand_mm_tokens else 1
        return f"{self.audio_bos_token}{self.audio_pad_token * count}{self.audio_eos_token}"

    def _validate_input(self, processor, images, videos, audios):
        super()._validate_input(processor, images, videos, [])
        if audios and not self.audio_settings(processor).enabled:
            raise DataError(
                "this model has no audio branch (config.json model_type is not 'video_salmonn2'); "
                "build one with `vs2 build` or drop the audio inputs"
            )

    def _validate_messages(self, messages, images, videos, audios):
        counts = {
            k: sum(m["content"].count(k) for m in messages)
            for k in (IMAGE_PLACEHOLDER, VIDEO_PLACEHOLDER, AUDIO_PLACEHOLDER)
        }
        for placeholder, given, what in (
            (IMAGE_PLACEHOLDER, images, "images"),
            (VIDEO_PLACEHOLDER, videos, "videos"),
            (AUDIO_PLACEHOLDER, audios, "audios"),
        ):
            if counts[placeholder] != len(given):
                first = next((m["content"] for m in messages if m.get("role") == "user"), "")[:80]
                raise DataError(
                    f"sample with prompt {first!r}: {counts[placeholder]} {placeholder} placeholder(s) "
                    f"but {len(given)} {what} given ({', '.join(map(str, given)) or 'none'})"
                )

    @answers_bad_media_with_400
    def process_token_ids(self, input_ids, labels, images, videos, audios, tokenizer, processor):
        return super().process_token_ids(input_ids, labels, images, videos, audios, tokenizer, processor)

    # ------------------------------------------------------------------ collation
    @answers_bad_media_with_400
    def get_mm_inputs(self, images, videos, audios, imglens, vidlens, audlens, batch_ids, processor):
        mm_inputs: dict[str, Any] = {}
        videos = [media_path(v, "video") for v in videos]
        audios = [a if isinstance(a, (np.ndarray, dict)) else media_path(a, "audio") for a in audios]
        if images:
            mm_inputs.update(super()._get_mm_inputs(images, [], [], processor))
        settings = self.audio_settings(processor)
        audio_items = self._audio_items_in_sequence_order(
            videos, audios, vidlens, audlens, batch_ids, settings, processor
        )
        decoded: dict[str, media.DecodedMedia] = {}  # one decode per distinct file in the batch
        if videos:
            mm_inputs.update(self._video_inputs(videos, processor, decoded))
        if audio_items:
            mm_inputs.update(self._audio_inputs(audio_items, processor, decoded, settings))
        return mm_inputs

    def _audio_items_in_sequence_order(self, videos, audios, vidlens, audlens, batch_ids, settings, processor):
        """("video", path) / ("audio", item) for every audio block, in token order.

        The model scatters audio embeddings into ``<|audio_pad|>`` positions in order, so the
        items must follow the order the blocks appear in each sample's tokens.
        """
        if not settings.enabled or (not audios and not videos):
            return []
        tok = None
        items = []
        v_off = a_off = 0
        for sample, (nv, na) in enumerate(zip(vidlens, audlens)):
            sample_videos, sample_audios = list(videos[v_off : v_off + nv]), list(audios[a_off : a_off + na])
            v_off, a_off = v_off + nv, a_off + na
            if not sample_videos and not sample_audios:
                continue
            if tok is None:
                tok = self._token_ids(processor.tokenizer)
            ids = batch_ids[sample]
            vi = ai = 0
            i = 0
            while i < len(ids):
                t = ids[i]
                if t == tok["vision_start"] and i + 1 < len(ids) and ids[i + 1] == tok["video"]:
                    j = i + 1
                    has_audio = False
                    while j < len(ids) and ids[j] != tok["vision_end"]:
                        has_audio = has_audio or ids[j] == tok["audio"]
                        j += 1
                    if has_audio:
                        items.append(("video", str(sample_videos[vi])))
                    vi += 1
                    i = j
                elif t == tok["audio_start"]:
                    items.append(("audio", sample_audios[ai]))
                    ai += 1
                i += 1
        return items

    def _token_ids(self, tokenizer) -> dict[str, int]:
        return {
            "vision_start": tokenizer.convert_tokens_to_ids(self.vision_bos_token),
            "vision_end": tokenizer.convert_tokens_to_ids(self.vision_eos_token),
            "video": tokenizer.convert_tokens_to_ids(self.video_token),
            "audio": tokenizer.convert_tokens_to_ids(self.audio_pad_token),
            "audio_start": tokenizer.convert_tokens_to_ids(self.audio_bos_token),
        }

    def _decode(self, path: str, processor, decoded, need_audio: bool) -> media.DecodedMedia:
        got = decoded.get(path)
        if got is not None and (got.audio is not None or not need_audio):
            return got
        vps = self._video_processor_settings(processor)
        info = probe(path)
        got = media.read_media(
            path,
            _sampling(processor)[0],
            max(_sampling(processor)[1], vps["temporal_patch_size"]),
            need_video=info.has_video,
            need_audio=bool(need_audio and info.has_audio),
            group_size=vps["temporal_patch_size"],
            max_pixels=_pixel_caps(processor)[0],
        )
        decoded[path] = got
        return got

    def _video_inputs(self, videos, processor, decoded) -> dict[str, Any]:
        from PIL import Image

        frames_per_video, seconds_per_group = [], []
        for video in videos:
            path = str(video)
            vp = self.video_plan(path, processor)
            got = self._decode(path, processor, decoded, need_audio=vp.use_audio)
            frames = [Image.fromarray(f) for f in got.frames]
            if len(frames) % 2:
                frames.append(frames[-1])
            frames = self._regularize_images(
                frames,
                image_max_pixels=_pixel_caps(processor)[0],
                image_min_pixels=_pixel_caps(processor)[1],
            )["images"]
            frames_per_video.append(frames)
            group = self._video_processor_settings(processor)["temporal_patch_size"]
            seconds_per_group.append(group * vp.info.duration_s / vp.num_frames)
        video_processor = getattr(processor, "video_processor", None) or getattr(processor, "image_processor")
        out = dict(video_processor(videos=frames_per_video, return_tensors="pt"))
        for path, grid in zip(videos, out["video_grid_thw"].tolist()):
            expected = list(self.video_plan(str(path), processor).grid_thw)
            if grid != expected:  # would silently misalign audio: refuse
                raise MediaError(path, f"decoded frames give grid {grid}, metadata predicted {expected}")
        if "second_per_grid_ts" in getattr(processor, "model_input_names", []):
            out["second_per_grid_ts"] = seconds_per_group
        return out

    def _audio_inputs(self, items, processor, decoded, settings) -> dict[str, Any]:
        features, segment_counts, token_counts = [], [], []
        for kind, item in items:
            if kind == "video":
                vp = self.video_plan(item, processor)
                wave = self._decode(item, processor, decoded, need_audio=True).audio
                kept = vp.plan.audio_tokens_total
            else:
                wave = self._load_audio(item, decoded)
                kept, _ = self.audio_tokens(item, processor)
            mel = whisper_segments(wave, settings.n_mels, settings.segment_s)
            features.append(mel)
            segment_counts.append(mel.shape[0])
            token_counts.append(kept)
        return {
            "audio_features": torch.cat(features, dim=0),
            "audio_segment_counts": torch.tensor(segment_counts, dtype=torch.long),
            "audio_token_counts": torch.tensor(token_counts, dtype=torch.long),
        }

    def _load_audio(self, item, decoded) -> np.ndarray:
        if isinstance(item, np.ndarray):
            return item.astype(np.float32)
        path = str(item)
        got = decoded.get(path)
        if got is None or got.audio is None:
            got = media.read_media(path, need_video=False, need_audio=True)
            decoded[path] = got
        return got.audio


def whisper_segments(wave: np.ndarray, n_mels: int, segment_s: float = AUDIO_DEFAULTS.segment_s) -> torch.Tensor:
    """Eq. (2): log-mel of each ``segment_s`` slice of 16 kHz ``wave`` -> (l, n_mels, 3000)."""
    import whisper

    seg = int(segment_s * media.AUDIO_SAMPLE_RATE)
    count = max(1, -(-len(wave) // seg))
    audio = torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32))
    mels = []
    for j in range(count):
        chunk = whisper.pad_or_trim(audio[j * seg : (j + 1) * seg], WHISPER_SAMPLES_PER_SEGMENT)
        mels.append(whisper.log_mel_spectrogram(chunk, n_mels=n_mels))
    return torch.stack(mels, dim=0)


def _audio_duration(audio) -> float:
    if isinstance(audio, np.ndarray):
        return len(audio) / media.AUDIO_SAMPLE_RATE
    if isinstance(audio, dict) and "array" in audio:
        return len(audio["array"]) / float(audio.get("sampling_rate", media.AUDIO_SAMPLE_RATE))
    info = probe(str(audio))
    if not info.has_audio:
        raise MediaError(audio, "no audio stream, but it is given as an audio input")
    return float(info.audio_duration_s or info.duration_s)


mm_plugin_defined()  # imported before LLaMA-Factory: its template registration waited for this class
