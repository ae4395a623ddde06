"""How a media file is fed to the model, from metadata alone: the report ``vs2 tokens``
(:mod:`vs2_plugin.commands.tokens`) prints, and the settings it is computed under.

Nothing is decoded: :func:`vs2_plugin.data.media.probe` reads the container header and the rest is
the arithmetic of :mod:`vs2_plugin.modeling.interleave` (paper sec. 3.1, eq. 2 and 6-8).

Settings come from, in order of precedence: command-line flags, the ``--model`` directory,
defaults (paper sec. 4.1 and LLaMA-Factory's). From a model directory:

* ``config.json``: ``audio_window_s``, ``audio_queries_per_window``, ``segment_s`` (top level,
  as :class:`vs2_plugin.modeling.config.VideoSalmonn2Config` writes them),
  ``vision_config.temporal_patch_size`` / ``patch_size`` / ``spatial_merge_size`` /
  ``tokens_per_second``, and the
  optional sampling keys ``video_fps``, ``video_maxlen``, ``video_max_pixels``,
  ``video_min_pixels`` (top level or inside a ``video_salmonn2`` object);
* the video processor: ``video_preprocessor_config.json``, else the ``video_processor``
  object of ``processor_config.json``, else ``preprocessor_config.json``: ``patch_size``,
  ``merge_size``, ``temporal_patch_size``, and ``size.shortest_edge`` / ``size.longest_edge``
  (or ``min_pixels`` / ``max_pixels``).

``--positions`` adds ``video_positions`` and ``audio_positions``: the M-RoPE ``[t, h, w]`` of
every video and audio token in input order, computed by the model's own index function
(:func:`vs2_plugin.modeling.rope.sequence_rope_index`) and counted from the position of the
item's first token (in a prompt, add the position that token gets there).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from vs2_plugin.data.media import MIN_DURATION_S
from vs2_plugin.errors import ConfigError
from vs2_plugin.modeling import interleave
from vs2_plugin.modeling.geometry import AUDIO_DEFAULTS, VIDEO_DEFAULTS, AudioGeometry, read_model_config

#: Defaults: paper sec. 4.1 (frame sampling and audio geometry of
#: :mod:`vs2_plugin.modeling.geometry`), Qwen2-VL's video processor (patch 14,
#: merge 2, temporal patch 2, pixel range), LLaMA-Factory's frame caps.
DEFAULTS = {
    "fps": VIDEO_DEFAULTS.fps,
    "max_frames": VIDEO_DEFAULTS.max_frames,
    "window_s": AUDIO_DEFAULTS.window_s,
    "queries_per_window": AUDIO_DEFAULTS.queries_per_window,
    "segment_s": AUDIO_DEFAULTS.segment_s,
    "group_size": interleave.DEFAULT_GROUP_SIZE,
    "patch_size": interleave.QWEN_PATCH_SIZE,
    "merge_size": interleave.QWEN_MERGE_SIZE,
    "min_pixels": interleave.QWEN_MIN_PIXELS,
    "max_pixels": interleave.QWEN_MAX_PIXELS,
    "video_max_pixels": interleave.LF_VIDEO_MAX_PIXELS,
    "video_min_pixels": interleave.LF_VIDEO_MIN_PIXELS,
    "min_duration_s": MIN_DURATION_S,
    "tokens_per_second": 2,
}


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: not readable JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a JSON object")
    return data


def model_settings(model_dir: str | Path) -> dict:
    """The settings a model directory pins (see the module docstring); absent keys are omitted."""
    root = Path(model_dir)
    if not root.is_dir():
        raise ConfigError(f"--model {model_dir}: not a directory")
    found: dict = {}
    config = read_model_config(root)
    audio_keys = [k for k in ("audio_window_s", "audio_queries_per_window", "segment_s") if config.get(k) is not None]
    if audio_keys:  # the audio geometry the model pins, validated as the model config does
        geometry = AudioGeometry.from_config({k: config[k] for k in audio_keys})
        found.update(
            {
                name: getattr(geometry, name)
                for name in ("window_s", "queries_per_window", "segment_s")
                if f"audio_{name}" in audio_keys or name in audio_keys
            }
        )
    for source in (config, config.get("video_salmonn2") or {}):
        for key, name in (
            ("video_fps", "fps"),
            ("video_maxlen", "max_frames"),
            ("video_max_pixels", "video_max_pixels"),
            ("video_min_pixels", "video_min_pixels"),
        ):
            if source.get(key) is not None:
                found[name] = source[key]
    vision = config.get("vision_config") or {}
    for key, name in (
        ("temporal_patch_size", "group_size"),
        ("patch_size", "patch_size"),
        ("spatial_merge_size", "merge_size"),
        ("tokens_per_second", "tokens_per_second"),
    ):
        if vision.get(key) is not None:
            found[name] = vision[key]

    processor: dict = {}
    if (root / "video_preprocessor_config.json").is_file():
        processor = _read_json(root / "video_preprocessor_config.json")
    elif (root / "processor_config.json").is_file():
        processor = _read_json(root / "processor_config.json").get("video_processor") or {}
    if not processor and (root / "preprocessor_config.json").is_file():
        processor = _read_json(root / "preprocessor_config.json")
    for key, name in (
        ("temporal_patch_size", "group_size"),
        ("patch_size", "patch_size"),
        ("merge_size", "merge_size"),
    ):
        if processor.get(key) is not None:
            found[name] = processor[key]
    size = processor.get("size") or {}
    for key, size_key, name in (
        ("min_pixels", "shortest_edge", "min_pixels"),
        ("max_pixels", "longest_edge", "max_pixels"),
    ):
        value = processor.get(key) if processor.get(key) is not None else size.get(size_key)
        if value is not None:
            found[name] = value
    return found


def resolve_settings(args: argparse.Namespace) -> dict:
    """The settings of ``vs2 tokens``: flags, then ``--model``, then :data:`DEFAULTS`. A ``--model``
    folder without ``config.json`` (a LoRA adapter's, a run's) is refused: its audio window would be
    the default's without a word."""
    settings = dict(DEFAULTS)
    if getattr(args, "model", None):
        root = Path(args.model)
        if root.is_dir() and not (root / "config.json").is_file():
            hint = "; for a LoRA adapter folder give its base model" if (root / "adapter_config.json").is_file() else ""
            raise ConfigError(f"--model {args.model}: no config.json (not a model directory){hint}")
        settings.update(model_settings(args.model))
    for key in DEFAULTS:
        value = getattr(args, key, None)
        if value is not None:
            settings[key] = value
    check_settings(settings)
    return settings


