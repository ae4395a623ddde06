"""A tiny-width Qwen2.5-VL directory in the layout the hub publishes for Qwen/Qwen2.5-VL-7B-Instruct.

What is real: the flat ``config.json`` (text keys at top level, ``vision_config`` nested,
``rope_scaling`` of type ``mrope``, ``torch_dtype``), the hub's tensor names (``model.layers.*``,
``visual.*``, ``lm_head``), bf16 weights in several ``model-0000i-of-0000n.safetensors`` shards
with a ``model.safetensors.index.json``, a vocabulary of 152,064 rows (151,936 for the 3B, which
also ties its embeddings), and a tokenizer of 151,643 byte-level tokens followed by Qwen's 22
special tokens at their real ids (``<|endoftext|>`` 151643 ... ``<|file_sep|>`` 151664), so added
audio tokens get 151665+. What is tiny: the widths and depths (hidden 64, 2 layers, 2-block ViT),
and the BPE has no merges (its tokens are placeholders).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

QWEN_SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
    "<tool_call>",
    "</tool_call>",
    "<|fim_prefix|>",
    "<|fim_middle|>",
    "<|fim_suffix|>",
    "<|fim_pad|>",
    "<|repo_name|>",
    "<|file_sep|>",
]
BPE_TOKENS = 151643
IDS = {tok: BPE_TOKENS + i for i, tok in enumerate(QWEN_SPECIAL_TOKENS)}


def hub_tokenizer():
    """Qwen2Tokenizer with 151,643 byte-level tokens and Qwen's special tokens at their real ids."""
    from tokenizers import pre_tokenizers
    from transformers import Qwen2Tokenizer

    vocab = {char: i for i, char in enumerate(sorted(pre_tokenizers.ByteLevel.alphabet()))}
    vocab.update({f"{n}x": len(vocab) + n for n in range(BPE_TOKENS - len(vocab))})
    tokenizer = Qwen2Tokenizer(
        vocab=vocab, merges=[], unk_token=None, eos_token="<|endoftext|>", pad_token="<|endoftext|>", errors="replace"
    )
    tokenizer.add_special_tokens({"additional_special_tokens": QWEN_SPECIAL_TOKENS[1:]})
    tokenizer.eos_token = "<|im_end|>"
    assert len(tokenizer) == BPE_TOKENS + len(QWEN_SPECIAL_TOKENS)
    assert tokenizer.convert_tokens_to_ids("<|video_pad|>") == IDS["<|video_pad|>"] == 151656
    return tokenizer


def hub_config(vocab_size: int = 152064, tie_word_embeddings: bool = False) -> dict:
    """``config.json`` as published (flat), with tiny widths."""
    return {
        "architectures": ["Qwen2_5_VLForConditionalGeneration"],
        "attention_dropout": 0.0,
        "bos_token_id": IDS["<|endoftext|>"],
        "eos_token_id": IDS["<|im_end|>"],
        "vision_start_token_id": IDS["<|vision_start|>"],
        "vision_end_token_id": IDS["<|vision_end|>"],
        "vision_token_id": IDS["<|vision_pad|>"],
        "image_token_id": IDS["<|image_pad|>"],
        "video_token_id": IDS["<|video_pad|>"],
        "hidden_act": "silu",
        "hidden_size": 64,
        "initializer_range": 0.02,
        "intermediate_size": 128,
        "max_position_embeddings": 4096,
        "max_window_layers": 2,
        "model_type": "qwen2_5_vl",
        "num_attention_heads": 4,
        "num_hidden_layers": 2,
        "num_key_value_heads": 2,
        "rms_norm_eps": 1e-06,
        "rope_theta": 1000000.0,
        "sliding_window": 32768,
        "tie_word_embeddings": tie_word_embeddings,
        "torch_dtype": "bfloat16",
        "transformers_version": "4.41.2",
        "use_cache": True,
        "use_sliding_window": False,
        "vision_config": {
            "depth": 2,
            "hidden_act": "silu",
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_heads": 2,
            "in_chans": 3,
            "out_hidden_size": 64,
            "patch_size": 14,
            "spatial_merge_size": 2,
            "spatial_patch_size": 14,
            "window_size": 56,
            "fullatt_block_indexes": [1],
            "tokens_per_second": 2,
            "temporal_patch_size": 2,
        },
        "rope_scaling": {"type": "mrope", "mrope_section": [2, 3, 3]},
        "vocab_size": vocab_size,
    }


def to_hub_key(key: str) -> str:
    """transformers-5 names -> the published checkpoint's names."""
    if key.startswith("model.visual."):
        return key[len("model.") :]
    if key.startswith("model.language_model."):
        return "model." + key[len("model.language_model.") :]
    return key


def write_hub_qwen25vl(
    out, tokenizer, *, vocab_size: int = 152064, tie_word_embeddings: bool = False, shards: int = 3, seed: int = 0
) -> Path:
    """Write the directory; returns its path. Weights are seeded random bf16."""
    from safetensors.torch import save_file
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    from vs2_plugin.modeling.tiny import TINY_MAX_PIXELS, TINY_MIN_PIXELS
    from vs2_plugin.modeling.tokenizer import CHAT_TEMPLATE

    out = Path(out)
    out.mkdir(parents=True)
    config_dict = hub_config(vocab_size, tie_word_embeddings)
    (out / "config.json").write_text(json.dumps(config_dict, indent=2))
    config = Qwen2_5_VLConfig.from_pretrained(out)
    torch.manual_seed(seed)
    with torch.device("cpu"):
        model = Qwen2_5_VLForConditionalGeneration(config).to(torch.bfloat16)
    state = {to_hub_key(k): v.contiguous() for k, v in model.state_dict().items()}
    if tie_word_embeddings:
        state.pop("lm_head.weight", None)  # tied checkpoints do not store it
    keys = sorted(state)
    per_shard = -(-len(keys) // shards)
    weight_map, total = {}, 0
    for i in range(shards):
        name = f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
        part = {k: state[k] for k in keys[i * per_shard : (i + 1) * per_shard]}
        save_file(part, str(out / name), metadata={"format": "pt"})
        weight_map.update({k: name for k in part})
        total += sum(v.numel() * v.element_size() for v in part.values())
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (out / "model.safetensors.index.json").write_text(json.dumps(index, indent=2))
    (out / "generation_config.json").write_text(
        json.dumps(
            {
                "bos_token_id": IDS["<|endoftext|>"],
                "eos_token_id": [IDS["<|im_end|>"], IDS["<|endoftext|>"]],
                "pad_token_id": IDS["<|endoftext|>"],
                "do_sample": True,
                "temperature": 0.1,
            }
        )
    )
    tokenizer.save_pretrained(out)
    # the published processor files: an image-processor config naming the processor class, and
    # the chat template in its own file (pixel limits tiny here; hub: 3136 .. 12845056)
    (out / "preprocessor_config.json").write_text(
        json.dumps(
            {
                "min_pixels": TINY_MIN_PIXELS,
                "max_pixels": TINY_MAX_PIXELS,
                "patch_size": 14,
                "temporal_patch_size": 2,
                "merge_size": 2,
                "image_mean": [0.48145466, 0.4578275, 0.40821073],
                "image_std": [0.26862954, 0.26130258, 0.27577711],
                "image_processor_type": "Qwen2VLImageProcessor",
                "processor_class": "Qwen2_5_VLProcessor",
            },
            indent=2,
        )
    )
    (out / "chat_template.json").write_text(json.dumps({"chat_template": CHAT_TEMPLATE}))
    assert json.loads((out / "config.json").read_text()) == config_dict
    return out
