"""Batches for the gDPO stage: stock pairwise batches, or one packed sequence per pair.

Packed layout of pair ``i`` (the long audio-visual prompt is encoded once, not once per side)::

    [ prompt P_i | chosen C_i | pad ... | rejected R_i | ground truth G_i | pad ]
      segment 1    segment 2             segment 3      segment 4

* ``P_i + C_i`` is exactly the stock chosen row, collated by LLaMA-Factory's own collator
  (media features, mRoPE position ids, fake-media tokens and all), so multimodal models work
  unchanged; ``R_i`` / ``G_i`` are appended after the widest chosen row.
* Attention (:func:`packed_mask_rule`): a token sees earlier tokens of its own segment and
  the whole prompt, never another continuation. The one rule builds both kernels' masks: a
  dense ``(n, 1, L, L)`` mask for SDPA / eager (:func:`block_attention_mask`) and a FlexAttention
  ``BlockMask`` (:func:`flex_block_mask`: sparse blocks, no ``L x L`` tensor, fused kernels on
  GPU), chosen by ``gdpo_pack_attention`` (:func:`resolve_pack_attention`).
* Positions: a continuation's ``k``-th token gets the position it has in its own unpacked row,
  ``pos(last prompt token) + 1 + k`` in every rotary dimension (for Qwen-VL's mRoPE too: text
  after the prompt advances all three axes together). This is checked on the chosen side of
  every batch, so a model with another position scheme fails loudly instead of silently.
* Targets (``gdpo_targets``, shape ``(3, n, L)`` for chosen / rejected / ground truth) are
  aligned with the logits that predict them: the first token of every continuation is
  predicted by the last prompt position, which all three share.

A ground-truth row joins the packed sequence only when it is the same video with the same
prompt; otherwise (and always in unpacked mode) the ground-truth rows form a separate batch
``gdpo_gt_batch`` collated by LLaMA-Factory's collator.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

import torch

from vs2_plugin.errors import ConfigError
from vs2_plugin.gdpo.config import PACK_ATTENTION_MODES
from vs2_plugin.gdpo.loss import IGNORE_INDEX, sequence_logps
from vs2_plugin.integrations.llamafactory_api import MultiModalDataCollatorForSeq2Seq, PairwiseDataCollatorWithPadding

SEG_PAD, SEG_PROMPT, SEG_CHOSEN, SEG_REJECTED, SEG_GT = 0, 1, 2, 3, 4
GT_KEYS = ("gt_input_ids", "gt_attention_mask", "gt_labels", "gt_images", "gt_videos", "gt_audios")
MEDIA_KEYS = ("images", "videos", "audios")
PACKABLE_ATTENTION = ("sdpa", "eager")


def prompt_length(labels: list[int]) -> int:
    """Number of leading ``IGNORE_INDEX`` labels, i.e. the length of the encoded prompt."""
    for index, label in enumerate(labels):
        if label != IGNORE_INDEX:
            return index
    return len(labels)


FLEX_BLOCK = 128  # FlexAttention's block size: packed rows are padded to a multiple of it


def packed_mask_rule(seg_q, seg_k, q_idx, kv_idx):
    """May query ``q`` attend key ``k``? Elementwise on tensors that broadcast; the mask of the
    packed layout for every attention kernel.

    Yes when ``k <= q`` and ``k`` is in the prompt or in ``q``'s own segment; padding attends
    only itself (keeps every softmax row finite).
    """
    allowed = ((seg_k == seg_q) | (seg_k == SEG_PROMPT)) & (seg_k != SEG_PAD) & (seg_q != SEG_PAD) & (kv_idx <= q_idx)
    return allowed | (q_idx == kv_idx)


def block_attention_mask(segments: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Dense 4D attention mask of a packed batch, from segment ids ``(n, L)`` (see :func:`packed_mask_rule`).

    :param dtype: ``None`` for a boolean mask (True = attend; for SDPA), or a float dtype for an
        additive mask (0 / finfo.min; for eager attention).
    :returns: ``(n, 1, L, L)``.

    >>> block_attention_mask(torch.tensor([[1, 1, 2, 3, 3]]))[0, 0].int().tolist()
    [[1, 0, 0, 0, 0], [1, 1, 0, 0, 0], [1, 1, 1, 0, 0], [1, 1, 0, 1, 0], [1, 1, 0, 1, 1]]
    """
    idx = torch.arange(segments.shape[-1], device=segments.device)
    allowed = packed_mask_rule(segments.unsqueeze(-1), segments.unsqueeze(-2), idx.unsqueeze(-1), idx).unsqueeze(1)
    if dtype is None:
        return allowed
    mask = torch.zeros(allowed.shape, dtype=dtype, device=segments.device)
    return mask.masked_fill_(~allowed, torch.finfo(dtype).min)


