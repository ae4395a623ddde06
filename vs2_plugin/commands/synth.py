"""``vs2 synth``: synthetic audio-visual clips with exactly known events, and their datasets.

    vs2 synth --out data/synth --seed 0 --n-train 48 --n-heldout 16

Writes short H.264 + AAC clips (coloured shapes that appear / move / disappear, tones, noise
bursts and spoken words at known times), their captions and atomic events, and LLaMA-Factory
datasets in ``--out`` (``dataset_dir``): ``synth_align`` (audio-only captions), ``synth_sft``
(global + local captions), ``synth_sft_heldout``; and the mrDPO video lists ``train.jsonl`` /
``heldout.jsonl``. The same seed gives the same files. Judge captions of these clips exactly
with ``vs2 eval --judge synth_exact``. Layout and rules: :mod:`vs2_plugin.synth.generate`.
"""

from __future__ import annotations

import sys

from vs2_plugin.synth.generate import SynthConfig

_DEFAULTS = SynthConfig(out=".")
#: what Ctrl-C leaves: the datasets are written after the last clip, and a rerun starts over
INTERRUPTED = "the datasets may be missing or an earlier run's; run it again (the same seed writes the same files)"


def configure_parser(parser) -> None:
    parser.add_argument(
        "--out",
        required=True,
        help="output folder (created; files of the same names are overwritten, other files are left, and "
        "dataset_info.json keeps its other datasets)",
    )
    parser.add_argument("--seed", type=int, default=_DEFAULTS.seed, help=f"generation seed (default {_DEFAULTS.seed})")
    parser.add_argument(
        "--n-train", type=int, default=_DEFAULTS.n_train, help=f"training clips (default {_DEFAULTS.n_train})"
    )
    parser.add_argument(
        "--n-heldout", type=int, default=_DEFAULTS.n_heldout, help=f"held-out clips (default {_DEFAULTS.n_heldout})"
    )
    parser.add_argument(
        "--n-text",
        type=int,
        default=_DEFAULTS.n_text,
        help=f"captions of this many more clips, never rendered, as the text corpus synth_text (default {_DEFAULTS.n_text})",
    )
    parser.add_argument(
        "--min-seconds",
        type=float,
        default=_DEFAULTS.min_seconds,
        help=f"shortest clip (default {_DEFAULTS.min_seconds:g})",
    )
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=_DEFAULTS.max_seconds,
        help=f"longest clip (default {_DEFAULTS.max_seconds:g})",
    )
    parser.add_argument(
        "--fps", type=int, default=_DEFAULTS.fps, help=f"frames per second of the clips, even (default {_DEFAULTS.fps})"
    )
    parser.add_argument(
        "--size", type=int, default=_DEFAULTS.size, help=f"width = height in pixels (default {_DEFAULTS.size})"
    )
    parser.add_argument(
        "--fixed-wording", action="store_true", help="captions in the canonical wording only (no synonyms)"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")


def run(args) -> int:
    from vs2_plugin.synth.generate import generate

    config = SynthConfig(
        out=args.out,
        seed=args.seed,
        n_train=args.n_train,
        n_heldout=args.n_heldout,
        n_text=args.n_text,
        min_seconds=args.min_seconds,
        max_seconds=args.max_seconds,
        fps=args.fps,
        size=args.size,
        vary_wording=not args.fixed_wording,
    )

    def progress(done: int, total: int) -> None:
        if not args.quiet:
            print(f"\rvs2 synth: {done}/{total} clips", end="" if done < total else "\n", file=sys.stderr, flush=True)

    manifest = generate(config, progress)
    print(
        f"wrote {manifest['clips']['train']} train + {manifest['clips']['heldout']} held-out clips "
        f"({manifest['events']['train'] + manifest['events']['heldout']} events) to {args.out}"
    )
    return 0
