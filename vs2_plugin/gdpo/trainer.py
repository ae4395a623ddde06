"""The gDPO trainer: LLaMA-Factory's CustomDPOTrainer with the eq. 11 loss.

Overrides only what gDPO changes: the per-batch loss (:meth:`get_batch_loss_metrics`, which
adds the ground-truth NLL, uses cached reference log-probs and the packed forward) and the
train dataloader (to attach the reference log-probs computed once per round). Everything
else — optimizer, scheduler, DeepSpeed / FSDP handling of the reference, logging — is
LLaMA-Factory's.
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any, Literal

import torch
from typing_extensions import override

from vs2_plugin.gdpo.loss import gdpo_loss, sequence_logps, shift_labels
from vs2_plugin.gdpo.packing import packed_forward
from vs2_plugin.integrations.llamafactory_api import CustomDPOTrainer

_LAYOUT_KEYS = ("gdpo_segments", "gdpo_targets")  # batch entries the forward itself needs


class GDPOTrainer(CustomDPOTrainer):
    """CustomDPOTrainer whose loss is gDPO (eq. 11) on batches from :class:`GDPODataCollator`."""

    def __init__(self, *args, gdpo_args, ref_cache=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.gdpo_args = gdpo_args
        self.ref_cache = ref_cache
        self._ref_attached = False

    # ----------------------------------------------------------------------------- data
    @override
    def get_train_dataloader(self):
        if self.ref_cache is not None and not self._ref_attached:
            chosen, rejected = self.ref_cache.load_or_compute(self)
            self.train_dataset = self.train_dataset.add_column("ref_chosen_logps", chosen.tolist())
            self.train_dataset = self.train_dataset.add_column("ref_rejected_logps", rejected.tolist())
            self._ref_attached = True
        return super().get_train_dataloader()

    # ----------------------------------------------------------------------------- forwards
    def packed_forward(self, model, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """Summed log-probs of chosen / rejected / ground truth from one packed forward."""
        return packed_forward(model, batch, self.accelerator.unwrap_model(model))

    def pair_forward(self, model, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """Chosen / rejected summed log-probs (and packed ground truth) for either batch layout."""
        if "gdpo_segments" in batch:
            return self.packed_forward(model, batch)
        out = self.concatenated_forward(model, dict(batch))
        return {"chosen_logps": out["chosen_logps"], "rejected_logps": out["rejected_logps"]}

    def gt_forward(self, model, gt_batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        gt_batch = dict(gt_batch)
        labels = gt_batch.pop("labels")
        logits = model(**gt_batch, return_dict=True, use_cache=False).logits
        return sequence_logps(logits, shift_labels(labels))

    def reference_forward(self, model, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """Reference log-probs: the separate reference model, or the policy with its adapter off."""
        if self.ref_model is None:
            ref_model, context = model, self.accelerator.unwrap_model(model).disable_adapter()
        else:
            ref_model, context = self.ref_model, nullcontext()
        batch = {key: value for key, value in batch.items() if not key.startswith("gdpo_") or key in _LAYOUT_KEYS}
        with torch.no_grad(), context:
            out = self.pair_forward(ref_model, batch)
        return out["chosen_logps"].detach(), out["rejected_logps"].detach()

    # ----------------------------------------------------------------------------- loss
    @override
    def get_batch_loss_metrics(
        self, model, batch: dict[str, Any], train_eval: Literal["train", "eval"] = "train"
    ) -> tuple[torch.Tensor, dict[str, float]]:
        batch = dict(batch)
        ref_chosen = batch.pop("gdpo_ref_chosen_logps", None)
        ref_rejected = batch.pop("gdpo_ref_rejected_logps", None)
        gt_batch = batch.pop("gdpo_gt_batch", None)
        batch.pop("gdpo_pair_index", None)
        lam = self.gdpo_args.gdpo_lambda

        policy = self.pair_forward(model, batch)
        if ref_chosen is None:
            ref_chosen, ref_rejected = self.reference_forward(model, batch)
        gt_logps = gt_tokens = None
        if gt_batch is not None and lam > 0:
            gt_logps, gt_tokens = self.gt_forward(model, gt_batch)
        elif policy.get("gt_tokens") is not None and int(policy["gt_tokens"].sum()) > 0:
            gt_logps, gt_tokens = policy["gt_logps"], policy["gt_tokens"]

        device = policy["chosen_logps"].device
        result = gdpo_loss(
            policy["chosen_logps"],
            policy["rejected_logps"],
            ref_chosen.to(device),
            ref_rejected.to(device),
            gt_logps,
            gt_tokens,
            beta=self.beta,
            gdpo_lambda=lam,
            label_smoothing=self.label_smoothing,
            nll_reduction=self.gdpo_args.gdpo_nll_reduction,
        )
        prefix = "eval_" if train_eval == "eval" else ""
        chosen_r, rejected_r = result.chosen_rewards, result.rejected_rewards
        metrics = {
            f"{prefix}rewards/chosen": chosen_r.mean().item(),
            f"{prefix}rewards/rejected": rejected_r.mean().item(),
            f"{prefix}rewards/accuracies": (chosen_r > rejected_r).float().mean().item(),
            f"{prefix}rewards/margins": (chosen_r - rejected_r).mean().item(),
            f"{prefix}logps/chosen": policy["chosen_logps"].detach().mean().item(),
            f"{prefix}logps/rejected": policy["rejected_logps"].detach().mean().item(),
            f"{prefix}gdpo/dpo_loss": result.dpo_loss.detach().item(),
            f"{prefix}gdpo/nll_loss": result.nll_loss.detach().item(),
        }
        return result.loss, metrics