def flex_available() -> bool:
    """FlexAttention is importable (torch >= 2.5)."""
    try:
        from torch.nn.attention.flex_attention import create_block_mask  # noqa: F401
    except ImportError:
        return False
    return True


def flex_block_mask(segments: torch.Tensor):
    """FlexAttention ``BlockMask`` of a packed batch: :func:`packed_mask_rule` as its ``mask_mod``.

    Only blocks with some allowed entry are computed, and no ``L x L`` tensor is materialised.
    """
    from torch.nn.attention.flex_attention import create_block_mask

    n, length = segments.shape

    def mask_mod(b, h, q_idx, kv_idx):
        return packed_mask_rule(segments[b, q_idx], segments[b, kv_idx], q_idx, kv_idx)

    return create_block_mask(mask_mod, B=n, H=None, Q_LEN=length, KV_LEN=length, device=segments.device)


def resolve_pack_attention(mode: str, current: str | None, on_cuda: bool) -> str:
    """Attention implementation the packed forward runs with.

    ``auto``: FlexAttention on CUDA where torch has it (fused kernels, block-sparse mask; FlashAttention-2
    cannot take this mask), else the model's own ``sdpa`` / ``eager`` with the dense mask. FlexAttention
    on CPU has no backward pass, so ``auto`` never picks it there. ``flex`` / ``sdpa`` / ``eager`` force one.

    :param current: the model's attention implementation as loaded (LLaMA-Factory's ``flash_attn``).
    :returns: ``"flex_attention"``, ``"sdpa"`` or ``"eager"``.
    """
    if mode not in PACK_ATTENTION_MODES:
        raise ConfigError(f"gdpo_pack_attention must be one of {', '.join(PACK_ATTENTION_MODES)}; got {mode!r}")
    if mode == "flex" or (mode == "auto" and on_cuda and flex_available()):
        if not flex_available():
            raise ConfigError("gdpo_pack_attention: flex needs torch.nn.attention.flex_attention (torch >= 2.5)")
        return "flex_attention"
    if mode in ("sdpa", "eager"):
        return mode
    if current in FLEX_NAMES:
        return "flex_attention"
    if current in ("sdpa", "eager"):
        return current
    if current is None:
        return "sdpa"
    raise ConfigError(
        f"gdpo_pack_prompt needs attention that takes a block mask (FlexAttention, sdpa or eager); the model uses "
        f"{current!r} and FlexAttention is not available here: set gdpo_pack_attention: sdpa (or gdpo_pack_prompt: false)"
    )


#: transformers' FlexAttention forward and mask builder, registered under this name through the
#: public AttentionInterface / AttentionMaskInterface. Models whose class does not declare flex
#: support (Qwen2.5-VL's text model in transformers 5.x refuses ``flex_attention``) still dispatch
#: their attention through these interfaces, so the packed path runs FlexAttention on them too.
PACKED_FLEX = "vs2_packed_flex"
FLEX_NAMES = ("flex_attention", PACKED_FLEX)


def register_flex_kernel() -> None:
    """Make :data:`PACKED_FLEX` a valid ``attn_implementation`` (idempotent)."""
    from transformers import AttentionInterface
    from transformers.integrations.flex_attention import flex_attention_forward
    from transformers.masking_utils import AttentionMaskInterface, flex_attention_mask

    AttentionInterface.register(PACKED_FLEX, flex_attention_forward)
    AttentionMaskInterface.register(PACKED_FLEX, flex_attention_mask)


def set_pack_attention(model, implementation: str) -> None:
    """Switch the language model's attention to ``implementation`` (a no-op when it already uses it).

    ``flex_attention`` is installed as :data:`PACKED_FLEX`; vision and audio towers keep theirs.
    """
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    if implementation in FLEX_NAMES:
        register_flex_kernel()
        implementation = PACKED_FLEX
    if text_attention(inner) == implementation:
        return
    if "text_config" in (getattr(inner.config, "sub_configs", None) or {}):
        inner.set_attn_implementation({"text_config": implementation})
    else:
        inner.set_attn_implementation(implementation)
    if text_attention(inner) != implementation:
        raise ValueError(f"could not switch {type(inner).__name__}'s attention to {implementation!r}")


def text_attention(model) -> str | None:
    """The attention implementation of the (language part of the) model."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    config = inner.config.get_text_config() if hasattr(inner.config, "get_text_config") else inner.config
    return getattr(config, "_attn_implementation", None)


def _gt_shares_prompt(feature: dict[str, Any], prompt_len: int) -> bool:
    """The ground-truth row is the pair's own video and prompt, so it can continue the prompt."""
    if "gt_input_ids" not in feature:
        return False
    if any((feature.get(key) or []) != (feature.get(f"gt_{key}") or []) for key in MEDIA_KEYS):
        return False
    gt_ids = feature["gt_input_ids"]
    return (
        prompt_length(feature["gt_labels"]) == prompt_len
        and len(gt_ids) > prompt_len
        and list(gt_ids[:prompt_len]) == list(feature["chosen_input_ids"][:prompt_len])
    )


