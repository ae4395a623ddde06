"""Round hook (paper sec. 3.3, eq. 10): merge, reference, fresh LoRA; in memory and via export."""

from __future__ import annotations

import json

import pytest
import torch

from vs2_plugin.errors import ConfigError
from vs2_plugin.gdpo.rounds import ExportRoundHook, InMemoryRoundHook, RoundState, atomic_directory


def _tiny_peft(tmp_path, seed=0):
    """A saved tiny Qwen2 base + a PEFT model on it whose LoRA B (and saved module) are non-zero."""
    from peft import LoraConfig, get_peft_model
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(seed)
    config = Qwen2Config(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        tie_word_embeddings=False,
    )
    base = Qwen2ForCausalLM(config).eval()
    base_dir = tmp_path / "base"
    base.save_pretrained(base_dir)
    lora = LoraConfig(
        r=4,
        lora_alpha=16,
        target_modules=["q_proj", "v_proj"],
        modules_to_save=["lm_head"],
        lora_dropout=0.0,
        task_type="CAUSAL_LM",
    )
    model = get_peft_model(base, lora)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name or "modules_to_save" in name:
                param.add_(torch.randn_like(param) * 0.05)
    return model.eval(), base_dir


def _lora_layers(model):
    from peft.tuners.lora import LoraLayer

    return {name: module for name, module in model.named_modules() if isinstance(module, LoraLayer)}


def _input():
    return torch.randint(0, 64, (2, 11), generator=torch.Generator().manual_seed(5))


def test_in_memory_hook_merges_eq10_and_starts_fresh(tmp_path):
    model, _ = _tiny_peft(tmp_path)
    ids = _input()
    with torch.no_grad():
        before = model(ids).logits
    expected = {}
    for name, layer in _lora_layers(model).items():
        a, b = layer.lora_A["default"].weight, layer.lora_B["default"].weight
        expected[name.replace("base_model.model.", "")] = layer.base_layer.weight + layer.scaling["default"] * b @ a
    trained_head = model.base_model.model.lm_head.modules_to_save["default"].weight.clone()

    policy = InMemoryRoundHook()(model, seed=1)

    merged = policy.get_base_model()
    for name, weight in expected.items():  # W_t = W_{t-1} + scale * B A (eq. 10), every adapted layer
        merged_weight = merged.get_submodule(name).base_layer.weight
        assert torch.allclose(merged_weight, weight, atol=1e-6), name
    assert torch.equal(merged.lm_head.original_module.weight, trained_head)  # saved module merged too
    layers = _lora_layers(policy)
    assert layers and all(torch.count_nonzero(l.lora_B["default"].weight) == 0 for l in layers.values())
    assert all(torch.count_nonzero(l.lora_A["default"].weight) > 0 for l in layers.values())
    trainable = {n for n, p in policy.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n or "modules_to_save" in n for n in trainable)
    with torch.no_grad():
        after = policy(ids).logits
        with policy.disable_adapter():
            reference = policy(ids).logits
    assert (after - before).abs().max() <= 1e-5  # merged + new LoRA == base + old LoRA
    assert (reference - before).abs().max() <= 1e-5  # reference (adapter off) == old policy


@pytest.mark.slow
def test_export_hook_agrees_with_in_memory(tmp_path):
    from transformers import Qwen2ForCausalLM

    model_a, base_dir = _tiny_peft(tmp_path / "a")
    model_b, _ = _tiny_peft(tmp_path / "b")
    ids = _input()
    with torch.no_grad():
        before = model_a(ids).logits
    memory = InMemoryRoundHook()(model_a, seed=1)
    hook = ExportRoundHook(
        work_dir=tmp_path / "export",
        backbone_path=str(base_dir),
        load_fn=lambda path: Qwen2ForCausalLM.from_pretrained(path, dtype=torch.float32).eval(),
    )
    exported = hook(model_b, seed=1)
    assert hook.backbone_path == str(tmp_path / "export" / "merge-001" / "merged")
    assert not list((tmp_path / "export" / "merge-001").glob(".*tmp*"))  # atomic: no temp folder left
    mem_state = memory.get_base_model().state_dict()
    exp_state = exported.get_base_model().state_dict()
    assert mem_state.keys() == exp_state.keys()
    for key in mem_state:
        assert torch.allclose(mem_state[key], exp_state[key], atol=1e-6), key
    with torch.no_grad():
        out = exported(ids).logits
    assert (out - before).abs().max() <= 1e-5


def test_atomic_directory_leaves_nothing_on_failure(tmp_path):
    final = tmp_path / "merged"
    with pytest.raises(RuntimeError):
        with atomic_directory(final) as tmp:
            (tmp / "part.bin").write_bytes(b"x")
            raise RuntimeError("killed")
    assert not final.exists() and not list(tmp_path.iterdir())
    with atomic_directory(final) as tmp:
        (tmp / "ok.bin").write_bytes(b"y")
    assert (final / "ok.bin").read_bytes() == b"y"
    assert [p.name for p in tmp_path.iterdir()] == ["merged"]


def test_round_state_order_and_resume(tmp_path):
    state = RoundState.load_or_create(tmp_path, "base", "memory", ["sft-lora"])
    assert state.next_round() == 1
    record = state.begin(1)
    state.update(record, status="training")
    reopened = RoundState.load_or_create(tmp_path, "base", "memory", ["sft-lora"])
    assert reopened.next_round() == 1  # unfinished round is resumed, not skipped
    with pytest.raises(ConfigError, match="round 1 is not finished"):
        reopened.begin(2)
    reopened.update(reopened.record(1), status="done", adapter="round-001")
    assert reopened.next_round() == 2
    assert reopened.adapters_before(2) == ["sft-lora", str(tmp_path / "round-001")]
    data = json.loads((tmp_path / "rounds.json").read_text())
    assert data["rounds"][0]["status"] == "done"
    with pytest.raises(ConfigError, match="other-base"):
        RoundState.load_or_create(tmp_path, "other-base", "memory", ["sft-lora"])
    with pytest.raises(ConfigError, match="export"):
        RoundState.load_or_create(tmp_path, "base", "export", ["sft-lora"])
