"""``vs2 mrdpo CONFIG [key=value ...]``: the multi-round DPO driver (paper sec. 3.3, Fig. 2-3, App. F).

Per round t: sample two captions per video (global, and local for a time interval) from the
current model -> judge them through the ``vs2_*`` hooks -> select pairs with round t's
thresholds -> train one gDPO round with a fresh LoRA proxy (the previous LoRAs merged into the
frozen reference) -> evaluate on the held-out split -> ``vs2_after_round``. It stops early when
the held-out unnatural-pattern rate passes ``stop_unnatural_rate`` (the paper's signal).

Resumable at every step: each step's output is written durably before the step is marked
done in ``<run_dir>/pipeline_state.json``; sampling and judging keep every finished item, and
an interrupted gDPO round resumes from its last checkpoint. A rerun skips what is done.
The work is :func:`vs2_plugin.pipeline.mrdpo.run_mrdpo`.
"""

from __future__ import annotations

from pathlib import Path

from vs2_plugin.pipeline import console
from vs2_plugin.pipeline.config import load_mrdpo_config
from vs2_plugin.pipeline.mrdpo import run_mrdpo

#: flags may follow the key=value overrides (vs2 mrdpo CONFIG rounds=2 --no-progress)
INTERMIXED = True


def configure_parser(parser) -> None:
    parser.add_argument("config", help="driver YAML (see recipes/mrdpo.yaml)")
    parser.add_argument(
        "overrides",
        nargs="*",
        metavar="key=value",
        help="override config keys as llamafactory-cli does, e.g. rounds=2 sampling.top_p=0.8",
    )
    parser.add_argument("--run-dir", help="override run_dir")
    parser.add_argument("--rounds", type=int, help="override the number of rounds")
    parser.add_argument("--no-progress", action="store_true")
    console.add_console_arguments(parser)


def run(args) -> int:
    cfg = load_mrdpo_config(args.config, args.overrides, run_dir=args.run_dir, rounds=args.rounds)
    with console.run_console(Path(cfg.run_dir) / "logs" / "mrdpo.log", args, "vs2 mrdpo"), console.stage("mrDPO"):
        summary = run_mrdpo(cfg, progress=not args.no_progress)
    console.print_summary(
        summary["report_md"],
        summary["rows"],
        f"report: {summary['run_dir']}/report.md, report.html, rounds.png; logs: {summary['run_dir']}/logs/",
    )
    return 0