def check_settings(settings: dict) -> None:
    """The settings as the model and LLaMA-Factory would take them: frame sampling and the audio
    geometry through their own dataclasses (a window the encoder frames do not divide is refused
    as ``vs2 build`` refuses it), the counts and pixel limits positive, the minimum duration >= 0."""
    from vs2_plugin.modeling.geometry import VideoSampling

    VideoSampling(fps=settings["fps"], max_frames=settings["max_frames"])
    AudioGeometry(
        window_s=settings["window_s"],
        queries_per_window=settings["queries_per_window"],
        segment_s=settings["segment_s"],
    )
    for key in (
        "group_size",
        "patch_size",
        "merge_size",
        "min_pixels",
        "max_pixels",
        "video_max_pixels",
        "video_min_pixels",
    ):
        value = settings[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{key} must be a whole number >= 1, got {value!r}")
    if settings["max_frames"] < settings["group_size"]:  # frames are taken in whole temporal groups
        raise ConfigError(
            f"max_frames must be at least group_size ({settings['group_size']} frames make one temporal group), "
            f"got {settings['max_frames']}"
        )
    value = settings["min_duration_s"]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < math.inf:
        # nan compares false with every duration: every clip was let through
        raise ConfigError(f"min_duration_s must be a finite number of seconds >= 0, got {value!r}")


def _split(total: int, parts: int) -> list[int]:
    """``total`` tokens shared by ``parts`` frames as evenly as integers allow, extras first."""
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def layout_positions(
    layout: list[tuple[str, int]], grid_thw: tuple[int, int, int] | None, seconds_per_group: float, settings: dict
) -> tuple[list[list[int]], list[list[int]]]:
    """``(video_positions, audio_positions)``: ``[t, h, w]`` of each token of one item laid out as
    ``layout`` (runs of :func:`vs2_plugin.modeling.interleave.placeholder_layout`), from the model's index
    function; offsets from the item's first token. ``grid_thw`` is ``None`` for audio-only input."""
    from vs2_plugin.modeling.rope import RopeTokens, sequence_rope_index

    video_id, audio_id = 1, 2
    ids = [video_id if kind == "video" else audio_id for kind, count in layout for _ in range(count)]
    tokens = RopeTokens(
        image_token_id=0,
        video_token_id=video_id,
        audio_token_id=audio_id,
        spatial_merge_size=int(settings["merge_size"]),
        tokens_per_second=settings["tokens_per_second"],
        audio_window_s=settings["window_s"],
        audio_queries_per_window=int(settings["queries_per_window"]),
    )
    grids = iter([grid_thw] if grid_thw is not None else [])
    positions = sequence_rope_index(ids, tokens, iter([]), grids, iter([seconds_per_group])).T.tolist()
    video = [p for p, token in zip(positions, ids) if token == video_id]
    audio = [p for p, token in zip(positions, ids) if token == audio_id]
    return video, audio


def token_report(path: str | Path, settings: dict, *, positions: bool = False, info=None) -> dict:
    """The JSON ``vs2 tokens`` prints, for ``path`` under ``settings`` (see :data:`DEFAULTS`);
    ``positions`` adds ``video_positions`` / ``audio_positions`` (:func:`layout_positions`).
    ``info``: the file's :func:`~vs2_plugin.data.media.probe`, when the caller has it already."""
    from vs2_plugin.data.media import probe, sample_frame_times
    from vs2_plugin.errors import MediaError
    from vs2_plugin.modeling.interleave import interleave_plan, placeholder_layout, visual_group_grid

    info = info or probe(path)
    s = settings
    if info.duration_s < s["min_duration_s"]:
        raise MediaError(path, f"too short: {info.duration_s:.2f} s (minimum {s['min_duration_s']:g} s)")
    group = int(s["group_size"])
    frame_times = sample_frame_times(info.duration_s, s["fps"], int(s["max_frames"]), group) if info.has_video else []
    plan = interleave_plan(
        info.duration_s,
        len(frame_times),
        window_s=s["window_s"],
        queries_per_window=int(s["queries_per_window"]),
        group_size=group,
        has_audio=info.has_audio,
        audio_duration_s=info.audio_duration_s,
        segment_s=s["segment_s"],
        audio_slot_s=1.0 / s["fps"],
    )
    if info.has_video:
        grid_h, grid_w = visual_group_grid(
            info.width,
            info.height,
            patch_size=int(s["patch_size"]),
            merge_size=int(s["merge_size"]),
            min_pixels=int(s["min_pixels"]),
            max_pixels=int(s["max_pixels"]),
            video_max_pixels=int(s["video_max_pixels"]),
            video_min_pixels=int(s["video_min_pixels"]),
        )
        per_group = (grid_h // int(s["merge_size"])) * (grid_w // int(s["merge_size"]))
        visual_per_group = [per_group] * plan.num_groups
        visual_per_frame = []
        for start in range(0, len(frame_times), group):
            visual_per_frame += _split(per_group, len(frame_times[start : start + group]))
    else:
        visual_per_group, visual_per_frame = [], []
    visual_total = sum(visual_per_group)
    layout = (
        placeholder_layout(visual_per_group or 0, plan.audio_tokens_per_group)
        if info.has_video
        else ([("audio", plan.audio_tokens_total)] if plan.audio_tokens_total else [])
    )
    report = {
        "file": str(path),
        "duration_s": round(info.duration_s, 6),
        "has_video": info.has_video,
        "has_audio": info.has_audio,
        "audio_duration_s": None if info.audio_duration_s is None else round(info.audio_duration_s, 6),
        "settings": {k: s[k] for k in sorted(s)},
        "frame_times_s": [round(t, 6) for t in frame_times],
        "slots_s": [[round(a, 6), round(b, 6)] for a, b in plan.slots_s],
        "group_size": plan.group_size,
        "audio_segments": plan.audio_segments,
        "audio_tokens_per_frame": list(plan.audio_tokens_per_frame),
        "audio_tokens_per_group": list(plan.audio_tokens_per_group),
        "audio_tokens_total": plan.audio_tokens_total,
        "visual_tokens_per_frame": visual_per_frame,
        "visual_tokens_per_group": visual_per_group,
        "visual_tokens_total": visual_total,
        "total_tokens": visual_total + plan.audio_tokens_total,
        "layout": [list(run) for run in layout],
    }
    if positions:
        grid = (plan.num_groups, grid_h, grid_w) if info.has_video else None
        seconds = group * info.duration_s / len(frame_times) if frame_times else 1.0
        report["video_positions"], report["audio_positions"] = layout_positions(layout, grid, seconds, s)
    return report
