"""Packed shared-prompt batches give the same log-probs and loss as LLaMA-Factory's plain path."""

from __future__ import annotations

import pytest
import torch

from tests.support.gdpo import collator
from vs2_plugin.gdpo.loss import sequence_logps, shift_labels
from vs2_plugin.gdpo.packing import SEG_GT, packed_forward

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def text_pieces(tmp_path_factory, text_args, load_pieces, perturb_lora):
    from vs2_plugin.modeling.tiny import build_tiny_text_model

    model_dir = build_tiny_text_model(tmp_path_factory.mktemp("text-model"), seed=0)
    pieces = load_pieces(text_args(model_dir, tmp_path_factory.mktemp("out")))
    perturb_lora(pieces.model)
    pieces.model.eval()
    return pieces


def _rows(pieces, indices):
    return [dict(pieces.pairs[i]) for i in indices]


def _plain_logps(pieces, features):
    """LLaMA-Factory's path: stock pairwise collation (2n rows) + get_batch_logps; gt separately."""
    from llamafactory.train.trainer_utils import get_batch_logps

    batch = collator(pieces, pack=False)(features)
    gt = batch.pop("gdpo_gt_batch")
    for key in [k for k in batch if k.startswith("gdpo_")]:
        batch.pop(key)
    labels = batch.pop("labels")
    with torch.no_grad():
        logps, _ = get_batch_logps(pieces.model(**batch).logits.float(), labels)
        gt_labels = gt.pop("labels")
        gt_logps, gt_tokens = sequence_logps(pieces.model(**gt).logits, shift_labels(gt_labels))
    n = len(features)
    return logps[:n], logps[n:], gt_logps, gt_tokens


def _packed_logps(pieces, features):
    batch = collator(pieces, pack=True)(features)
    assert "gdpo_gt_batch" not in batch  # same video + prompt: gt is a continuation too
    assert (batch["gdpo_segments"] == SEG_GT).any()
    for key in ("gdpo_pair_index",):
        batch.pop(key)
    with torch.no_grad():
        out = packed_forward(pieces.model, batch)
    return out["chosen_logps"], out["rejected_logps"], out["gt_logps"], out["gt_tokens"]


def _assert_close(plain, packed):
    for a, b in zip(plain, packed):
        assert torch.allclose(a.float(), b.float(), rtol=1e-5, atol=1e-4), (a, b)


def test_packed_equals_plain_text_model(text_pieces):
    features = _rows(text_pieces, [0, 3])  # different prompt lengths -> padding inside the pack
    plain, packed = _plain_logps(text_pieces, features), _packed_logps(text_pieces, features)
    _assert_close(plain, packed)
    with text_pieces.model.disable_adapter():  # the reference side too
        _assert_close(_plain_logps(text_pieces, features), _packed_logps(text_pieces, features))


def test_ground_truth_of_another_video_is_a_separate_batch(text_pieces):
    features = _rows(text_pieces, [0, 1])
    other = _rows(text_pieces, [5, 6])
    for feature, donor in zip(features, other):  # as gt_sampling "random" may draw
        for key in [k for k in donor if k.startswith("gt_")]:
            feature[key] = donor[key]
    batch = collator(text_pieces, pack=True)(features)
    assert "gdpo_gt_batch" in batch and not (batch["gdpo_segments"] == SEG_GT).any()
    with torch.no_grad():
        packed = packed_forward(
            text_pieces.model, {k: v for k, v in batch.items() if k in _PACKED_KEYS or not k.startswith("gdpo_")}
        )
        gt = dict(batch["gdpo_gt_batch"])
        gt_labels = gt.pop("labels")
        gt_logps, gt_tokens = sequence_logps(text_pieces.model(**gt).logits, shift_labels(gt_labels))
    plain = _plain_logps(text_pieces, features)
    _assert_close(plain, (packed["chosen_logps"], packed["rejected_logps"], gt_logps, gt_tokens))


_PACKED_KEYS = ("gdpo_segments", "gdpo_targets")


