"""``vs2 caption``: caption videos with a trained model, in batches.

The model is ``--model DIR`` (+ ``--adapters A B ...``, merged in that order) or ``--run
RUN_DIR``: an mrDPO run (its ``final_model.json``: base + every adapter; prompts, media and
length settings from its ``config.json``) or a rebirth output folder (the post-alignment
model + the rebirth adapter).

Input ``--videos LIST.jsonl``, one video per line (the driver's video lists work as they are)::

    {"id": "v1", "video": "clips/v1.mp4", "reference": "...",
     "local": [{"start": 0, "end": 3, "reference": "..."}]}

``video`` is resolved against the list's folder; ``reference`` (or ``label``) is optional.
``--task global`` captions the whole video with the project's global prompt, ``local``
captions each ``local`` interval with the local prompt, ``both`` does both.

Output ``--out predictions.jsonl``: one row per video and task (per interval for ``local``)
in LLaMA-Factory's ``generated_predictions.jsonl`` shape plus identifiers::

    {"key": "v1/global", "id": "v1", "video": "/abs/clips/v1.mp4", "video_fingerprint": "...",
     "task": "global", "prompt": "<video>Provide a comprehensive ...", "predict": "...",
     "label": "...", "finish_reason": "stop"}

(``label`` only when the list has a reference; ``start`` / ``end`` on local rows). ``vs2 eval
--input predictions.jsonl`` judges it directly. Each row is appended and fsynced as soon as its
batch ends, so a rerun resumes with the missing rows. A kept row whose video (by its contents:
a moved data folder keeps its rows), label or prompt is no longer what the list gives for its
key (the list was edited since) is captioned again and its row replaced, with a warning naming
the ids: the output follows the current list. Rows of ids the list no longer has are moved to
``<name>.unlisted.jsonl`` beside it, with a warning. An
existing ``--out`` that is not a predictions file of this command (a complete line that is not
one of its rows) is refused and left untouched, ``--overwrite`` or not. Videos that cannot be used (missing,
unreadable, malformed row or line) never stop the run: they are printed and listed in
``<name>.bad_videos.jsonl`` beside ``--out <name>.jsonl`` with their line and reason, and a rerun tries them again. A local
interval that is malformed, past the video's end or a repeat of an earlier one of its row is listed alone; the video's other captions
are still made.

``<name>.settings.json`` beside it records what the captions depend on (model and adapters, by
their contents as well as their paths, task, prompts, loading arguments, new-token budget,
decoding); a rerun into the same ``--out`` with other
settings is refused (naming them) rather than mixing captions: choose a new ``--out`` or pass
``--overwrite`` to start afresh. Another ``--task`` is no difference (its rows have other keys).

Decoding is greedy by default; ``--temperature T`` samples (top-p ``--top-p``), seeded per row
from ``--seed`` and the row's key.
The work is done by :mod:`vs2_plugin.pipeline.caption`.
"""

from __future__ import annotations

import sys
from pathlib import Path

from vs2_plugin.errors import ConfigError, Vs2Error
from vs2_plugin.pipeline import console
from vs2_plugin.pipeline.caption import (
    bad_row_text,
    caption_videos,
    check_options,
    check_video_list,
    command_settings,
)
from vs2_plugin.pipeline.config import SamplingConfig


def configure_parser(parser) -> None:
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--model", help="model directory (e.g. the post-alignment checkpoint)")
    src.add_argument("--run", help="an mrDPO run dir (final_model.json) or a rebirth output dir")
    parser.add_argument("--adapters", nargs="+", default=[], help="LoRA adapters on --model, merged in order")
    parser.add_argument("--videos", required=True, help="JSONL: id, video, optional reference and local intervals")
    parser.add_argument("--out", required=True, type=Path, help="predictions JSONL (appended; a rerun resumes)")
    parser.add_argument(
        "--overwrite", action="store_true", help="start --out afresh (its captions made with other settings)"
    )
    parser.add_argument("--task", choices=("global", "local", "both"), default="global", help="default: global")
    parser.add_argument(
        "--batch-size",
        type=int,
        default=SamplingConfig.batch_size,
        help=f"prompts per generate call (default {SamplingConfig.batch_size})",
    )
    dec = parser.add_mutually_exclusive_group()
    dec.add_argument("--greedy", action="store_true", help="greedy decoding (the default)")
    dec.add_argument("--temperature", type=float, help="sample at this temperature instead of greedy decoding")
    parser.add_argument(
        "--top-p",
        type=float,
        help=f"top-p when sampling (with --temperature), in (0, 1]; default {SamplingConfig.top_p}",
    )
    parser.add_argument("--seed", type=int, default=42, help="run seed of the per-row sampling seeds (default 42)")
    parser.add_argument(
        "--max-new-tokens",
        type=int,
        help=f"default: the run's sampling.max_new_tokens, else {SamplingConfig.max_new_tokens}",
    )
    parser.add_argument(
        "--infer",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        help="LLaMA-Factory model/data arguments for loading (e.g. video_fps=1.0 video_maxlen=30)",
    )
    parser.add_argument("--no-progress", action="store_true")
    console.add_console_arguments(parser)


def run(args) -> int:
    settings = command_settings(args.model, args.adapters, args.run, args.max_new_tokens, args.infer)
    # what needs neither the model nor the videos is checked before the console opens its log beside --out
    if args.top_p is not None and args.temperature is None:
        raise ConfigError("--top-p applies when sampling: give --temperature too (without it decoding is greedy)")
    top_p = SamplingConfig.top_p if args.top_p is None else args.top_p
    check_options(Path(args.out), args.batch_size, args.temperature, top_p)
    check_video_list(Path(args.videos))
    # the library output of loading and generating goes to logs/caption.log beside the predictions
    with console.run_console(Path(args.out).resolve().parent / "logs" / "caption.log", args, "vs2 caption"):
        result = caption_videos(
            settings,
            Path(args.videos),
            args.out,
            task=args.task,
            batch_size=args.batch_size,
            temperature=args.temperature,
            top_p=top_p,
            seed=args.seed,
            progress=not args.no_progress,
            overwrite=args.overwrite,
        )
    for bad in result["bad_videos"]:
        print(f"vs2 caption: {bad_row_text(bad)}", file=sys.stderr)
    print(
        f"{result['rows']} caption(s) in {result['out']} ({result['new']} new)"
        + (
            f"; {len(result['bad_videos'])} bad video(s) or interval(s) listed in {result['bad_videos_file']}"
            if result["bad_videos"]
            else ""
        )
    )
    if result["rows"] == 0 and result["bad_videos"]:
        raise Vs2Error(f"no video of {args.videos} could be captioned (see {result['bad_videos_file']})")
    return 0
