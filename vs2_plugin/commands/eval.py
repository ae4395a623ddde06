"""``vs2 eval``: judge captions against atomic events and write a Table-1 style report.

Input JSONL, one caption per line::

    {"id": "v1", "caption": "...", "events": ["...", ...], "task": "global"}
    {"id": "v2", "caption": "...", "reference": "..."}        # events extracted by the judge
    {"key": "v3/global", "predict": "...", "label": "...", "task": "global"}   # vs2 caption output

Output: ``--out report.json`` with ``items`` (one entry per input line: ``event_scores``,
``missed``, ``incorrect``, ``hallucinated``, ``miss_rate``, ``hall_rate``, ``rep_rate``, ...
or ``status: failed`` + ``error`` and no rates) and ``summary``; the same summary as a
Markdown table in ``report.md`` next to it, also printed, and ``report.html`` (each caption with
its missed events and highlighted hallucinations; frames and audio when a row names its
``video``). Exit status 1 if any item failed.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from vs2_plugin.commands.judge_args import add_judge_arguments, config_from_args
from vs2_plugin.files import numbered_jsonl
from vs2_plugin.gdpo.rounds import atomic_write_text
from vs2_plugin.judge.evaluation import build_report, check_report_path, load_items
from vs2_plugin.judge.report import failures_markdown, table1_markdown
from vs2_plugin.secrets import redact

#: what an interrupted run leaves (vs2_plugin.cli): the report is written once every item is judged
INTERRUPTED = (
    "no report written; a rerun judges every item again (answers a judge cached, as openai does, are not asked again)"
)


def configure_parser(parser) -> None:
    parser.add_argument(
        "--input",
        type=Path,
        required=True,
        help="JSONL with id, caption, events (or reference), optional task; or vs2 caption output (predict, label)",
    )
    parser.add_argument(
        "--out", type=Path, required=True, help="report JSON path; the Markdown table goes next to it (.md)"
    )
    parser.add_argument(
        "--name", default=None, help="name of the captioner for the table title (default: input file stem)"
    )
    add_judge_arguments(parser)


def run(args) -> int:
    from vs2_plugin.judge.runner import judge_items

    check_report_path(args.out, args.input)  # report.md / report.html are written beside it
    config = config_from_args(args)
    numbered = numbered_jsonl(args.input)  # read once: --input may be a pipe (/dev/stdin)
    items = load_items(args.input, numbered)
    start = time.perf_counter()
    judgments = judge_items(items, config)
    seconds = time.perf_counter() - start
    report = build_report(items, judgments, config, args.input, seconds)
    rows, summary = report["items"], report["summary"]
    # written to a temporary name and renamed: a killed run leaves no half report
    atomic_write_text(args.out, redact(json.dumps(report, ensure_ascii=False, indent=1)) + "\n")
    judge = config.judge + (f", {report['model']}" if report["model"] else "")
    markdown = table1_markdown(summary, name=args.name or args.input.stem, judge=judge)
    md_path = args.out.with_suffix(".md")
    failures = failures_markdown(rows)  # the page lists them per item; the Markdown names them here
    atomic_write_text(md_path, markdown + failures)
    from vs2_plugin.pipeline.html_report import write_eval_html

    html_path = write_eval_html(
        args.out.with_suffix(".html"),
        args.name or args.input.stem,
        markdown,
        items,
        rows,
        [row for _, row in numbered],
        args.input,
    )
    print(markdown + failures)
    failed = summary["all"]["n_failed"]
    if failed:
        print(
            f"vs2 eval: {failed} of {len(rows)} item(s) failed to be judged; see 'status'/'error' in {args.out}",
            file=sys.stderr,
        )
    print(f"wrote {args.out}, {md_path} and {html_path}", file=sys.stderr)
    return 1 if failed else 0