@dataclass
class GDPODataCollator(PairwiseDataCollatorWithPadding):
    r"""Pairwise collator of the gDPO stage.

    Rows carry LLaMA-Factory's pairwise fields plus, optionally, a ground-truth row (``gt_*``),
    cached reference log-probs (``ref_chosen_logps`` / ``ref_rejected_logps``) and
    ``pair_index``. Unpacked, the batch is the stock pairwise batch (``2n`` rows) plus
    ``gdpo_*`` entries; packed (``pack_prompt=True``), it has ``n`` rows::

        input_ids (n, L), position_ids (n, L) or (k, n, L), media inputs of the n prompts,
        gdpo_segments (n, L)       0 pad, 1 prompt, 2 chosen, 3 rejected, 4 ground truth
        gdpo_targets (3, n, L)     chosen / rejected / ground-truth token at its predicting position
        gdpo_gt_batch {...}        ground truth that could not be packed (other video or prompt)
        gdpo_ref_chosen_logps (n,), gdpo_ref_rejected_logps (n,), gdpo_pair_index (n,)
    """

    pack_prompt: bool = True
    use_gt: bool = True

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        features = [dict(feature) for feature in features]
        extras: dict[str, Any] = {}
        if "pair_index" in features[0]:
            extras["gdpo_pair_index"] = torch.tensor([f.pop("pair_index") for f in features], dtype=torch.long)
        if "ref_chosen_logps" in features[0]:
            extras["gdpo_ref_chosen_logps"] = torch.tensor([f.pop("ref_chosen_logps") for f in features])
            extras["gdpo_ref_rejected_logps"] = torch.tensor([f.pop("ref_rejected_logps") for f in features])
        has_gt = self.use_gt and "gt_input_ids" in features[0]
        prompt_lens = [prompt_length(f["chosen_labels"]) for f in features]
        pack_gt = has_gt and self.pack_prompt and all(_gt_shares_prompt(f, p) for f, p in zip(features, prompt_lens))
        gt_features = [self._gt_row(f) for f in features] if has_gt and not pack_gt else None
        if not pack_gt:
            for feature in features:
                for key in GT_KEYS:
                    feature.pop(key, None)

        if self.pack_prompt:
            batch = self._packed(features, prompt_lens, pack_gt)
        else:
            batch = super().__call__(features)
        if gt_features is not None:
            batch["gdpo_gt_batch"] = MultiModalDataCollatorForSeq2Seq.__call__(self, gt_features)
        batch.update(extras)
        return batch

    @staticmethod
    def _gt_row(feature: dict[str, Any]) -> dict[str, Any]:
        return {
            "input_ids": feature["gt_input_ids"],
            "attention_mask": feature["gt_attention_mask"],
            "labels": feature["gt_labels"],
            **{key: feature.get(f"gt_{key}") for key in MEDIA_KEYS},
        }

    def _packed(self, features: list[dict[str, Any]], prompt_lens: list[int], pack_gt: bool) -> dict[str, Any]:
        if self.tokenizer.padding_side != "right":
            raise ValueError(f"packed gDPO batches need right padding, tokenizer pads {self.tokenizer.padding_side!r}")
        chosen_rows = [
            {
                "input_ids": f["chosen_input_ids"],
                "attention_mask": f["chosen_attention_mask"],
                "labels": f["chosen_labels"],
                **{key: f.get(key) for key in MEDIA_KEYS},
            }
            for f in features
        ]
        batch = MultiModalDataCollatorForSeq2Seq.__call__(self, chosen_rows)
        chosen_ids = batch.pop("input_ids")
        chosen_mask = batch.pop("attention_mask")
        batch.pop("labels")
        chosen_pos = batch.pop("position_ids", None)
        n, width = chosen_ids.shape

        tails = []  # (rejected ids, rejected labels, gt ids, gt labels) after the prompt
        for f, p in zip(features, prompt_lens):
            if p == 0:
                raise ValueError("a pair without prompt tokens cannot be packed")
            if list(f["rejected_input_ids"][:p]) != list(f["chosen_input_ids"][:p]):
                raise ValueError("chosen and rejected rows of a pair do not share their prompt tokens")
            gt_ids = list(f["gt_input_ids"][p:]) if pack_gt else []
            gt_labels = list(f["gt_labels"][p:]) if pack_gt else []
            tails.append((list(f["rejected_input_ids"][p:]), list(f["rejected_labels"][p:]), gt_ids, gt_labels))
        length = width + max(len(r) + len(g) for r, _, g, _ in tails)
        if self.pad_to_multiple_of:
            length = -(-length // self.pad_to_multiple_of) * self.pad_to_multiple_of

        input_ids = torch.full((n, length), self.tokenizer.pad_token_id, dtype=torch.long)
        input_ids[:, :width] = chosen_ids
        segments = torch.zeros((n, length), dtype=torch.long)
        targets = torch.full((3, n, length), IGNORE_INDEX, dtype=torch.long)
        if chosen_pos is None:
            chosen_pos = torch.arange(width).expand(n, width)
        position_ids = torch.zeros((*chosen_pos.shape[:-1], length), dtype=chosen_pos.dtype)
        position_ids[..., :width] = chosen_pos

        for i, (f, p, (rej_ids, rej_labels, gt_ids, gt_labels)) in enumerate(zip(features, prompt_lens, tails)):
            chosen_len = len(f["chosen_input_ids"])
            real = chosen_mask[i, :chosen_len].bool()
            segments[i, :p] = torch.where(real[:p], SEG_PROMPT, SEG_PAD)
            segments[i, p:chosen_len] = torch.where(real[p:], SEG_CHOSEN, SEG_PAD)
            targets[0, i, p - 1 : chosen_len - 1] = torch.tensor(f["chosen_labels"][p:], dtype=torch.long)
            last_pos = chosen_pos[..., i, p - 1 : p]  # (..., 1)
            steps = torch.arange(1, length + 1, dtype=chosen_pos.dtype)
            expected = last_pos + steps[: chosen_len - p]
            if not torch.equal(chosen_pos[..., i, p:chosen_len], expected):
                raise ValueError(
                    "this model's position ids do not advance by one after the prompt; "
                    "set gdpo_pack_prompt: false for it"
                )
            start = width
            for seg, row, ids, labels in ((SEG_REJECTED, 1, rej_ids, rej_labels), (SEG_GT, 2, gt_ids, gt_labels)):
                if not ids:
                    continue
                end = start + len(ids)
                input_ids[i, start:end] = torch.tensor(ids, dtype=torch.long)
                segments[i, start:end] = seg
                position_ids[..., i, start:end] = last_pos + steps[: len(ids)]
                targets[row, i, p - 1] = labels[0]
                targets[row, i, start : end - 1] = torch.tensor(labels[1:], dtype=torch.long)
                start = end

        for key, value in list(batch.items()):  # per-token extras (e.g. token_type_ids) follow the new width
            if torch.is_tensor(value) and value.dim() == 2 and value.shape == (n, width):
                padded = value.new_zeros((n, length))
                padded[:, :width] = value
                batch[key] = padded
        batch.update(input_ids=input_ids, position_ids=position_ids, gdpo_segments=segments, gdpo_targets=targets)
        return batch


def _accepts_logits_to_keep(model) -> bool:
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "logits_to_keep" in inspect.signature(inner.forward).parameters


def packed_forward(model, batch: dict[str, Any], unwrapped=None) -> dict[str, torch.Tensor]:
    """Run a packed batch; return summed log-probs and token counts of chosen / rejected / gt.

    :param unwrapped: the model without DDP / DeepSpeed wrappers (for its config), if wrapped.
    :returns: ``{chosen,rejected,gt}_logps`` (n,) and ``{chosen,rejected,gt}_tokens`` (n,).
    """
    unwrapped = unwrapped if unwrapped is not None else model
    batch = dict(batch)
    segments = batch.pop("gdpo_segments")
    targets = batch.pop("gdpo_targets")
    attn = text_attention(unwrapped) or "sdpa"
    if attn in FLEX_NAMES:
        batch["attention_mask"] = flex_block_mask(segments)
    elif attn in PACKABLE_ATTENTION:
        batch["attention_mask"] = block_attention_mask(segments, None if attn == "sdpa" else torch.float32)
    else:
        raise ValueError(
            f"gdpo_pack_prompt needs attention that takes a block mask (flex_attention, sdpa or eager), the model "
            f"uses {attn!r}; set gdpo_pack_attention: auto (FlexAttention on GPU) or sdpa, or gdpo_pack_prompt: false"
        )
    # Only positions that predict a continuation token need logits: the prompt needs none.
    used = (targets != IGNORE_INDEX).any(0).any(0).nonzero()
    first = int(used[0]) if used.numel() else targets.shape[-1] - 1
    if _accepts_logits_to_keep(unwrapped):
        batch["logits_to_keep"] = targets.shape[-1] - first
        targets = targets[..., first:]
    logits = model(**batch, return_dict=True, use_cache=False).logits
    out = {}
    for name, row in (("chosen", 0), ("rejected", 1), ("gt", 2)):
        out[f"{name}_logps"], out[f"{name}_tokens"] = sequence_logps(logits, targets[row])
    return out
