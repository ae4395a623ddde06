"""A trainable non-LoRA module (the audio aligner) must never move the reference."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from vs2_plugin.errors import ConfigError
from vs2_plugin.gdpo.config import GDPOArguments
from vs2_plugin.gdpo.workflow import apply_aligner_policy


def _peft(modules_to_save=None, extra_trainable=None):
    from peft import LoraConfig, get_peft_model
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    config = Qwen2Config(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
        tie_word_embeddings=False,
    )
    lora = LoraConfig(
        r=2, lora_alpha=4, target_modules=["q_proj"], modules_to_save=modules_to_save, task_type="CAUSAL_LM"
    )
    model = get_peft_model(Qwen2ForCausalLM(config), lora)
    for name, param in model.named_parameters():
        if extra_trainable and extra_trainable in name:
            param.requires_grad_(True)
    return model


LORA = SimpleNamespace(finetuning_type="lora")


def test_trainable_module_outside_the_adapter_is_refused_with_its_name():
    model = _peft(extra_trainable="mlp.up_proj")  # e.g. an aligner left trainable by the loader
    with pytest.raises(ConfigError, match=r"mlp\.up_proj.*gdpo_aligner_modules"):
        apply_aligner_policy(model, LORA, GDPOArguments(gdpo_lambda=0.0))


def test_freeze_policy_freezes_the_named_module():
    model = _peft(extra_trainable="mlp.up_proj")
    args = GDPOArguments(gdpo_lambda=0.0, gdpo_aligner_policy="freeze", gdpo_aligner_modules="up_proj")
    apply_aligner_policy(model, LORA, args)
    assert not any(p.requires_grad for n, p in model.named_parameters() if "up_proj" in n)
    assert any(p.requires_grad for n, p in model.named_parameters() if "lora_" in n)


def test_adapter_policy_keeps_the_reference_copy_frozen():
    model = _peft(modules_to_save=["lm_head"])
    apply_aligner_policy(model, LORA, GDPOArguments(gdpo_lambda=0.0))  # modules_to_save is allowed
    ids = torch.randint(0, 64, (1, 9), generator=torch.Generator().manual_seed(1))
    with torch.no_grad(), model.disable_adapter():
        reference_before = model(ids).logits
    with torch.no_grad():  # a "training step" on the module's trainable copy
        model.base_model.model.lm_head.modules_to_save["default"].weight.add_(0.5)
        policy = model(ids).logits
        with model.disable_adapter():
            reference_after = model(ids).logits
    assert torch.equal(reference_before, reference_after)
    assert not torch.allclose(policy, reference_after)
