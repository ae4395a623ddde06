"""``<|audio_start|>`` / ``<|audio_end|>``: initialised at build time, trained in the alignment stage."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from vs2_plugin.errors import ConfigError
from vs2_plugin.modeling.compose import compose, init_new_token_rows
from vs2_plugin.modeling.tiny import build_tiny_qwen25vl, build_tiny_whisper_checkpoint

EMBED = "model.language_model.embed_tokens.weight"
DELTA = "model.audio_aligner.markers.delta"


def test_init_new_token_rows_hand_worked():
    weight = torch.tensor([[1.0, 2.0], [3.0, 6.0], [9.0, 9.0], [7.0, 7.0]])
    # mean of the 2 real rows = [2, 4]; without noise both new rows are exactly that
    out = init_new_token_rows(weight, 2, [3, 2], noise=0.0)
    assert out.tolist() == [[1.0, 2.0], [3.0, 6.0], [2.0, 4.0], [2.0, 4.0]]
    assert weight[2].tolist() == [9.0, 9.0]  # the input is not modified
    noisy = init_new_token_rows(weight, 2, [2, 3], seed=1)
    assert torch.equal(noisy[:2], weight[:2]) and not torch.equal(noisy[2], noisy[3])
    # per-dimension std of the real rows: [1.414, 2.828]; noise 0.01 x std
    assert torch.allclose(noisy[2:], torch.tensor([2.0, 4.0]).expand(2, 2), atol=0.01 * 2.83 * 5)
    assert torch.equal(init_new_token_rows(weight, 2, [2, 3], seed=1), noisy)  # seeded
    assert init_new_token_rows(weight, 2, []) is weight
    with pytest.raises(ConfigError, match=r"new token rows \[1\] must lie in \[2, 4\)"):
        init_new_token_rows(weight, 2, [1])


@pytest.fixture(scope="module")
def composed_bf16(tmp_path_factory):
    root = tmp_path_factory.mktemp("markers")
    qwen = build_tiny_qwen25vl(root / "qwen", seed=0)
    weights = load_file(str(qwen / "model.safetensors"))
    from safetensors.torch import save_file

    save_file(
        {k: v.to(torch.bfloat16) for k, v in weights.items()},
        str(qwen / "model.safetensors"),
        metadata={"format": "pt"},
    )
    out = compose(qwen, build_tiny_whisper_checkpoint(root / "w.pt"), root / "vs2", progress=False)
    return weights, out


def test_build_initialises_the_audio_rows(composed_bf16):
    from transformers import AutoConfig

    source, out = composed_bf16
    config = AutoConfig.from_pretrained(out)
    composed = load_file(str(out / "model.safetensors"))
    embed, source_embed = composed[EMBED], source["model.embed_tokens.weight"].to(torch.bfloat16)
    audio = [config.audio_start_token_id, config.audio_token_id, config.audio_end_token_id]
    assert audio == [1008, 1009, 1010]  # after the source tokenizer's 1008 tokens, inside the 1024 rows
    others = [i for i in range(embed.shape[0]) if i not in audio]
    assert torch.equal(embed[others], source_embed[others])  # every other row is the source's
    assert embed.dtype == torch.bfloat16
    mean = source_embed[:1008].float().mean(0)
    spare = source_embed[1011:].float()
    for i in audio:
        row = embed[i].float()
        assert not torch.equal(embed[i], source_embed[i])  # no longer the untrained spare row
        assert (row - mean).abs().max() < 0.01 < (spare - row).abs().max(dim=1).values.min()
    assert len({tuple(embed[i].tolist()) for i in audio}) == 3  # distinct: the pad mask can tell them apart
    assert torch.equal(composed[DELTA], torch.zeros(2, embed.shape[1], dtype=torch.bfloat16))
    assert torch.equal(composed["lm_head.weight"], source["lm_head.weight"].to(torch.bfloat16))


def test_recomposing_keeps_existing_audio_rows(composed_bf16, tmp_path):
    _, out = composed_bf16
    again = compose(out, build_tiny_whisper_checkpoint(tmp_path / "w.pt"), tmp_path / "again", seed=3, progress=False)
    assert torch.equal(
        load_file(str(again / "model.safetensors"))[EMBED], load_file(str(out / "model.safetensors"))[EMBED]
    )


def _effective_embeddings(model_dir):
    from vs2_plugin.modeling.model import VideoSalmonn2ForConditionalGeneration

    model = VideoSalmonn2ForConditionalGeneration.from_pretrained(model_dir)
    with torch.no_grad():
        ids = torch.arange(model.config.text_config.vocab_size)[None]
        return model.model.embed_input_ids(ids)[0], model.config


@pytest.mark.slow
def test_alignment_step_moves_only_the_marker_rows(tiny_model_dir, tmp_path, venv_bin, run_cli, repo_root):
    """``vs2_align`` through llamafactory-cli (audio-only data, so the markers occur): the input
    embeddings of exactly ``<|audio_start|>`` and ``<|audio_end|>`` move, the matrix does not."""
    import os

    out = tmp_path / "align"
    env = {"PATH": f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}", "OMP_NUM_THREADS": "1"}
    res = run_cli(
        [
            "llamafactory-cli",
            "train",
            "recipes/tiny/audio_align.yaml",
            f"model_name_or_path={tiny_model_dir}",
            f"output_dir={out}",
            "max_steps=1",
            "weight_decay=0.1",
        ],
        cwd=repo_root,
        env=env,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    base, trained = load_file(str(tiny_model_dir / "model.safetensors")), load_file(str(out / "model.safetensors"))
    assert torch.equal(base[EMBED], trained[EMBED].to(base[EMBED].dtype))  # the matrix itself is frozen
    assert not base[DELTA].any() and trained[DELTA].abs().min() > 0  # every coordinate of both rows moved
    before, config = _effective_embeddings(tiny_model_dir)
    after, _ = _effective_embeddings(out)
    moved = (before != after).any(dim=1).nonzero().flatten().tolist()
    assert moved == [config.audio_start_token_id, config.audio_end_token_id]
