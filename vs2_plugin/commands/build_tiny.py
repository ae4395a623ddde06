"""``vs2 build-tiny --out DIR``: a tiny random video-SALMONN 2 model directory, offline, in seconds on CPU.

The directory holds everything LLaMA-Factory needs with ``model_name_or_path: DIR`` (tokenizer,
processor, ``config.json``, ``model.safetensors``); the same ``--seed`` gives the same files.
``--window`` sets the audio Q-Former window (default: the paper's, from
:data:`vs2_plugin.modeling.geometry.AUDIO_DEFAULTS`); ``--text-only`` writes a plain tiny Qwen2
text LLM instead. The work is :func:`vs2_plugin.modeling.tiny.build_tiny_model`.
"""

from __future__ import annotations

import argparse

from vs2_plugin.modeling.geometry import AUDIO_DEFAULTS
from vs2_plugin.modeling.tiny import build_tiny_model, build_tiny_text_model


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="model directory to write")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the weights (default 0)")
    parser.add_argument("--window", type=float, help=f"audio window in seconds (default {AUDIO_DEFAULTS.window_s:g})")
    parser.add_argument("--text-only", action="store_true", help="write a plain tiny Qwen2 text LLM instead")


def run(args: argparse.Namespace) -> int:
    if args.text_only:
        out = build_tiny_text_model(args.out, seed=args.seed)
    else:
        out = build_tiny_model(args.out, seed=args.seed, audio_window_s=args.window)
    print(out)
    return 0
