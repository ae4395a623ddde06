"""``vs2 export``: merge a checkpoint and its LoRA adapters into one standalone checkpoint.

Sources: ``--run RUN_DIR`` (an mrDPO run: its ``final_model.json``; or a ``vs2 rebirth`` output
folder: the post-alignment checkpoint + the rebirth SFT adapter, or after full fine-tuning the
rebirth SFT model alone) or ``--model DIR --adapters A [A ...]``. The adapters are merged in
the order given, each into the result of the previous ones (what LLaMA-Factory does with
``adapter_name_or_path: a,b``); weights an adapter trains outside LoRA (``modules_to_save``,
e.g. the audio aligner) replace the base's copy.

The output folder holds config, weights (safetensors), generation config, tokenizer, processor
and ``vs2_export.json`` (the sources). The audio branch (Whisper encoder, Q-Former aligner) is
part of the weights. ``config.json`` carries an ``auto_map`` to two small modules written next
to it, so transformers' Auto classes load the checkpoint with ``trust_remote_code=True`` where
only the package is installed; LLaMA-Factory (``llamafactory-cli chat|webchat|api|train``) uses
the registered classes of the plugin and needs no flag.

Merging runs in float32; the weights are saved in ``--dtype`` (default: the dtype the base
checkpoint was saved in). The folder is written to a temporary sibling and renamed when
complete: an interrupted export leaves no partial ``--out``.
The work is done by :mod:`vs2_plugin.modeling.export`.
"""

from __future__ import annotations

from pathlib import Path

from vs2_plugin.errors import ConfigError
from vs2_plugin.modeling.export import DTYPES, check_export, export_merged
from vs2_plugin.pipeline.records import finished_model

#: what ``vs2`` says after Ctrl-C: the checkpoint is written to a temporary sibling and renamed
INTERRUPTED = "nothing was written (--out appears only once complete); run it again"


def configure_parser(parser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--run", help="mrDPO run folder (final_model.json) or vs2 rebirth output folder")
    source.add_argument("--model", help="base checkpoint folder (e.g. the post-alignment checkpoint)")
    parser.add_argument(
        "--adapters", nargs="+", default=[], help="LoRA adapter folders, merged in this order (with --model)"
    )
    parser.add_argument("--out", required=True, help="output folder of the merged checkpoint")
    parser.add_argument(
        "--dtype", choices=DTYPES, default="auto", help="dtype of the saved weights (default: the base's)"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    parser.add_argument("--verbose", action="store_true", help="show library messages (else in logs/ beside --out)")


def run(args) -> int:
    if args.run and args.adapters:
        raise ConfigError("--adapters goes with --model; a --run folder names its own adapters")
    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise ConfigError(f"--out {args.out}: an existing file; the merged checkpoint is a folder")
    # a rebirth folder after full fine-tuning names its trained model and no adapter
    model, adapters = finished_model(Path(args.run), "--run {}") if args.run else (args.model, list(args.adapters))
    check_export(model, adapters, args.out, args.dtype, args.overwrite)  # before the log and its step line
    from vs2_plugin.pipeline import console

    # loading and saving messages (progress bars, library warnings) go to logs/ beside --out
    with console.run_console(Path(args.out).resolve().parent / "logs" / "export.log", args, "vs2 export"):
        with console.step(f"merge {len(adapters)} adapter(s) into {Path(model).name}"):
            out = export_merged(model, adapters, args.out, dtype=args.dtype, overwrite=args.overwrite)
    print(out)
    return 0
