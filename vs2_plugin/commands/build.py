"""``vs2 build``: compose a video-SALMONN 2 checkpoint from local parts.

    vs2 build --visual-llm QWEN25VL_DIR --whisper large-v3.pt --out DIR [--window SECONDS ...]

The visual LLM (a Qwen2.5-VL model directory) is copied tensor by tensor, the audio encoder is
the encoder half of an openai-whisper checkpoint, and the audio aligner is randomly initialised
(seeded) for the alignment stage to train. Aligner flags left out take the model config's
defaults (the audio geometry of :data:`vs2_plugin.modeling.geometry.AUDIO_DEFAULTS`, paper
sec. 4.1). The work, and how the new audio tokens' rows are initialised, is described in
:mod:`vs2_plugin.modeling.compose`.
"""

from __future__ import annotations

import argparse

from vs2_plugin.modeling.compose import compose


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--visual-llm", required=True, help="Qwen2.5-VL model directory (safetensors)")
    parser.add_argument("--whisper", required=True, help="openai-whisper checkpoint (.pt), e.g. large-v3.pt")
    parser.add_argument("--out", required=True, help="new model directory (must not exist or be empty)")
    from vs2_plugin.modeling.config import SEGMENT_POSITION_KINDS, VideoSalmonn2Config
    from vs2_plugin.modeling.geometry import AUDIO_DEFAULTS

    default = VideoSalmonn2Config.__dataclass_fields__  # flags left out take the model config's defaults
    parser.add_argument("--window", type=float, help=f"audio window in seconds (default {AUDIO_DEFAULTS.window_s:g})")
    parser.add_argument(
        "--queries", type=int, help=f"Q-Former queries per window (default {AUDIO_DEFAULTS.queries_per_window})"
    )
    parser.add_argument("--qformer-layers", type=int, help=f"default {default['qformer_layers'].default}")
    parser.add_argument("--qformer-hidden", type=int, help=f"default {default['qformer_hidden'].default}")
    parser.add_argument("--qformer-heads", type=int, help=f"default {default['qformer_heads'].default}")
    parser.add_argument(
        "--segment-position",
        choices=SEGMENT_POSITION_KINDS,
        help="segment position embedding: learned matrix (paper, default) or sinusoids (public code)",
    )
    parser.add_argument(
        "--max-segments",
        type=int,
        help=f"longest audio in {AUDIO_DEFAULTS.segment_s:g} s segments (default {default['max_audio_segments'].default})",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the aligner's random init")


def run(args: argparse.Namespace) -> int:
    out = compose(
        args.visual_llm,
        args.whisper,
        args.out,
        audio_window_s=args.window,
        audio_queries_per_window=args.queries,
        qformer_layers=args.qformer_layers,
        qformer_hidden=args.qformer_hidden,
        qformer_heads=args.qformer_heads,
        segment_position=args.segment_position,
        max_audio_segments=args.max_segments,
        seed=args.seed,
    )
    print(out)
    return 0
