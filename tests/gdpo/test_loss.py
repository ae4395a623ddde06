"""gDPO loss (eq. 11): hand-worked values, equality with TRL / LLaMA-Factory DPO, NLL gradient."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from vs2_plugin.errors import ConfigError
from vs2_plugin.gdpo.config import GDPOArguments
from vs2_plugin.gdpo.gtdata import assign_gt_rows
from vs2_plugin.gdpo.loss import (
    gdpo_loss,
    ground_truth_nll,
    sequence_logps,
    shift_labels,
    sigmoid_dpo_loss,
    token_mean_nll,
)
from vs2_plugin.gdpo.packing import block_attention_mask, prompt_length


def test_sigmoid_dpo_hand_worked():
    # h = (-1 - -1.5) - (-2 - -1.5) = 1.0 -> loss = -log sigmoid(0.1) = log(1 + e^-0.1)
    losses, chosen_r, rejected_r = sigmoid_dpo_loss(
        torch.tensor([-1.0]), torch.tensor([-2.0]), torch.tensor([-1.5]), torch.tensor([-1.5]), beta=0.1
    )
    assert losses.item() == pytest.approx(math.log1p(math.exp(-0.1)), abs=1e-7)
    assert chosen_r.item() == pytest.approx(0.05) and rejected_r.item() == pytest.approx(-0.05)


def test_gdpo_hand_worked_total():
    # DPO part 0.6931 (h = 0) + 0.1 * NLL, NLL = (2 + 4) / 2 captions = 3.0 (the paper's reading)
    out = gdpo_loss(
        torch.tensor([-3.0]),
        torch.tensor([-5.0]),
        torch.tensor([-3.0]),
        torch.tensor([-5.0]),
        gt_logps=torch.tensor([-2.0, -4.0]),
        gt_tokens=torch.tensor([2, 4]),
        beta=0.1,
        gdpo_lambda=0.1,
    )
    assert out.dpo_loss.item() == pytest.approx(math.log(2), abs=1e-7)
    assert out.nll_loss.item() == pytest.approx(3.0)
    assert out.loss.item() == pytest.approx(math.log(2) + 0.3, abs=1e-7)


def _random_logps(seed=0, n=5):
    g = torch.Generator().manual_seed(seed)
    return [-(torch.rand(n, generator=g, dtype=torch.float32) * 300 + 10) for _ in range(4)]


@pytest.mark.parametrize("label_smoothing", [0.0, 0.2])
def test_lambda_zero_equals_trl_and_llamafactory_dpo(label_smoothing):
    from llamafactory.train.dpo.trainer import CustomDPOTrainer
    from trl import DPOTrainer
    from trl.trainer.dpo_trainer import FDivergenceType

    pc, pr, rc, rr = _random_logps()
    ours = gdpo_loss(pc, pr, rc, rr, None, None, beta=0.1, gdpo_lambda=0.0, label_smoothing=label_smoothing)
    fake = SimpleNamespace(
        beta=0.1,
        label_smoothing=label_smoothing,
        reference_free=False,
        f_divergence_type=FDivergenceType.REVERSE_KL,
        f_divergence_params={},
        accelerator=SimpleNamespace(device=torch.device("cpu")),
        use_weighting=False,
    )
    trl_losses, trl_chosen, trl_rejected = DPOTrainer.dpo_loss(fake, pc, pr, rc, rr, loss_type="sigmoid")
    assert abs(ours.loss.item() - trl_losses.mean().item()) < 1e-6
    assert torch.allclose(ours.chosen_rewards, trl_chosen, atol=1e-6)
    assert torch.allclose(ours.rejected_rewards, trl_rejected, atol=1e-6)

    fake.finetuning_args = SimpleNamespace(use_ref_model=True)
    fake.bco_gemma = 0.0
    fake.dpo_loss = lambda *a: DPOTrainer.dpo_loss(fake, *a, loss_type="sigmoid")
    lf_losses, _, _ = CustomDPOTrainer.compute_preference_loss(fake, pc, pr, rc, rr)
    assert abs(ours.loss.item() - lf_losses.mean().item()) < 1e-6


def test_sequence_logps_matches_llamafactory():
    from llamafactory.train.trainer_utils import get_batch_logps

    g = torch.Generator().manual_seed(1)
    logits = torch.randn(3, 9, 17, generator=g)
    labels = torch.randint(0, 17, (3, 9), generator=g)
    labels[:, :4] = -100
    labels[2, 7:] = -100
    ours, n = sequence_logps(logits, shift_labels(labels))
    theirs, valid = get_batch_logps(logits, labels)
    assert torch.allclose(ours, theirs, atol=1e-5)
    assert n.tolist() == valid.tolist() == [5, 5, 3]


def _tiny_lm():
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    config = Qwen2Config(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
    )
    return Qwen2ForCausalLM(config).eval()


def test_lambda_term_gradient_is_the_nll_gradient():
    model = _tiny_lm()
    g = torch.Generator().manual_seed(2)
    pair_ids = torch.randint(0, 64, (4, 12), generator=g)  # rows 0-1 chosen, 2-3 rejected
    pair_labels = pair_ids.clone()
    pair_labels[:, :6] = -100
    gt_ids = torch.randint(0, 64, (3, 10), generator=g)
    gt_labels = gt_ids.clone()
    gt_labels[:, :5] = -100
    gt_labels[1, 8:] = -100
    ref = torch.tensor([-40.0, -45.0]), torch.tensor([-42.0, -41.0])

    def loss_and_grads(lam):
        model.zero_grad()
        logps, _ = sequence_logps(model(pair_ids).logits, shift_labels(pair_labels))
        gt_logps, gt_tokens = sequence_logps(model(gt_ids).logits, shift_labels(gt_labels))
        out = gdpo_loss(
            logps[:2], logps[2:], *ref, gt_logps, gt_tokens, beta=0.1, gdpo_lambda=lam, nll_reduction="token_mean"
        )
        out.loss.backward()
        return out, [p.grad.clone() for p in model.parameters()]

    with_gt, grads_lam = loss_and_grads(0.1)
    _, grads_dpo = loss_and_grads(0.0)
    model.zero_grad()
    nll = model(gt_ids, labels=gt_labels).loss  # the ordinary token-averaged CE of the gt batch
    assert with_gt.nll_loss.item() == pytest.approx(nll.item(), abs=1e-5)
    nll.backward()
    for g_lam, g_dpo, p in zip(grads_lam, grads_dpo, model.parameters()):
        assert torch.allclose(g_lam - g_dpo, 0.1 * p.grad, atol=1e-6)


def test_token_mean_nll_weights_tokens_not_rows():
    assert token_mean_nll(torch.tensor([-1.0, -9.0]), torch.tensor([1, 9])).item() == pytest.approx(1.0)


def test_block_attention_mask():
    seg = torch.tensor([[1, 1, 2, 2, 0, 3, 4, 4]])
    allowed = block_attention_mask(seg)[0, 0]
    assert allowed[3].tolist() == [1, 1, 1, 1, 0, 0, 0, 0]  # chosen: prompt + own past
    assert allowed[5].tolist() == [1, 1, 0, 0, 0, 1, 0, 0]  # rejected: prompt + itself, no chosen
    assert allowed[7].tolist() == [1, 1, 0, 0, 0, 0, 1, 1]  # ground truth: prompt + own past
    assert allowed[4].tolist() == [0, 0, 0, 0, 1, 0, 0, 0]  # padding sees only itself
    additive = block_attention_mask(seg, torch.float32)[0, 0]
    assert additive[5, 2] == torch.finfo(torch.float32).min and additive[5, 1] == 0


def test_prompt_length_and_gt_assignment():
    assert prompt_length([-100, -100, 5, -100, 6]) == 2
    assert prompt_length([-100]) == 1
    assert assign_gt_rows(["a", "b", "a"], ["b", "a", "a"], "match", seed=0) == [1, 0, 2]
    random_rows = assign_gt_rows(["a"] * 50, ["a", "b", "c"], "random", seed=3)
    assert set(random_rows) == {0, 1, 2}  # random mode ignores matches
    assert random_rows == assign_gt_rows(["a"] * 50, ["a", "b", "c"], "random", seed=3)


@pytest.mark.parametrize(
    "kwargs, needle",
    [
        ({"gdpo_lambda": -0.5, "gt_dataset": "x"}, "-0.5"),
        ({"gdpo_lambda": float("nan"), "gt_dataset": "x"}, "nan"),
        ({"gdpo_lambda": 0.1}, "gt_dataset"),
        ({"gdpo_lambda": 0.0, "gdpo_ref_cache": "ssd"}, "'ssd'"),
        ({"gdpo_lambda": 0.0, "gdpo_round_hook": "zero3"}, "'zero3'"),
        ({"gdpo_lambda": 0.0, "gdpo_aligner_policy": "train"}, "'train'"),
        ({"gdpo_lambda": 0.0, "gt_sampling": "nearest"}, "'nearest'"),
        (
            {"gdpo_lambda": 0.0, "gdpo_nll_reduction": "sum"},
            "gdpo_nll_reduction must be one of sequence, token_mean; got 'sum'",
        ),
        ({"gdpo_lambda": 0.0, "gdpo_rounds": True, "gdpo_round": 0}, "0"),
        ({"gdpo_lambda": 0.0, "gdpo_round": 2}, "gdpo_rounds"),
    ],
)
def test_config_names_the_bad_value(kwargs, needle):
    with pytest.raises(ConfigError, match=needle):
        GDPOArguments(**kwargs)


def test_config_pops_only_its_keys():
    raw = {"gdpo_lambda": 0.2, "gt_dataset": "gt", "pref_beta": 0.1, "stage": "gdpo", "gdpo_aligner_modules": "a, b"}
    args = GDPOArguments.pop_from(raw)
    assert raw == {"pref_beta": 0.1, "stage": "gdpo"}
    assert args.gdpo_lambda == 0.2 and args.aligner_modules == ["a", "b"]


def test_config_accepts_command_line_strings():
    raw = {
        "gdpo_lambda": "0.25",
        "gt_dataset": "gt",
        "gdpo_rounds": "true",
        "gdpo_round": "3",
        "gdpo_pack_prompt": "false",
    }
    args = GDPOArguments.pop_from(raw)
    assert (args.gdpo_lambda, args.gdpo_rounds, args.gdpo_round, args.gdpo_pack_prompt) == (0.25, True, 3, False)
    with pytest.raises(ConfigError, match="'maybe'"):
        GDPOArguments.pop_from({"gdpo_lambda": "0", "gdpo_rounds": "maybe"})


def test_sequence_nll_is_the_mean_caption_log_probability_by_hand():
    # two captions: log-probs -1 (1 token) and -9 (9 tokens): per caption 5.0, per token 1.0
    logps, tokens = torch.tensor([-1.0, -9.0]), torch.tensor([1, 9])
    assert ground_truth_nll(logps, tokens, "sequence").item() == pytest.approx(5.0)
    assert ground_truth_nll(logps, tokens, "token_mean").item() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="nll_reduction must be 'sequence' or 'token_mean', got 'sum'"):
        ground_truth_nll(logps, tokens, "sum")


@pytest.mark.parametrize("reduction, nll", [("sequence", 5.0), ("token_mean", 1.0)])
def test_gdpo_loss_adds_lambda_times_the_chosen_reduction(reduction, nll):
    zero = torch.zeros(2)
    out = gdpo_loss(
        zero, zero, zero, zero, torch.tensor([-1.0, -9.0]), torch.tensor([1, 9]), 0.1, 0.1, nll_reduction=reduction
    )
    assert out.nll_loss.item() == pytest.approx(nll)
    assert out.loss.item() == pytest.approx(math.log(2) + 0.1 * nll)
