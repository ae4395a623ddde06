"""The LoRA-proxy round hook of mrDPO (paper sec. 3.3, eq. 10) and the multi-round state.

Between rounds ``t-1`` and ``t`` (:func:`vs2_plugin.gdpo.workflow._run_round`):

1. merge — ``W_t = W_{t-1} + scale * B_{t-1} A_{t-1}`` for every adapted layer (trainable
   non-LoRA modules kept in the adapter as ``modules_to_save`` replace their frozen originals);
2. reference — the merged backbone, frozen, is the round's reference (the policy with its
   adapter disabled);
3. fresh LoRA — a new adapter with the same config and a new random initialisation (``B = 0``,
   so the new policy starts equal to the reference).

``gdpo_round_hook: memory`` has LLaMA-Factory load the base with every earlier round's adapter
merged in order and create a new one (``create_new_adapter``); ``export`` writes the merged
reference as a checkpoint with LLaMA-Factory's ``export_model`` (:func:`export_merged`, what
``llamafactory-cli export`` runs; atomically, rank 0 only) and loads it, for setups where
merging at load is unavailable (DeepSpeed ZeRO-3, quantized models).

:class:`RoundState` is the on-disk record of a multi-round run (``rounds.json``).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import shutil
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from vs2_plugin.errors import ConfigError

STATE_FILE = "rounds.json"
STATE_FORMAT = "vs2-gdpo-rounds/1"


# --------------------------------------------------------------------------------- atomic files
def fsync_tree(path: Path) -> None:
    """fsync every file and folder under ``path`` (and ``path`` itself)."""
    for root, _dirs, files in os.walk(path):
        for name in files:
            with open(os.path.join(root, name), "rb") as handle:
                os.fsync(handle.fileno())
        fd = os.open(root, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextmanager
def atomic_directory(final: Path):
    """Yield a temp folder next to ``final``; on success fsync it and rename it to ``final``.

    A crash leaves either no ``final`` or a complete one (plus a ``.NAME.tmp-*`` folder that
    the next attempt removes).
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    for stale in final.parent.glob(f".{final.name}.tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)
    tmp = final.parent / f".{final.name}.tmp-{os.getpid()}"
    tmp.mkdir()
    try:
        yield tmp
        fsync_tree(tmp)
        if final.exists():
            old = final.parent / f".{final.name}.tmp-old-{os.getpid()}"
            os.rename(final, old)
            os.rename(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, final)
        fsync_tree_root(final.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def fsync_tree_root(path: Path) -> None:
    """fsync a directory, so a rename or new file in it survives a crash."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_text(path: Path, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:  # text that cannot be written, a full disk, Ctrl-C: no half file left
        tmp.unlink(missing_ok=True)
        raise
    fsync_tree_root(path.parent)


def export_merged(
    backbone: str, adapters: list[str], out_dir: Path, template: str | None, dtype: str, extra: dict | None = None
) -> Path:
    """``llamafactory export`` of backbone + adapters into ``out_dir``, atomically; skip if done."""
    from vs2_plugin.integrations.llamafactory_api import export_model

    out_dir = Path(out_dir)
    if (out_dir / "config.json").is_file():
        return out_dir
    with atomic_directory(out_dir) as tmp:
        args = {
            "model_name_or_path": backbone,
            "adapter_name_or_path": ",".join(adapters),
            "finetuning_type": "lora",
            "export_dir": str(tmp),
            "export_size": 5,
            "export_device": "cpu",
            "infer_dtype": dtype,
            **(extra or {}),
        }
        if template:
            args["template"] = template
        export_model(args)
    return out_dir


def is_main_process() -> bool:
    """Rank 0 of a torchrun job (or a plain process): the one that writes shared files."""
    return int(os.environ.get("RANK", "0")) == 0


def wait_for_file(path: Path, timeout_s: float = 7200.0, poll_s: float = 2.0) -> None:
    """Other ranks wait until rank 0 has published ``path`` (atomic, so existence = complete)."""
    import time

    deadline = time.monotonic() + timeout_s
    while not Path(path).exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} did not appear within {timeout_s:.0f} s")
        time.sleep(poll_s)


# --------------------------------------------------------------------------------- round state
def utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


@dataclass
class RoundRecord:
    """One round of a multi-round run; paths are relative to the run folder.

    ``status``: ``preparing`` (reference being built) -> ``training`` -> ``done``.
    ``reference_model`` + ``merged_adapters`` define the round's reference (memory mode stacks
    the adapters on the model at load time; export mode has them merged into ``reference_model``).
    ``adapter`` is the folder of the round's trained LoRA (the round folder itself).
    ``gt_match_rate``: share of the round's pairs whose ground truth is their own video and prompt.
    """

    round: int
    status: str = "preparing"
    dir: str = ""
    reference_model: str = ""
    merged_adapters: list[str] = field(default_factory=list)
    adapter: str | None = None
    ref_cache: str | None = None
    global_step: int | None = None
    gt_match_rate: float | None = None
    started: str = field(default_factory=utc_now)
    finished: str | None = None


@dataclass
class RoundState:
    """``<run>/rounds.json``: which round, which adapters are merged, where each round lives."""

    root: Path
    base_model: str
    round_hook: str
    initial_adapters: list[str] = field(default_factory=list)
    rounds: list[RoundRecord] = field(default_factory=list)

    @classmethod
    def load_or_create(
        cls, root: Path, base_model: str, round_hook: str, initial_adapters: list[str] | None = None
    ) -> "RoundState":
        """Open ``root/rounds.json`` (or start one); ``initial_adapters`` (e.g. the SFT LoRA) are
        merged into the reference of round 1."""
        root = Path(root)
        path = root / STATE_FILE
        initial_adapters = list(initial_adapters or [])
        if not path.is_file():
            state = cls(root, base_model, round_hook, initial_adapters)
            state.save()
            return state
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("format") != STATE_FORMAT:
            raise ConfigError(f"{path}: not a gDPO round state (format {data.get('format')!r})")
        if data["base_model"] != base_model:
            raise ConfigError(
                f"{path}: this run started from model {data['base_model']!r}, not {base_model!r}; "
                "keep model_name_or_path or use another output_dir"
            )
        if data["round_hook"] != round_hook:
            raise ConfigError(f"{path}: this run uses gdpo_round_hook={data['round_hook']!r}, not {round_hook!r}")
        if data["initial_adapters"] != initial_adapters:
            raise ConfigError(
                f"{path}: this run started from adapters {data['initial_adapters']!r}, not {initial_adapters!r}"
            )
        rounds = [RoundRecord(**record) for record in data["rounds"]]
        return cls(root, data["base_model"], data["round_hook"], data["initial_adapters"], rounds)

    def save(self) -> None:
        if not is_main_process():
            return
        payload = {
            "format": STATE_FORMAT,
            "base_model": self.base_model,
            "round_hook": self.round_hook,
            "initial_adapters": self.initial_adapters,
            "rounds": [asdict(record) for record in self.rounds],
        }
        atomic_write_text(self.root / STATE_FILE, json.dumps(payload, indent=2) + "\n")

    def record(self, index: int) -> RoundRecord | None:
        return next((r for r in self.rounds if r.round == index), None)

    def next_round(self) -> int:
        """The unfinished round to resume, or the round after the last finished one."""
        for record in self.rounds:
            if record.status != "done":
                return record.round
        return len(self.rounds) + 1

    def round_dir(self, index: int) -> Path:
        return self.root / f"round-{index:03d}"

    def begin(self, index: int) -> RoundRecord:
        """Record (or re-open) round ``index``; the rounds before it must be done."""
        for previous in range(1, index):
            record = self.record(previous)
            if record is None or record.status != "done":
                raise ConfigError(f"gdpo_round={index}: round {previous} is not finished in {self.root / STATE_FILE}")
        record = self.record(index)
        if record is None:
            record = RoundRecord(round=index, dir=self.round_dir(index).name)
            self.rounds.append(record)
            self.save()
        return record

    def adapters_before(self, index: int) -> list[str]:
        """Adapters merged into round ``index``'s reference: the initial ones, then rounds 1..index-1."""
        done = sorted((r for r in self.rounds if r.round < index), key=lambda r: r.round)
        return [*self.initial_adapters, *(str(self.root / r.adapter) for r in done)]

    def update(self, record: RoundRecord, **changes) -> None:
        for key, value in changes.items():
            setattr(record, key, value)
        self.save()
