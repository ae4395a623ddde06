"""``vs2 demo [--out DIR]``: the whole pipeline on the tiny offline model and synthetic clips.

synthetic clips with exactly known events (``vs2 synth``) -> build-tiny -> encoder pretraining ->
text-only language pretraining -> audio alignment -> audio-visual SFT -> 2 mrDPO rounds
(``--rounds``; judged by the clips' exact judge, ``synth_exact``) -> rebirth tuning -> 1 more
gDPO round -> report (``report.md``, ``report.html``, ``metrics.json``, ``rounds.png``).
The terminal shows one line per step and the stage table; every library message goes to
``logs/demo.log`` (``--verbose`` shows them).
CPU only, no network, a few minutes. Each stage is skipped when its output already exists, so
an interrupted demo resumes. The report also checks that every stage changed the weights:
the merged model of each stage is compared with the previous stage's.
The work is :func:`vs2_plugin.pipeline.demo.run_demo`.
"""

from __future__ import annotations

from pathlib import Path

from vs2_plugin.errors import ConfigError
from vs2_plugin.pipeline import console
from vs2_plugin.pipeline.demo import run_demo


def configure_parser(parser) -> None:
    parser.add_argument("--out", default="outputs/demo", help="output folder (default: outputs/demo)")
    parser.add_argument("--rounds", type=int, default=2, help="mrDPO rounds before rebirth (default 2)")
    parser.add_argument("--no-progress", action="store_true", help="no live progress bars (one line per finished step)")
    console.add_console_arguments(parser)


def run(args) -> int:
    if args.rounds < 1:  # said of the option given, before the plan it fills refuses it (or --out is made)
        raise ConfigError(f"--rounds must be >= 1; got {args.rounds}")
    with console.run_console(Path(args.out) / "logs" / "demo.log", args, "vs2 demo"):
        result = run_demo(Path(args.out), rounds=args.rounds, progress=not args.no_progress)
    console.print_summary(
        result["report_md"],
        result["rows"],
        f"report: {result['out']}/report.md, report.html, metrics.json, rounds.png; logs: {result['out']}/logs/",
    )
    return 0
