"""``vs2 export`` with sources it cannot merge: one line naming the folder, no ``--out``; a text-only
checkpoint (what the gDPO rounds of a text model merge) exports like the multimodal one."""

from __future__ import annotations

import json
import re
import shutil

import pytest
import torch

from vs2_plugin.cli import main as vs2_main
from vs2_plugin.errors import ConfigError
from vs2_plugin.modeling.export import export_merged


def text_adapter(base, out, seed: int):
    """A LoRA adapter with random non-zero weights on a text-only causal LM."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    peft_model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(str(base)), LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj"])
    )
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_" in name:
                param.add_(0.05 * torch.randn(param.shape, generator=generator))
    peft_model.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def text_parts(tmp_path_factory):
    from vs2_plugin.modeling.tiny import build_tiny_text_model

    tmp = tmp_path_factory.mktemp("text-export")
    base = build_tiny_text_model(tmp / "text", seed=0)
    return base, text_adapter(base, tmp / "adapter", seed=3)


def test_text_only_checkpoint_exports_base_plus_adapter(text_parts, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base, adapter = text_parts
    out = tmp_path / "merged"
    assert vs2_main(["export", "--model", str(base), "--adapters", str(adapter), "--out", str(out)]) == 0
    ids = torch.tensor([[5, 17, 300, 42, 9]])
    stacked = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(str(base)), str(adapter)).eval()
    with torch.no_grad():
        want = stacked(input_ids=ids).logits
        got = AutoModelForCausalLM.from_pretrained(str(out)).eval()(input_ids=ids).logits
    assert (want - got).abs().max().item() <= 1e-5


def test_an_adapter_of_another_model_is_refused(tiny_model_dir, text_parts, tmp_path):
    """Its keys find no module of the base: PEFT only warns, and the export equalled the base."""
    _, adapter = text_parts
    with pytest.raises(ConfigError, match=f"adapter {adapter}: does not fit model {tiny_model_dir}"):
        export_merged(tiny_model_dir, [str(adapter)], tmp_path / "out")
    assert not (tmp_path / "out").exists()


def _broken(kind, tiny_model_dir, adapter, tmp_path):
    """``(model, adapters, message)``: a source of the given kind of damage."""
    if kind.startswith("model"):
        model = shutil.copytree(tiny_model_dir, tmp_path / "model")
        if kind == "model config":
            (model / "config.json").write_text("{not json")
            return model, [], "config.json is not readable JSON"
        (model / "model.safetensors").unlink()
        return model, [], r"cannot load it \(Error no file named model\.safetensors"
    copy = shutil.copytree(adapter, tmp_path / "adapter")
    config = json.loads((copy / "adapter_config.json").read_text())
    if kind == "adapter config":
        (copy / "adapter_config.json").write_text("[]")
        return tiny_model_dir, [copy], "adapter_config.json is not readable JSON"
    if kind == "adapter weights":  # PEFT then looked for them on the model hub
        (copy / "adapter_model.safetensors").unlink()
        return tiny_model_dir, [copy], "no adapter_model.safetensors or adapter_model.bin"
    if kind == "adapter rank":
        config["r"] = 8
        message = "does not fit model .*size mismatch"
    else:
        config["target_modules"] = ["c_attn"]
        message = "does not fit model .*No modules were targeted"
    (copy / "adapter_config.json").write_text(json.dumps(config))
    return tiny_model_dir, [copy], message


@pytest.mark.parametrize(
    "kind", ["model config", "model weights", "adapter config", "adapter weights", "adapter rank", "adapter targets"]
)
def test_sources_that_cannot_load_are_one_line_naming_them(tiny_model_dir, random_adapter, tmp_path, kind, capsys):
    adapter = random_adapter(tiny_model_dir, tmp_path / "lora", seed=1, aligner=True)
    model, adapters, message = _broken(kind, tiny_model_dir, adapter, tmp_path)
    named = str(adapters[0]) if adapters else str(model)
    out = tmp_path / "out"
    argv = ["export", "--model", str(model), "--out", str(out)] + (
        ["--adapters", *map(str, adapters)] if adapters else []
    )
    assert vs2_main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("vs2 export: error: ") and named in err
    assert re.search(message, err), err
    assert not out.exists()
