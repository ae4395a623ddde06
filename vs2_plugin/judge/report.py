"""Table-1 style summaries (paper Table 1: %Rep, %Miss, %Hall, %Total for global and local)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from vs2_plugin.judge.metrics import summarize


def summarize_by_task(rows: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """``{"global": summary, "local": summary, "all": summary}`` (tasks without items omitted)."""
    rows = list(rows)
    out = {}
    for task in ("global", "local"):
        subset = [r for r in rows if r.get("task", "global") == task]
        if subset:
            out[task] = summarize(subset)
    out["all"] = summarize(rows)
    return out


def percent(value: float | None, unit: str = "") -> str:
    """A rate as a percentage with one decimal (and ``unit``); ``None`` (not measured) as n/a,
    never as 0 or a dash."""
    return "n/a" if value is None else f"{100 * float(value):.1f}{unit}"


def table1_markdown(summary: dict[str, dict[str, Any]], name: str = "captions", judge: str = "") -> str:
    """Markdown table like the paper's Table 1, one row per task (and ``all``, the items of both,
    when there are both), plus failures and unnatural rate."""
    lines = [
        f"### Caption evaluation: {name}" + (f" (judge: {judge})" if judge else ""),
        "",
        "| Task | Items (ok/failed) | %Rep↓ | %Miss↓ | %Incorrect↓ | %Hallucination↓ | %Hall↓ | %Total↓ | %Unnatural↓ |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    both = "global" in summary and "local" in summary
    shown = [task for task in ("global", "local", "all") if task in summary and (task != "all" or both)]
    for task in shown:
        s = summary[task]
        lines.append(
            f"| {task} | {s['n_ok']}/{s['n_failed']} | {percent(s['rep_rate'])} | {percent(s['miss_rate'])} | "
            f"{percent(s['incorrect_rate'])} | {percent(s['hallucination_rate'])} | {percent(s['hall_rate'])} | "
            f"{percent(s['total_rate'])} | {percent(s['unnatural_rate'])} |"
        )
    lines += [
        "",
        "Rates are means over judged items of counts / reference events (Hall = Incorrect + "
        "Hallucination, Total = Miss + Hall); failed items are excluded from the means and counted apart.",
    ]
    for task in shown:
        if counts := summary[task].get("partly_measured"):
            measured = ", ".join(f"{key.removesuffix('_rate')} on {n}" for key, n in counts.items())
            lines.append(f"n/a in {task}: the judge measured {measured} of its {summary[task]['n_ok']} items, not all.")
    return "\n".join(lines) + "\n"


def failures_markdown(rows: Iterable[dict[str, Any]], limit: int = 20) -> str:
    """The failed items of a report as a Markdown list (id and why), the first ``limit`` of them;
    empty when none failed: the table only counts them, and a reader needs to know which and why."""
    failed = [r for r in rows if r.get("status") == "failed"]
    if not failed:
        return ""
    lines = ["", f"Failed items ({len(failed)}):", ""]
    lines += [f"- `{r.get('id')}`: {r.get('error') or 'no reason given'}" for r in failed[:limit]]
    if len(failed) > limit:
        lines.append(f"- ... and {len(failed) - limit} more (status 'failed' in the report JSON)")
    return "\n".join(lines) + "\n"
