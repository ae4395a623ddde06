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

from vs2_plugin.errors import ConfigError, DataError
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


# ----------------------------------------------------------------------------- finished runs

FINAL_MODEL = "final_model.json"
#: LLaMA-Factory's ``finetuning_type`` values that save a PEFT adapter (``full`` / ``freeze`` save a model)
ADAPTER_TUNING = ("lora", "oft")


def write_final_model(run_dir: Path, model: str, adapters: list[str]) -> None:
    """``<run_dir>/final_model.json`` of a finished mrDPO run: its base and adapters, and the folder
    it was written in (``run_dir``), so that adapters inside that folder are found where it is now."""
    payload = {"model": model, "adapters": adapters, "run_dir": str(run_dir)}
    atomic_write_text(Path(run_dir) / FINAL_MODEL, json.dumps(payload, indent=2))


def relocated(path: str, recorded_dir: str | None, run_dir: Path) -> str:
    """``path``, recorded while its run folder was ``recorded_dir``, read from where the folder is now
    (``run_dir``): a path inside the folder moves with it; any other path is as recorded."""
    if recorded_dir:
        try:
            return str(Path(run_dir) / Path(path).relative_to(recorded_dir))
        except ValueError:
            pass
    return str(path)


def finished_model(run_dir: Path, name: str = "{}") -> tuple[str, list[str]]:
    """(model, adapters) of a finished run folder: an mrDPO run's ``final_model.json``, or a ``vs2
    rebirth`` output folder's trained model: the post-alignment model + its LoRA adapter, or the
    fully fine-tuned model alone; ConfigError naming the folder otherwise (``name``: how, ``{}`` the
    path: ``"--run {}"`` for a command's flag)."""
    run_dir = Path(run_dir)
    if not run_dir.exists():
        raise ConfigError(f"{name.format(run_dir)}: not found")
    if not run_dir.is_dir():
        raise ConfigError(f"{name.format(run_dir)}: not a directory")
    final = run_dir / FINAL_MODEL
    if final.is_file():
        try:
            data = json.loads(final.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise DataError(f"{final}: not valid JSON ({exc.msg})") from None
        model = data.get("model_name_or_path") or data.get("model")
        adapters = data.get("adapter_name_or_path", data.get("adapters")) or []
        if isinstance(adapters, str):
            adapters = [a.strip() for a in adapters.split(",") if a.strip()]
        if not model:
            raise ConfigError(f"{final}: no model path")
        return str(model), [relocated(str(a), data.get("run_dir"), run_dir) for a in adapters]
    trained = StepState(run_dir).result(0, "train") if (run_dir / StepState.FILE).is_file() else None
    if trained and trained.get("model"):
        model = relocated(str(trained["model"]), trained.get("run_dir"), run_dir)
        if trained.get("finetuning_type") not in (None, *ADAPTER_TUNING):  # full / freeze: the model itself
            return model, []
        if trained.get("adapter"):
            adapter = Path(relocated(str(trained["adapter"]), trained.get("run_dir"), run_dir))
            # recorded as an adapter before full fine-tuning was told apart: the folder says which it is
            if not (adapter / "adapter_config.json").is_file() and (adapter / "config.json").is_file():
                return str(adapter), []
            return model, [str(adapter)]
    raise ConfigError(
        f"{run_dir}: not a finished run: neither an mrDPO run (no {FINAL_MODEL}) nor a finished rebirth "
        f"output folder (no trained model in {StepState.FILE}); finish the run first"
    )
