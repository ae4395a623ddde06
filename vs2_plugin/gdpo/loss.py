"""The gDPO loss of the paper, eq. 11, as pure tensor functions.

Eq. 11 reads ``L_gDPO = L_DPO + lambda * E_{(x, y_gt) ~ D_gt} log pi(y_gt | x)``; the text
calls the second term "cross-entropy learning towards the ground-truth text descriptions",
so the term that is *minimised* is the negative log-likelihood (the printed sign is a typo):

    L_gDPO = mean_i -log sigmoid(beta * [(log pi(y_w|x) - log ref(y_w|x))
                                         - (log pi(y_l|x) - log ref(y_l|x))])
             + lambda * NLL(ground-truth batch)

* DPO part: sigmoid DPO on **summed** sequence log-probs (as LLaMA-Factory / TRL do for
  ``pref_loss: sigmoid``), averaged over the pairs of the batch.
* NLL part, two readings (``gdpo_nll_reduction``):

  - ``"sequence"`` (default, the paper): eq. 11's ``log pi(y_gt | x)`` is a caption's
    log-probability, written exactly like the DPO terms, i.e. summed over its tokens; averaged
    over the ground-truth rows (the expectation). At beta = lambda = 0.1 its gradient is on the
    scale of DPO's.
  - ``"token_mean"`` (the public code): cross-entropy averaged over all ground-truth tokens of
    the batch (what an ordinary ``model(..., labels=...).loss`` gives), about a caption's
    length times weaker at the same lambda.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from vs2_plugin.gdpo.config import NLL_REDUCTIONS

IGNORE_INDEX = -100


def shift_labels(labels: torch.Tensor, ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """Align causal-LM labels with the logits that predict them.

    ``targets[:, t]`` is the token predicted by ``logits[:, t]``, i.e. ``labels[:, t + 1]``;
    the last position predicts nothing.

    >>> shift_labels(torch.tensor([[-100, 5, 6]])).tolist()
    [[5, 6, -100]]
    """
    targets = torch.full_like(labels, ignore_index)
    targets[..., :-1] = labels[..., 1:]
    return targets


def sequence_logps(
    logits: torch.Tensor, targets: torch.Tensor, ignore_index: int = IGNORE_INDEX
) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed log-probabilities of ``targets`` per row, and the number of target tokens.

    :param logits: ``(B, T, V)``.
    :param targets: ``(B, T)``, already aligned (see :func:`shift_labels`); ``ignore_index``
        marks positions that predict nothing.
    :returns: ``(logps (B,) float32, n_tokens (B,) long)``. Only the target positions go
        through ``log_softmax``, so a long shared prompt costs no softmax at all.
    """
    if logits.shape[:-1] != targets.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and targets {tuple(targets.shape)} do not align")
    mask = targets != ignore_index
    rows = mask.nonzero(as_tuple=True)[0]
    picked = logits[mask].float().log_softmax(-1)
    token_logps = picked.gather(-1, targets[mask].unsqueeze(-1)).squeeze(-1)
    logps = torch.zeros(targets.shape[0], dtype=torch.float32, device=logits.device).index_add(0, rows, token_logps)
    return logps, mask.sum(-1)


def sigmoid_dpo_loss(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    reference_chosen_logps: torch.Tensor,
    reference_rejected_logps: torch.Tensor,
    beta: float,
    label_smoothing: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-pair sigmoid DPO loss (Rafailov et al. 2023, eq. 7) and the implicit rewards.

    ``loss_i = -(1 - eps) log sigmoid(beta * h_i) - eps log sigmoid(-beta * h_i)`` with
    ``h_i = (pi_w - ref_w) - (pi_l - ref_l)`` on summed sequence log-probs; ``eps`` is the
    label smoothing of conservative DPO (0 = the paper's DPO).

    :returns: ``(losses (B,), chosen_rewards (B,), rejected_rewards (B,))``; rewards are
        ``beta * (pi - ref)``, detached.
    """
    chosen_logratios = policy_chosen_logps - reference_chosen_logps
    rejected_logratios = policy_rejected_logps - reference_rejected_logps
    h = chosen_logratios - rejected_logratios
    losses = -F.logsigmoid(beta * h) * (1.0 - label_smoothing) - F.logsigmoid(-beta * h) * label_smoothing
    return losses, (beta * chosen_logratios).detach(), (beta * rejected_logratios).detach()


def token_mean_nll(gt_logps: torch.Tensor, gt_tokens: torch.Tensor) -> torch.Tensor:
    """Token-averaged negative log-likelihood over a whole batch: ``-sum(logps) / sum(tokens)``."""
    return -gt_logps.sum() / gt_tokens.sum().clamp(min=1).to(gt_logps.dtype)


def sequence_nll(gt_logps: torch.Tensor) -> torch.Tensor:
    """Negative log-probability of each ground-truth caption (summed over its tokens), averaged
    over the rows: ``-mean(logps)``."""
    return -gt_logps.mean()


def ground_truth_nll(gt_logps: torch.Tensor, gt_tokens: torch.Tensor, reduction: str) -> torch.Tensor:
    """The NLL term of eq. 11 by ``reduction`` (``"sequence"`` or ``"token_mean"``, module docstring)."""
    if reduction == "sequence":
        return sequence_nll(gt_logps)
    if reduction == "token_mean":
        return token_mean_nll(gt_logps, gt_tokens)
    raise ValueError(f"nll_reduction must be 'sequence' or 'token_mean', got {reduction!r}")


@dataclass
class GDPOLoss:
    """Result of :func:`gdpo_loss`; ``loss`` is what is back-propagated."""

    loss: torch.Tensor
    dpo_loss: torch.Tensor
    nll_loss: torch.Tensor
    chosen_rewards: torch.Tensor
    rejected_rewards: torch.Tensor


def gdpo_loss(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    reference_chosen_logps: torch.Tensor,
    reference_rejected_logps: torch.Tensor,
    gt_logps: torch.Tensor | None,
    gt_tokens: torch.Tensor | None,
    beta: float,
    gdpo_lambda: float,
    label_smoothing: float = 0.0,
    nll_reduction: str = NLL_REDUCTIONS[0],
) -> GDPOLoss:
    """The gDPO loss, eq. 11 (sign and ``nll_reduction`` as explained in the module docstring)::

        L = mean_i DPO_i(beta) + lambda * NLL(ground truth)

    :param policy_chosen_logps, policy_rejected_logps: summed log-probs under the policy, ``(B,)``.
    :param reference_chosen_logps, reference_rejected_logps: the same under the frozen reference.
    :param gt_logps: summed log-probs of each ground-truth caption under the policy, ``(G,)``;
        ``None`` when ``gdpo_lambda`` is 0.
    :param gt_tokens: number of ground-truth tokens per row, ``(G,)``.
    """
    losses, chosen_rewards, rejected_rewards = sigmoid_dpo_loss(
        policy_chosen_logps,
        policy_rejected_logps,
        reference_chosen_logps,
        reference_rejected_logps,
        beta,
        label_smoothing,
    )
    dpo = losses.mean()
    if gdpo_lambda > 0:
        if gt_logps is None or gt_tokens is None:
            raise ValueError(f"gdpo_lambda={gdpo_lambda} needs the ground-truth log-probs")
        nll = ground_truth_nll(gt_logps, gt_tokens, nll_reduction)
        total = dpo + gdpo_lambda * nll
    else:
        nll = dpo.new_zeros(()) if gt_logps is None else ground_truth_nll(gt_logps, gt_tokens, nll_reduction).detach()
        total = dpo
    return GDPOLoss(total, dpo, nll, chosen_rewards, rejected_rewards)
