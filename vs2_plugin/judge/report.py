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


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}"


def table1_markdown(summary: dict[str, dict[str, Any]], name: str = "captions", judge: str = "") -> str:
    """Markdown table like the paper's Table 1, one row per task, plus failures and unnatural rate."""
    lines = [
        f"### Caption evaluation: {name}" + (f" (judge: {judge})" if judge else ""),
        "",
        "| Task | Items (ok/failed) | %Rep↓ | %Miss↓ | %Incorrect↓ | %Hallucination↓ | %Hall↓ | %Total↓ | %Unnatural↓ |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for task in ("global", "local"):
        if task not in summary:
            continue
        s = summary[task]
        lines.append(
            f"| {task} | {s['n_ok']}/{s['n_failed']} | {_pct(s['rep_rate'])} | {_pct(s['miss_rate'])} | "
            f"{_pct(s['incorrect_rate'])} | {_pct(s['hallucination_rate'])} | {_pct(s['hall_rate'])} | "
            f"{_pct(s['total_rate'])} | {_pct(s['unnatural_rate'])} |"
        )
    lines += [
        "",
        "Rates are means over judged items of counts / reference events (Hall = Incorrect + "
        "Hallucination, Total = Miss + Hall); failed items are excluded from the means and counted apart.",
    ]
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
