"""Per-round report of a run: ``metrics.json``, ``report.md`` and ``rounds.png`` (like Fig. 4a / Table 2)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from vs2_plugin.gdpo.rounds import atomic_write_text
from vs2_plugin.judge.report import percent

COLUMNS = (("rep", "Rep"), ("miss", "Miss"), ("hall", "Hall"), ("total", "Total"), ("unnatural", "Unnatural"))


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """Rows: {"stage": ..., "global": {rep, miss, hall, total, unnatural}, "local": {...}}."""
    head = (
        "| Stage | "
        + " | ".join(f"G {name}" for _, name in COLUMNS)
        + " | "
        + " | ".join(f"L {name}" for _, name in COLUMNS[1:4])
        + " | pairs |"
    )
    sep = "|" + "---|" * (2 + len(COLUMNS) + 3)
    lines = [head, sep]
    for row in rows:
        g, l = row.get("global") or {}, row.get("local") or {}
        cells = [percent(g.get(k)) for k, _ in COLUMNS] + [percent(l.get(k)) for k, _ in COLUMNS[1:4]]
        lines.append(f"| {row['stage']} | " + " | ".join(cells) + f" | {row.get('pairs', '-')} |")
    return "\n".join(lines)


def plot_rounds(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [r["stage"] for r in rows]
    x = list(range(len(rows)))
    fig, ax = plt.subplots(figsize=(max(5, 1.1 * len(rows) + 2), 3.6))
    for task, style in (("global", "o-"), ("local", "s--")):
        ys = [(r.get(task) or {}).get("total") for r in rows]
        if any(y is not None for y in ys):
            ax.plot(x, [100 * y if y is not None else float("nan") for y in ys], style, label=f"{task} total error %")
    unnatural = [(r.get("global") or {}).get("unnatural") for r in rows]
    # a stage not measured has no bar (NaN), as it reads n/a in the table, not one of 0 %
    heights = [100 * u if u is not None else float("nan") for u in unnatural]
    ax.bar(x, heights, alpha=0.3, color="red", label="unnatural rate %")
    ax.set_xticks(x)
    ax.set_xticklabels(labels, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("%")
    ax.set_title("Total error and unnatural-pattern rate per stage")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)


def write_report(
    out_dir: Path,
    rows: list[dict[str, Any]],
    title: str,
    extra: dict[str, Any] | None = None,
    notes: list[str] | None = None,
) -> str:
    """Write the three files into ``out_dir``; return the Markdown text."""
    out_dir.mkdir(parents=True, exist_ok=True)
    payload = {"title": title, "stages": rows, **(extra or {})}
    atomic_write_text(out_dir / "metrics.json", json.dumps(payload, indent=2) + "\n")
    plot_rounds(rows, out_dir / "rounds.png")
    text = "\n".join(
        [
            f"# {title}",
            "",
            "Rates in % (G = global captions, L = local captions; Total = Miss + Hall).",
            "",
            markdown_table(rows),
            "",
            *[f"- {n}" for n in (notes or [])],
            "",
            "![rounds](rounds.png)",
            "",
        ]
    )
    atomic_write_text(out_dir / "report.md", text)
    return text
