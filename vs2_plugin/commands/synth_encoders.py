"""``vs2 synth-encoders --model DIR --data DIR``: pretrain a tiny model's vision tower and Whisper
encoder on synthetic clips, in place (the tiny stand-in for pretrained encoders).

    vs2 synth --out data/synth --n-train 400
    vs2 build-tiny --out tiny
    vs2 synth-encoders --model tiny --data data/synth --steps 2000

Only the encoders change; the language model and the audio aligner are left as they are, so
the model still cannot caption. ``--infer-recipe`` names the YAML whose media arguments
(``video_fps``, ``video_maxlen``, ``video_max_pixels``, ``use_audio_in_video``) build the
inputs, the recipe the model is trained with next. Why and how: :mod:`vs2_plugin.synth.encoders`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from vs2_plugin.errors import ConfigError
from vs2_plugin.files import load_mapping
from vs2_plugin.synth.encoders import EncoderPretrainConfig

_DEFAULTS = EncoderPretrainConfig.__dataclass_fields__
#: what Ctrl-C leaves: the encoders are written back only once trained, and a rerun starts over
INTERRUPTED = "the model is unchanged (the encoders are written once trained); run it again"


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="tiny model directory (vs2 build-tiny), changed in place")
    parser.add_argument("--data", required=True, help="vs2 synth output folder; its train clips are used")
    parser.add_argument(
        "--steps", type=int, default=_DEFAULTS["steps"].default, help=f"steps (default {_DEFAULTS['steps'].default})"
    )
    parser.add_argument(
        "--lr", type=float, default=_DEFAULTS["lr"].default, help=f"learning rate (default {_DEFAULTS['lr'].default:g})"
    )
    parser.add_argument("--seed", type=int, default=_DEFAULTS["seed"].default, help="seed (default 0)")
    parser.add_argument(
        "--infer-recipe",
        help="YAML recipe whose video_* / use_audio_in_video arguments build the inputs "
        "(default: the tiny SFT recipe, recipes/tiny/av_sft.yaml)",
    )
    parser.add_argument("--verbose", action="store_true", help="show library messages (else in logs/ beside --model)")


def run(args: argparse.Namespace) -> int:
    from vs2_plugin.pipeline import console
    from vs2_plugin.pipeline.plan import recipes_dir
    from vs2_plugin.synth.encoders import media_arguments, pretrain_encoders

    recipe = Path(args.infer_recipe or recipes_dir() / "av_sft.yaml")
    if not recipe.is_file():
        raise ConfigError(f"--infer-recipe {recipe}: not found")
    infer = media_arguments(load_mapping(recipe))  # a recipe that is no YAML mapping: one line naming it
    config = EncoderPretrainConfig(
        model=args.model, data=args.data, infer=infer, steps=args.steps, lr=args.lr, seed=args.seed
    )
    # the library output of loading and training goes to logs/ beside the model folder
    with console.run_console(
        Path(args.model).resolve().parent / "logs" / "synth_encoders.log", args, "vs2 synth-encoders"
    ):
        with console.step(f"pretrain the encoders ({args.steps} steps)"):
            result = pretrain_encoders(config)
    print(json.dumps(result))
    return 0
