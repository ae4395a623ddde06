"""Per-round held-out metrics of the mrDPO driver to ``report_to`` trackers (TensorBoard).

Each round's held-out Rep / Miss / Hall / Total and unnatural-pattern rate go out as scalars
``heldout/<task>/<metric>`` at step = round index (0 = the starting model), the numbers of
``metrics.json``. The event files live in ``<run_dir>/runs`` (``tensorboard --logdir
<run_dir>/runs``). Written with tensorboardX, which needs neither TensorFlow nor the
``tensorboard`` package.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

METRICS = ("rep", "miss", "hall", "total", "unnatural")


def round_scalars(metrics: dict[str, Any]) -> dict[str, float]:
    """``{"heldout/global/miss": 0.41, ...}`` from a round's ``{task: {metric: value}}`` (None left out)."""
    out = {}
    for task, values in sorted(metrics.items()):
        if not isinstance(values, dict):
            continue
        for name in METRICS:
            if values.get(name) is not None:
                out[f"heldout/{task}/{name}"] = float(values[name])
    return out


def report_round(targets: list[str], run_dir: Path, round_index: int, metrics: dict[str, Any]) -> None:
    """Send one round's metrics to every target of ``report_to`` (``none`` sends nothing)."""
    if "tensorboard" in targets or "all" in targets:
        from tensorboardX import SummaryWriter

        # one file per round: two writers opened in the same second would share a file name
        writer = SummaryWriter(logdir=str(Path(run_dir) / "runs"), filename_suffix=f".round-{round_index:03d}")
        try:
            for tag, value in round_scalars(metrics).items():
                writer.add_scalar(tag, value, global_step=round_index)
        finally:
            writer.close()
