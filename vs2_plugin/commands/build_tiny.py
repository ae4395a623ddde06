"""``vs2 build-tiny --out DIR``: a tiny random video-SALMONN 2 model directory, offline, in seconds on CPU.

The directory holds everything LLaMA-Factory needs with ``model_name_or_path: DIR`` (tokenizer,
processor, ``config.json``, ``model.safetensors``); the same ``--seed`` gives the same files.
``--window`` sets the audio Q-Former window (default: the paper's, from
:data:`vs2_plugin.modeling.geometry.AUDIO_DEFAULTS`); ``--text-only`` writes a plain tiny Qwen2
text LLM instead. An existing non-empty ``--out`` is refused (it may hold encoders pretrained since)
unless ``--overwrite``; the folder is written beside ``--out`` and renamed when complete, so a build
that fails leaves ``--out`` as it was. The work is :func:`vs2_plugin.modeling.tiny.build_tiny_model`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from vs2_plugin.errors import ConfigError
from vs2_plugin.gdpo.rounds import atomic_directory
from vs2_plugin.modeling.geometry import AUDIO_DEFAULTS
from vs2_plugin.modeling.tiny import build_tiny_model, build_tiny_text_model


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="model directory to write")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the weights (default 0)")
    parser.add_argument("--window", type=float, help=f"audio window in seconds (default {AUDIO_DEFAULTS.window_s:g})")
    parser.add_argument("--text-only", action="store_true", help="write a plain tiny Qwen2 text LLM instead")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing model folder at --out")


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: an existing file; the model is a folder")
    if args.text_only and args.window is not None:
        raise ConfigError("--window is the audio Q-Former's window; a --text-only model has no audio branch")
    # it may hold a model trained further (encoders pretrained by vs2 synth-encoders), as vs2 build refuses
    if out.is_dir() and any(out.iterdir()) and not args.overwrite:
        raise ConfigError(f"--out {out} exists and is not empty; pass --overwrite to replace it")
    # written beside --out and renamed when complete: a failed build (a bad --window) leaves --out as it was
    with atomic_directory(out) as tmp:
        if args.text_only:
            build_tiny_text_model(tmp, seed=args.seed)
        else:
            build_tiny_model(tmp, seed=args.seed, audio_window_s=args.window)
    print(out)
    return 0
