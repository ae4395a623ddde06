"""``vs2 build`` from an already composed model: its audio branch is replaced, the rest copied."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from vs2_plugin.modeling.compose import compose
from vs2_plugin.modeling.tiny import build_tiny_qwen25vl, build_tiny_whisper_checkpoint


@pytest.fixture(scope="module")
def composed(tmp_path_factory):
    root = tmp_path_factory.mktemp("compose-again")
    qwen = build_tiny_qwen25vl(root / "qwen", seed=0)
    return compose(qwen, build_tiny_whisper_checkpoint(root / "a.pt", seed=0), root / "first", progress=False)


def test_recomposing_replaces_the_audio_branch_and_writes_no_stray_keys(composed, tmp_path):
    from transformers import AutoModelForImageTextToText

    from vs2_plugin.modeling import register_auto_classes

    other_whisper = build_tiny_whisper_checkpoint(tmp_path / "b.pt", seed=1)
    again = compose(composed, other_whisper, tmp_path / "again", seed=1, progress=False)
    first, second = load_file(str(composed / "model.safetensors")), load_file(str(again / "model.safetensors"))
    assert sorted(second) == sorted(first)  # the old encoder and aligner were copied as language-model keys
    new_encoder = torch.load(other_whisper, weights_only=True)["model_state_dict"]
    conv = "model.audio_encoder.conv1.weight"
    assert torch.equal(second[conv], new_encoder["encoder.conv1.weight"])
    layer = "model.language_model.layers.0.mlp.up_proj.weight"
    assert torch.equal(second[layer], first[layer])
    register_auto_classes()
    _, info = AutoModelForImageTextToText.from_pretrained(str(again), output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