def test_packed_batch_is_shorter(text_pieces):
    features = _rows(text_pieces, [1, 2])
    packed = collator(text_pieces, pack=True)(features)
    plain = collator(text_pieces, pack=False)(features)
    plain_tokens = plain["input_ids"].numel() + plain["gdpo_gt_batch"]["input_ids"].numel()
    assert packed["input_ids"].numel() < plain_tokens


def test_trainer_loss_equals_llamafactory_dpo_when_lambda_is_zero(text_pieces):
    """gDPO with lambda=0 == CustomDPOTrainer's sigmoid DPO loss on the same batch."""
    from llamafactory.train.dpo.trainer import CustomDPOTrainer

    from vs2_plugin.gdpo.trainer import GDPOTrainer

    p = text_pieces
    features = _rows(p, [0, 1])
    common = dict(
        model=p.model,
        ref_model=None,
        args=p.training_args,
        finetuning_args=p.finetuning_args,
        data_collator=None,
        train_dataset=p.pairs,
        **p.tokenizer_module,
    )
    stock = CustomDPOTrainer(**common)
    stock_batch = collator(p, pack=False)(features)
    stock_batch = {k: v for k, v in stock_batch.items() if not k.startswith("gdpo_")}
    with torch.no_grad():
        stock_loss, stock_metrics = stock.get_batch_loss_metrics(p.model, dict(stock_batch))
    p.gdpo_args.gdpo_lambda = 0.0
    ours = GDPOTrainer(gdpo_args=p.gdpo_args, **common)
    try:
        with torch.no_grad():
            plain_loss, metrics = ours.get_batch_loss_metrics(p.model, collator(p, pack=False)(features))
            packed_loss, _ = ours.get_batch_loss_metrics(p.model, collator(p, pack=True)(features))
    finally:
        p.gdpo_args.gdpo_lambda = 0.1
    assert stock_loss.item() != pytest.approx(0.6931, abs=1e-3)  # the perturbed LoRA makes it non-trivial
    assert abs(plain_loss.item() - stock_loss.item()) < 1e-6
    assert abs(packed_loss.item() - stock_loss.item()) < 1e-5
    assert metrics["rewards/margins"] == pytest.approx(stock_metrics["rewards/margins"], abs=1e-5)
    assert metrics["gdpo/dpo_loss"] == pytest.approx(plain_loss.item())


def test_packed_equals_plain_audio_visual_model(tmp_path_factory, av_args, load_pieces, perturb_lora):
    """The tiny video-SALMONN 2 (mRoPE, video + audio tokens): continuations reuse their positions."""
    import vs2_plugin.integrations.llamafactory as integration
    from vs2_plugin.modeling.tiny import build_tiny_model

    integration.register()
    model_dir = build_tiny_model(tmp_path_factory.mktemp("av-model"), seed=0)
    pieces = load_pieces(av_args(model_dir, tmp_path_factory.mktemp("av-out")))
    perturb_lora(pieces.model)
    pieces.model.eval()
    features = _rows(pieces, [0, 2])  # two different videos in one batch
    batch = collator(pieces, pack=True)(features)
    assert batch["position_ids"].dim() == 3  # mRoPE
    _assert_close(_plain_logps(pieces, features), _packed_logps(pieces, features))


def test_packed_equals_plain_stock_qwen25vl(tmp_path_factory, av_args, load_pieces, perturb_lora):
    """A stock LLaMA-Factory VL model (qwen2_vl template and mm plugin, mRoPE), video rows."""
    from vs2_plugin.modeling.tiny import build_tiny_qwen25vl

    model_dir = build_tiny_qwen25vl(tmp_path_factory.mktemp("qwen25vl"), seed=0)
    args = av_args(model_dir, tmp_path_factory.mktemp("vl-out"), template="qwen2_vl", use_audio_in_video=False)
    pieces = load_pieces(args)
    perturb_lora(pieces.model)
    pieces.model.eval()
    features = _rows(pieces, [1, 3])
    assert collator(pieces, pack=True)(features)["position_ids"].dim() == 3
    _assert_close(_plain_logps(pieces, features), _packed_logps(pieces, features))
