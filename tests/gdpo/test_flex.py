"""The packed shared-prompt mask on FlexAttention: the same rule as the dense SDPA mask, equal
outputs, chosen automatically on CUDA, configurable."""

from __future__ import annotations

import pytest
import torch

from vs2_plugin.errors import ConfigError
from vs2_plugin.gdpo.config import GDPOArguments
from vs2_plugin.gdpo.packing import (
    SEG_CHOSEN,
    SEG_GT,
    SEG_PAD,
    SEG_PROMPT,
    SEG_REJECTED,
    block_attention_mask,
    flex_available,
    flex_block_mask,
    resolve_pack_attention,
)

pytestmark = pytest.mark.skipif(not flex_available(), reason="torch without FlexAttention")


def _segments():
    """Two packed rows of odd lengths (not block multiples), with padding inside and at the end."""
    rows = [
        [SEG_PROMPT] * 23 + [SEG_CHOSEN] * 9 + [SEG_PAD] * 3 + [SEG_REJECTED] * 11 + [SEG_GT] * 7 + [SEG_PAD] * 2,
        [SEG_PROMPT] * 30 + [SEG_CHOSEN] * 5 + [SEG_REJECTED] * 14 + [SEG_GT] * 6 + [SEG_PAD] * 0,
    ]
    return torch.tensor(rows)


def test_flex_block_mask_is_the_dense_mask():
    from torch.nn.attention.flex_attention import create_mask

    segments = _segments()
    dense = block_attention_mask(segments)
    block = flex_block_mask(segments)
    n, length = segments.shape
    assert block.shape[-2:] == (length, length)
    assert torch.equal(create_mask(block.mask_mod, n, None, length, length, device="cpu"), dense)
    assert dense[0, 0, 40, 25].item() is False and dense[0, 0, 40, 5].item() is True  # rejected: prompt, no chosen


def test_flex_attention_equals_sdpa_with_the_dense_mask():
    """FlexAttention (eager on CPU) with the block mask == SDPA with the dense mask, GQA shapes."""
    from torch.nn.attention.flex_attention import flex_attention

    segments = _segments()
    n, length = segments.shape
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(n, 4, length, 16, generator=g) for _ in range(3))
    flex = flex_attention(q, k, v, block_mask=flex_block_mask(segments))
    sdpa = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=block_attention_mask(segments))
    assert torch.allclose(flex, sdpa, atol=1e-5)


@pytest.mark.slow
def test_packed_forward_on_flex_equals_sdpa(tmp_path_factory, text_args, load_pieces, collator, perturb_lora):
    """The real packed forward of a LoRA model: log-probs with FlexAttention == with SDPA.

    FlexAttention has no backward pass on CPU, so this compares without gradients."""
    from vs2_plugin.gdpo.packing import FLEX_BLOCK, PACKED_FLEX, packed_forward, set_pack_attention, text_attention
    from vs2_plugin.modeling.tiny import build_tiny_text_model

    model_dir = build_tiny_text_model(tmp_path_factory.mktemp("text-model"), seed=0)
    pieces = load_pieces(text_args(model_dir, tmp_path_factory.mktemp("out")))
    perturb_lora(pieces.model)
    pieces.model.eval()
    collate = collator(pieces, pack=True)
    collate.pad_to_multiple_of = FLEX_BLOCK
    batch = collate([dict(pieces.pairs[i]) for i in (0, 3)])
    batch.pop("gdpo_pair_index")
    assert batch["input_ids"].shape[-1] % FLEX_BLOCK == 0
    assert (batch["gdpo_segments"] == SEG_GT).any()
    with torch.no_grad():
        assert text_attention(pieces.model) == "sdpa"
        sdpa = packed_forward(pieces.model, dict(batch))
        set_pack_attention(pieces.model, "flex_attention")
        assert text_attention(pieces.model) == PACKED_FLEX
        flex = packed_forward(pieces.model, dict(batch))
        set_pack_attention(pieces.model, "sdpa")
    for key in ("chosen_logps", "rejected_logps", "gt_logps"):
        assert torch.allclose(flex[key], sdpa[key], rtol=1e-5, atol=1e-4), (key, flex[key], sdpa[key])
    assert torch.equal(flex["gt_tokens"], sdpa["gt_tokens"]) and int(sdpa["gt_tokens"].sum()) > 0


