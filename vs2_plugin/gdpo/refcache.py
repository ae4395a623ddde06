"""Reference log-probs computed once per round and reused by every step.

Within a round the reference (the merged backbone, i.e. the policy with its adapter off) is
frozen, so ``log ref(y_w|x)`` and ``log ref(y_l|x)`` are constants of each pair. They are
computed in one pass before training and attached to the dataset; with ``gdpo_ref_cache:
disk`` they are also written (atomically) to ``<cache_dir>/ref_logps-<key>.pt``, keyed by a
fingerprint of the pairs and of the reference weights, so a resumed round reads them back
instead of recomputing, and a changed reference or dataset can never reuse stale values.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from vs2_plugin.errors import ConfigError
from vs2_plugin.gdpo.rounds import fsync_tree_root

CACHE_FORMAT = "vs2-gdpo-ref-logps/1"
_PAIR_COLUMNS = ("chosen_input_ids", "chosen_labels", "rejected_input_ids", "rejected_labels")
_MEDIA_COLUMNS = ("images", "videos", "audios")


def dataset_fingerprint(dataset) -> str:
    """sha256 of every pair's token ids, labels and media references, in order."""
    digest = hashlib.sha256()
    columns = [c for c in (*_PAIR_COLUMNS, *_MEDIA_COLUMNS) if c in dataset.column_names]
    for chunk in dataset.select_columns(columns).iter(batch_size=512):
        for column in columns:
            for value in chunk[column]:
                if column in _MEDIA_COLUMNS:
                    digest.update(repr(value).encode())
                else:
                    digest.update(np.asarray(value, dtype=np.int64).tobytes())
                digest.update(b"|")
    return digest.hexdigest()


def is_reference_parameter(name: str) -> bool:
    """Parameters the reference uses: everything but LoRA factors and trainable module copies."""
    return "lora_" not in name and ".modules_to_save." not in name


@torch.no_grad()
def reference_fingerprint(model: torch.nn.Module) -> str:
    """sha256 over name, shape and a float64 sum / abs-sum of every reference parameter."""
    digest = hashlib.sha256()
    for name, param in model.named_parameters():
        if not is_reference_parameter(name):
            continue
        digest.update(f"{name}:{tuple(param.shape)}:".encode())
        if param.numel():
            values = param.detach().double()
            digest.update(np.array([values.sum().item(), values.abs().sum().item()]).tobytes())
    return digest.hexdigest()


def atomic_torch_save(obj, path: Path) -> None:
    """Write to a temp file in the same folder, fsync, rename: readers never see a partial file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as handle:
        torch.save(obj, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    fsync_tree_root(path.parent)


@dataclasses.dataclass
class ReferenceCache:
    """Computes (or reads back) the reference log-probs of a trainer's training pairs.

    :param mode: ``"disk"`` (stored under ``cache_dir``) or ``"memory"``.
    """

    mode: str
    cache_dir: Path | None = None
    batch_size: int | None = None
    last_path: Path | None = dataclasses.field(default=None, init=False)
    computed: bool = dataclasses.field(default=False, init=False)

    def __post_init__(self):
        if self.mode not in ("disk", "memory"):
            raise ConfigError(f"gdpo_ref_cache must be 'disk' or 'memory' here, got {self.mode!r}")
        if self.mode == "disk" and self.cache_dir is None:
            raise ConfigError("gdpo_ref_cache: disk needs a cache folder")

    def key(self, trainer) -> str:
        reference = trainer.ref_model if trainer.ref_model is not None else trainer.model
        text = f"{CACHE_FORMAT}|{dataset_fingerprint(trainer.train_dataset)}|{reference_fingerprint(reference)}"
        return hashlib.sha256(text.encode()).hexdigest()

    def load_or_compute(self, trainer) -> tuple[torch.Tensor, torch.Tensor]:
        """``(chosen, rejected)`` float32 tensors with one value per training pair, in dataset order."""
        key = self.key(trainer)
        if self.mode == "disk":
            self.last_path = Path(self.cache_dir) / f"ref_logps-{key[:20]}.pt"
            if self.last_path.is_file():
                stored = torch.load(self.last_path, map_location="cpu", weights_only=True)
                if stored.get("format") == CACHE_FORMAT and stored.get("key") == key:
                    return stored["chosen"], stored["rejected"]
        chosen, rejected = compute_reference_logps(trainer, self.batch_size)
        self.computed = True
        if self.mode == "disk" and trainer.is_world_process_zero():
            atomic_torch_save(
                {"format": CACHE_FORMAT, "key": key, "chosen": chosen, "rejected": rejected}, self.last_path
            )
        trainer.accelerator.wait_for_everyone()
        return chosen, rejected


@torch.no_grad()
def compute_reference_logps(trainer, batch_size: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One pass over the training pairs with the reference (ground-truth rows left out)."""
    if trainer.is_deepspeed_enabled and trainer.accelerator.state.deepspeed_plugin.zero_stage == 3:
        raise ConfigError("gdpo_ref_cache cannot precompute under DeepSpeed ZeRO-3; set gdpo_ref_cache: off")
    dataset = trainer.train_dataset
    if "pair_index" not in dataset.column_names:
        dataset = dataset.add_column("pair_index", list(range(len(dataset))))
    collator = dataclasses.replace(trainer.data_collator, use_gt=False)
    loader = DataLoader(
        dataset,
        batch_size=batch_size or trainer.args.per_device_train_batch_size,
        collate_fn=collator,
        shuffle=False,
        num_workers=trainer.args.dataloader_num_workers,
    )
    loader = trainer.accelerator.prepare(loader)
    model = trainer.model
    device = trainer.accelerator.device
    if next(model.parameters()).device != device:  # DeepSpeed moves the model only inside train()
        model.to(device)
    was_training = model.training
    model.eval()
    n = len(dataset)
    chosen = torch.full((n,), float("nan"))
    rejected = torch.full((n,), float("nan"))
    for batch in loader:
        batch = trainer._prepare_inputs(batch)
        index = batch["gdpo_pair_index"]
        ref_chosen, ref_rejected = trainer.reference_forward(model, batch)
        index, ref_chosen, ref_rejected = trainer.accelerator.gather_for_metrics((index, ref_chosen, ref_rejected))
        chosen[index.cpu()] = ref_chosen.float().cpu()
        rejected[index.cpu()] = ref_rejected.float().cpu()
    model.train(was_training)
    if torch.isnan(chosen).any() or torch.isnan(rejected).any():
        raise RuntimeError("reference log-probs are missing for some pairs")
    return chosen, rejected
