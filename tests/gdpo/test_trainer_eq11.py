"""The trainer's loss with lambda > 0 is stock DPO + lambda * cross-entropy on the ground truth
(eq. 11), each computed independently; and every round's policy starts equal to its reference
(DPO loss ln 2 at step 0) on the real round path."""

from __future__ import annotations

import math

import pytest
import torch

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    from vs2_plugin.modeling.tiny import build_tiny_text_model

    return build_tiny_text_model(tmp_path_factory.mktemp("text-model"), seed=0)


@pytest.fixture(scope="module")
def pieces(model_dir, tmp_path_factory, text_args, load_pieces, perturb_lora):
    p = load_pieces(text_args(model_dir, tmp_path_factory.mktemp("out")))
    perturb_lora(p.model)
    p.model.eval()
    return p


def _stock_dpo_loss(p, features) -> float:
    """LLaMA-Factory's CustomDPOTrainer on its own pairwise batch (sigmoid DPO, reference = adapter off)."""
    from llamafactory.data.collator import PairwiseDataCollatorWithPadding
    from llamafactory.train.dpo.trainer import CustomDPOTrainer

    stock = CustomDPOTrainer(
        model=p.model,
        ref_model=None,
        args=p.training_args,
        finetuning_args=p.finetuning_args,
        data_collator=None,
        train_dataset=p.pairs,
        **p.tokenizer_module,
    )
    pairwise = PairwiseDataCollatorWithPadding(
        template=p.template, model=p.model, pad_to_multiple_of=8, label_pad_token_id=-100, **p.tokenizer_module
    )
    rows = [{k: v for k, v in f.items() if not k.startswith("gt_") and k != "pair_index"} for f in features]
    with torch.no_grad():
        loss, _ = stock.get_batch_loss_metrics(p.model, pairwise(rows))
    return loss.item()


def _ground_truth_ce(p, features) -> tuple[float, int]:
    """The ordinary token-averaged cross-entropy of the pairs' ground-truth rows (transformers' loss)
    and the number of tokens it averages over."""
    tokenizer = p.tokenizer_module["tokenizer"]
    width = max(len(f["gt_input_ids"]) for f in features)
    ids = torch.full((len(features), width), tokenizer.pad_token_id)
    mask = torch.zeros((len(features), width), dtype=torch.long)
    labels = torch.full((len(features), width), -100)
    for i, f in enumerate(features):
        n = len(f["gt_input_ids"])
        ids[i, :n] = torch.tensor(f["gt_input_ids"])
        mask[i, :n] = 1
        labels[i, :n] = torch.tensor(f["gt_labels"])
    with torch.no_grad():
        ce = p.model(input_ids=ids, attention_mask=mask, labels=labels).loss.item()
    return ce, int((labels[:, 1:] != -100).sum())


@pytest.mark.parametrize("reduction", ["sequence", "token_mean"])
@pytest.mark.parametrize("pack", [True, False], ids=["packed", "unpacked"])
def test_trainer_loss_is_stock_dpo_plus_lambda_times_ground_truth_ce(pieces, pack, collator, reduction, monkeypatch):
    from vs2_plugin.gdpo.trainer import GDPOTrainer

    p = pieces
    features = [dict(p.pairs[i]) for i in (0, 3)]
    lam = p.gdpo_args.gdpo_lambda
    assert lam == pytest.approx(0.1) and p.gdpo_args.gdpo_nll_reduction == "sequence"  # the default
    monkeypatch.setattr(p.gdpo_args, "gdpo_nll_reduction", reduction)
    dpo = _stock_dpo_loss(p, features)
    ce, n_tokens = _ground_truth_ce(p, features)
    assert dpo != pytest.approx(math.log(2), abs=1e-3) and ce > 0.5  # both terms are non-trivial
    # per caption: the summed NLL of the rows over their number; per token: the CE itself
    nll = ce * n_tokens / len(features) if reduction == "sequence" else ce

    trainer = GDPOTrainer(
        model=p.model,
        ref_model=None,
        args=p.training_args,
        finetuning_args=p.finetuning_args,
        data_collator=None,
        train_dataset=p.pairs,
        gdpo_args=p.gdpo_args,
        **p.tokenizer_module,
    )
    batch = collator(p, pack=pack)(features)
    assert ("gdpo_gt_batch" in batch) != pack  # packed: the gt continues the shared prompt
    with torch.no_grad():
        loss, metrics = trainer.get_batch_loss_metrics(p.model, batch)
    assert loss.item() == pytest.approx(dpo + lam * nll, abs=1e-4)
    assert metrics["gdpo/dpo_loss"] == pytest.approx(dpo, abs=2e-5)
    assert metrics["gdpo/nll_loss"] == pytest.approx(nll, abs=1e-4)


@pytest.mark.parametrize("hook", ["memory", "export"])
def test_every_round_starts_with_policy_equal_to_reference(model_dir, tmp_path, hook, text_args):
    """Step 1 of each round is computed before any update: with a fresh LoRA (B = 0) on the merged
    reference, every pair's log-ratio is 0, so the DPO part is exactly ln 2 and the margins 0."""
    from vs2_plugin.gdpo.workflow import run_gdpo_from_dict

    out = tmp_path / hook
    args = text_args(model_dir, out, gdpo_rounds=True, gdpo_round_hook=hook, max_steps=2, learning_rate=5e-3)
    firsts = []
    for expected in (1, 2):
        result = run_gdpo_from_dict(dict(args))
        assert result.round == expected
        logged = [h for h in result.trainer.state.log_history if "gdpo/dpo_loss" in h]
        assert [h["step"] for h in logged] == [1, 2]
        firsts.append(logged[0])
        assert logged[1]["gdpo/dpo_loss"] != pytest.approx(math.log(2), abs=1e-4)  # it did train
    # float32 sums over ~1,000 tokens, reference from the cached pass: equal up to ~1e-5
    for first in firsts:
        assert first["gdpo/dpo_loss"] == pytest.approx(math.log(2), abs=2e-5)
        assert first["rewards/margins"] == pytest.approx(0.0, abs=2e-5)
        assert first["loss"] == pytest.approx(math.log(2) + 0.1 * first["gdpo/nll_loss"], abs=1e-4)
