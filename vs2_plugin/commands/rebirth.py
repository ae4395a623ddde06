"""``vs2 rebirth``: rebirth tuning (paper sec. 3.4).

1. Label a (large) video set with the final mrDPO model (backbone + all merged LoRA proxies).
2. Drop captions with unnatural patterns (and empty or truncated ones).
3. Write the kept captions as a LLaMA-Factory SFT dataset.
4. Train the SFT recipe from the **post-alignment** checkpoint — not from the DPO model — so
   the LLM is "reborn" from teacher forcing on its own best captions.

Besides the trained adapter, ``--out`` holds ``report.md`` / ``report.html`` (every label, kept or
dropped and why, against the video's frames and audio) and ``logs/rebirth.log``. Every step is
resumable: labels are kept per video; the dataset and training rerun only if not finished.
Sampling settings come from the mrDPO config (``--mrdpo-config``), so labelling uses the same
prompts and media settings as the rounds. The work is :func:`vs2_plugin.pipeline.rebirth.run_rebirth`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from vs2_plugin.pipeline import console
from vs2_plugin.pipeline.config import load_mrdpo_config
from vs2_plugin.pipeline.rebirth import run_rebirth


def configure_parser(parser) -> None:
    parser.add_argument(
        "--mrdpo-config", required=True, help="the mrDPO driver YAML (model_name_or_path = post-alignment checkpoint)"
    )
    parser.add_argument("--mrdpo-run", help="run_dir of the finished mrDPO run (default: the config's run_dir)")
    parser.add_argument("--videos", required=True, help="JSONL of videos to label ({id, video}; reference optional)")
    parser.add_argument("--recipe", required=True, help="LLaMA-Factory SFT recipe (e.g. recipes/rebirth_sft.yaml)")
    parser.add_argument("--out", required=True, help="output folder (labels, dataset, trained adapter)")
    parser.add_argument(
        "--greedy", action=argparse.BooleanOptionalAction, default=True, help="greedy labelling (default) or sampling"
    )
    parser.add_argument("--no-progress", action="store_true")
    console.add_console_arguments(parser)


def run(args) -> int:
    cfg = load_mrdpo_config(args.mrdpo_config)
    with console.run_console(Path(args.out) / "logs" / "rebirth.log", args, "vs2 rebirth"), console.stage("rebirth"):
        result = run_rebirth(
            cfg,
            args.videos,
            args.recipe,
            args.out,
            mrdpo_run=args.mrdpo_run,
            greedy=args.greedy,
            progress=not args.no_progress,
        )
    print(json.dumps({k: v for k, v in result.items() if k != "labels"}, indent=2))
    return 0
