"""Durable run records: an append-only JSONL log and the step state of a pipeline run.

A run is days of GPU time; everything here is written so that ``kill -9`` at any instant
loses at most the line being written: each JSONL line is flushed and fsynced on its own, a
torn last line is ignored on reading, and the state file is replaced atomically.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from vs2_plugin.errors import DataError
from vs2_plugin.gdpo.rounds import atomic_write_text, utc_now


class JsonlLog:
    """Append-only JSONL keyed by ``key``; safe to reopen after a crash."""

    def __init__(self, path: str | Path, key: str = "key"):
        self.path = Path(path)
        self.key = key
        self._lock = threading.Lock()

    def rows(self) -> list[dict[str, Any]]:
        if not self.path.is_file():
            return []
        out = []
        with open(self.path, encoding="utf-8") as f:
            for line in f:
                if not line.endswith("\n"):
                    break  # torn write from an interrupted run: redo that item
                line = line.strip()
                if line:
                    try:
                        out.append(json.loads(line))
                    except json.JSONDecodeError:
                        continue
        return out

    def by_key(self) -> dict[str, dict[str, Any]]:
        return {row[self.key]: row for row in self.rows() if self.key in row}

    def append(self, row: dict[str, Any]) -> None:
        data = json.dumps(row, ensure_ascii=False) + "\n"
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._truncate_torn_tail()
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())

    def _truncate_torn_tail(self) -> None:
        if not self.path.is_file() or self.path.stat().st_size == 0:
            return
        with open(self.path, "rb+") as f:
            f.seek(-1, os.SEEK_END)
            if f.read(1) == b"\n":
                return
            f.seek(0)
            data = f.read()
            f.seek(0)
            f.truncate(data.rfind(b"\n") + 1)


def write_jsonl_atomic(path: str | Path, rows: Iterable[dict[str, Any]]) -> None:
    atomic_write_text(Path(path), "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    p = Path(path)
    rows = []
    with open(p, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise DataError(f"{p}:{n}: not valid JSON ({exc.msg})") from None
    return rows


class StepState:
    """``<run_dir>/pipeline_state.json``: which steps of which round are done, and their results."""

    FILE = "pipeline_state.json"

    def __init__(self, run_dir: str | Path):
        self.path = Path(run_dir) / self.FILE
        self.data: dict[str, Any] = {"rounds": {}, "stopped": None}
        if self.path.is_file():
            self.data = json.loads(self.path.read_text(encoding="utf-8"))

    def _round(self, index: int) -> dict[str, Any]:
        return self.data["rounds"].setdefault(str(index), {"steps": {}, "results": {}})

    def done(self, index: int, step: str) -> bool:
        return step in self._round(index)["steps"]

    def result(self, index: int, step: str) -> Any:
        return self._round(index)["results"].get(step)

    def mark(self, index: int, step: str, result: Any = None) -> None:
        r = self._round(index)
        r["steps"][step] = utc_now()
        if result is not None:
            r["results"][step] = result
        self.save()

    def stop(self, index: int, reason: str) -> None:
        self.data["stopped"] = {"round": index, "reason": reason}
        self.save()

    @property
    def stopped(self) -> dict[str, Any] | None:
        return self.data.get("stopped")

    def save(self) -> None:
        atomic_write_text(self.path, json.dumps(self.data, indent=2) + "\n")
