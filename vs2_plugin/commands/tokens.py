"""``vs2 tokens FILE``: how a media file is fed to the model, as JSON, from metadata alone.

Which settings apply (flags, then the ``--model`` directory, then the defaults) and what
``--positions`` adds are described with the arithmetic, :mod:`vs2_plugin.data.token_report`.
"""

from __future__ import annotations

import argparse
import json

from vs2_plugin.data.token_report import resolve_settings, token_report
from vs2_plugin.modeling.geometry import AUDIO_DEFAULTS, VIDEO_DEFAULTS
from vs2_plugin.modeling.interleave import LF_VIDEO_MAX_PIXELS, LF_VIDEO_MIN_PIXELS


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="video or audio file")
    parser.add_argument("--model", metavar="DIR", help="model directory to read settings from")
    parser.add_argument("--fps", type=float, dest="fps", help=f"frames per second phi (default {VIDEO_DEFAULTS.fps:g})")
    parser.add_argument(
        "--max-frames", type=int, dest="max_frames", help=f"maximum frames m (default {VIDEO_DEFAULTS.max_frames})"
    )
    parser.add_argument(
        "--window",
        type=float,
        dest="window_s",
        help=f"audio Q-Former window, seconds (default {AUDIO_DEFAULTS.window_s:g})",
    )
    parser.add_argument(
        "--queries",
        type=int,
        dest="queries_per_window",
        help=f"audio tokens per window (default {AUDIO_DEFAULTS.queries_per_window})",
    )
    parser.add_argument("--group-size", type=int, dest="group_size", help="frames per temporal group (default 2)")
    parser.add_argument(
        "--video-max-pixels",
        type=int,
        dest="video_max_pixels",
        help=f"LLaMA-Factory frame cap (default {LF_VIDEO_MAX_PIXELS})",
    )
    parser.add_argument(
        "--video-min-pixels",
        type=int,
        dest="video_min_pixels",
        help=f"LLaMA-Factory frame floor (default {LF_VIDEO_MIN_PIXELS})",
    )
    parser.add_argument(
        "--min-duration",
        type=float,
        dest="min_duration_s",
        help="reject shorter clips, as read_media does (default 1 s)",
    )
    parser.add_argument(
        "--positions", action="store_true", help="add the M-RoPE [t, h, w] of every video and audio token"
    )


def run(args: argparse.Namespace) -> int:
    report = token_report(args.file, resolve_settings(args), positions=bool(getattr(args, "positions", False)))
    print(json.dumps(report, indent=1))
    return 0