def test_qwen25vl_language_model_switches_to_flex(tmp_path):
    """Qwen2.5-VL's text model refuses transformers' 'flex_attention'; the kernel registered through
    the public AttentionInterface reaches it (the towers keep their attention)."""
    from transformers import AutoModelForImageTextToText

    from vs2_plugin.gdpo.packing import PACKED_FLEX, set_pack_attention, text_attention
    from vs2_plugin.modeling import register_auto_classes
    from vs2_plugin.modeling.tiny import build_tiny_model

    register_auto_classes()
    model = AutoModelForImageTextToText.from_pretrained(build_tiny_model(tmp_path, seed=0), attn_implementation="sdpa")
    with pytest.raises(ValueError, match="flex"):
        model.set_attn_implementation({"text_config": "flex_attention"})
    set_pack_attention(model, "flex_attention")
    assert text_attention(model) == PACKED_FLEX == model.model.language_model.config._attn_implementation
    assert model.config.vision_config._attn_implementation == "sdpa"
    assert resolve_pack_attention("auto", text_attention(model), on_cuda=False) == "flex_attention"


@pytest.mark.parametrize(
    "mode, current, on_cuda, expected",
    [
        ("auto", "sdpa", True, "flex_attention"),  # GPU: FlexAttention chosen automatically
        ("auto", "flash_attention_2", True, "flex_attention"),  # FA2 cannot take the block mask
        ("auto", "sdpa", False, "sdpa"),  # CPU: no flex backward -> the dense fallback
        ("auto", "eager", False, "eager"),
        ("auto", None, False, "sdpa"),
        ("sdpa", "flash_attention_2", True, "sdpa"),  # forced
        ("flex", "sdpa", False, "flex_attention"),  # forced (e.g. a no-grad evaluation on CPU)
    ],
)
def test_pack_attention_choice(mode, current, on_cuda, expected):
    assert resolve_pack_attention(mode, current, on_cuda) == expected


def test_pack_attention_without_a_usable_kernel_names_the_setting():
    with pytest.raises(ConfigError, match="gdpo_pack_attention"):
        resolve_pack_attention("auto", "flash_attention_2", on_cuda=False)
    with pytest.raises(ConfigError, match="'flash'"):
        GDPOArguments(gdpo_lambda=0.0, gdpo_pack_attention="flash")
    assert GDPOArguments(gdpo_lambda=0.0).gdpo_pack_attention == "auto"


@pytest.mark.slow
def test_packed_forward_on_flex_equals_sdpa_audio_visual_model(
    tmp_path_factory, av_args, load_pieces, collator, perturb_lora
):
    """The tiny video-SALMONN 2 (Qwen2.5-VL text model, mRoPE, video + audio tokens), no gradients."""
    import vs2_plugin.integrations.llamafactory as integration
    from vs2_plugin.gdpo.packing import FLEX_BLOCK, packed_forward, set_pack_attention
    from vs2_plugin.modeling.tiny import build_tiny_model

    integration.register()
    model_dir = build_tiny_model(tmp_path_factory.mktemp("av-model"), seed=0)
    pieces = load_pieces(av_args(model_dir, tmp_path_factory.mktemp("av-out")))
    perturb_lora(pieces.model)
    pieces.model.eval()
    collate = collator(pieces, pack=True)
    collate.pad_to_multiple_of = FLEX_BLOCK
    batch = collate([dict(pieces.pairs[i]) for i in (0, 2)])  # two different videos
    batch.pop("gdpo_pair_index")
    assert batch["position_ids"].dim() == 3
    with torch.no_grad():
        set_pack_attention(pieces.model, "sdpa")
        sdpa = packed_forward(pieces.model, dict(batch))
        set_pack_attention(pieces.model, "flex_attention")
        flex = packed_forward(pieces.model, dict(batch))
    for key in ("chosen_logps", "rejected_logps", "gt_logps"):
        assert torch.allclose(flex[key], sdpa[key], rtol=1e-5, atol=1e-4), (key, flex[key], sdpa[key])
