"""A tiny random video-SALMONN 2 model directory, offline, in seconds on CPU (``vs2 build-tiny``).

The directory holds everything LLaMA-Factory needs with ``model_name_or_path: DIR``:
tokenizer (byte-level BPE trained on Python's stdlib sources, Qwen special tokens plus the
audio tokens), a ``Qwen2_5_VLProcessor`` with tiny-friendly pixel limits, ``config.json``
and ``model.safetensors``. Everything is deterministic for a given ``seed``.

``build_tiny_text_model`` writes a plain tiny Qwen2 causal LM with the same tokenizer, for
tests that want an ordinary text-only LLM.
"""

from __future__ import annotations

from pathlib import Path

#: Pixel limits of the tiny processor: a frame becomes 4..16 merged visual tokens.
TINY_MIN_PIXELS = 28 * 28 * 4
TINY_MAX_PIXELS = 28 * 28 * 16
TINY_VOCAB_SIZE = 1024  # 1000 BPE tokens + 11 special tokens + spare rows (like Qwen's)


def tiny_text_config_kwargs(token_ids: dict[str, int]) -> dict:
    """Text-model sizes shared by the tiny multimodal and text-only models."""
    return dict(
        vocab_size=TINY_VOCAB_SIZE,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        rms_norm_eps=1e-6,
        bos_token_id=token_ids["<|endoftext|>"],
        eos_token_id=token_ids["<|im_end|>"],
        pad_token_id=token_ids["<|endoftext|>"],
    )


def tiny_qwen25vl_config_dict(token_ids: dict[str, int]) -> dict:
    """Keyword arguments of a tiny ``Qwen2_5_VLConfig`` (hidden 64, 2 layers, 2-block ViT)."""
    text = tiny_text_config_kwargs(token_ids)
    # head_dim 16 -> 8 rotary frequencies split over (temporal, height, width).
    text["rope_parameters"] = {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3]}
    vision = dict(
        depth=2,
        hidden_size=32,
        intermediate_size=64,
        num_heads=2,
        patch_size=14,
        spatial_merge_size=2,
        temporal_patch_size=2,
        tokens_per_second=2,
        window_size=56,
        out_hidden_size=64,
        fullatt_block_indexes=[1],
    )
    return dict(
        text_config=text,
        vision_config=vision,
        image_token_id=token_ids["<|image_pad|>"],
        video_token_id=token_ids["<|video_pad|>"],
        vision_start_token_id=token_ids["<|vision_start|>"],
        vision_end_token_id=token_ids["<|vision_end|>"],
        tie_word_embeddings=False,
    )


def tiny_audio_config_dict() -> dict:
    """A tiny Whisper encoder (real frame geometry: 80 mels, 3000 frames -> 1500 states)."""
    from vs2_plugin.modeling.geometry import AUDIO_DEFAULTS

    return dict(n_mels=80, n_audio_ctx=AUDIO_DEFAULTS.segment_frames, n_audio_state=32, n_audio_head=2, n_audio_layer=2)


def build_tiny_processor(tokenizer):
    """``Qwen2_5_VLProcessor`` with image and video processors limited to tiny frames."""
    from transformers import Qwen2_5_VLProcessor, Qwen2VLImageProcessor, Qwen2VLVideoProcessor

    image_processor = Qwen2VLImageProcessor(min_pixels=TINY_MIN_PIXELS, max_pixels=TINY_MAX_PIXELS)
    video_processor = Qwen2VLVideoProcessor(min_pixels=TINY_MIN_PIXELS, max_pixels=TINY_MAX_PIXELS)
    return Qwen2_5_VLProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        video_processor=video_processor,
        chat_template=tokenizer.chat_template,
    )


def _seed_everything(seed: int) -> None:
    import random

    import torch

    random.seed(seed)
    torch.manual_seed(seed)


def build_tiny_model(out_dir, seed: int = 0, audio_window_s: float | None = None, **config_overrides) -> Path:
    """Write a tiny random video-SALMONN 2 model directory to ``out_dir``; return its path.

    ``config_overrides`` are passed to :class:`VideoSalmonn2Config` (e.g. ``qformer_layers=1``).
    Same ``seed`` -> identical weights and files.
    """

    from vs2_plugin.modeling import register_auto_classes
    from vs2_plugin.modeling.config import VideoSalmonn2Config
    from vs2_plugin.modeling.model import VideoSalmonn2ForConditionalGeneration
    from vs2_plugin.modeling.tokenizer import special_token_ids, train_tiny_tokenizer

    register_auto_classes()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = train_tiny_tokenizer()
    token_ids = special_token_ids(tokenizer)
    kwargs = tiny_qwen25vl_config_dict(token_ids)
    kwargs.update(
        audio_config=tiny_audio_config_dict(),
        qformer_hidden=32,
        qformer_heads=2,
        audio_start_token_id=token_ids["<|audio_start|>"],
        audio_token_id=token_ids["<|audio_pad|>"],
        audio_end_token_id=token_ids["<|audio_end|>"],
        # a tiny model's frozen encoder states take 192 KB a segment: every clip of a run fits
        audio_encoder_cache_mb=512,
    )
    if audio_window_s is not None:  # None: the paper's window (VideoSalmonn2Config's default)
        kwargs["audio_window_s"] = audio_window_s
    kwargs.update(config_overrides)
    config = VideoSalmonn2Config(**kwargs)
    return _save_random(VideoSalmonn2ForConditionalGeneration, config, seed, out, tokenizer, token_ids, processor=True)


def build_tiny_text_model(out_dir, seed: int = 0) -> Path:
    """Write a tiny random Qwen2 causal LM (text only) with the tiny tokenizer; return its path."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from vs2_plugin.modeling.tokenizer import special_token_ids, train_tiny_tokenizer

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = train_tiny_tokenizer()
    token_ids = special_token_ids(tokenizer)
    config = Qwen2Config(**tiny_text_config_kwargs(token_ids), tie_word_embeddings=False)
    return _save_random(Qwen2ForCausalLM, config, seed, out, tokenizer, token_ids, processor=False)


def _save_random(model_class, config, seed: int, out: Path, tokenizer, token_ids: dict, processor: bool) -> Path:
    """Instantiate ``model_class`` with seeded random weights on the CPU and write it with its tokenizer
    (and the tiny processor); generation stops at ``<|im_end|>`` or ``<|endoftext|>``."""
    import torch

    _seed_everything(seed)
    with torch.device("cpu"):
        model = model_class(config)
    model.generation_config.eos_token_id = [token_ids["<|im_end|>"], token_ids["<|endoftext|>"]]
    model.generation_config.pad_token_id = token_ids["<|endoftext|>"]
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    if processor:
        build_tiny_processor(tokenizer).save_pretrained(out)
    return out


def build_tiny_qwen25vl(out_dir, seed: int = 0) -> Path:
    """Write a tiny random stock Qwen2.5-VL directory (no audio tokens): the ``--visual-llm``
    input of ``vs2 build`` in tests."""
    import torch
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    from vs2_plugin.modeling.tokenizer import train_tiny_tokenizer

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = train_tiny_tokenizer(with_audio_tokens=False)
    token_ids = {tok: tokenizer.convert_tokens_to_ids(tok) for tok in tokenizer.all_special_tokens}
    token_ids["<|endoftext|>"] = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    config = Qwen2_5_VLConfig(**tiny_qwen25vl_config_dict(token_ids))
    _seed_everything(seed)
    with torch.device("cpu"):
        model = Qwen2_5_VLForConditionalGeneration(config)
    model.save_pretrained(out, safe_serialization=True)
    build_tiny_processor(tokenizer).save_pretrained(out)
    return out


def build_tiny_whisper_checkpoint(path, seed: int = 0, n_mels: int = 80) -> Path:
    """Write a tiny random openai-whisper checkpoint ``{"dims", "model_state_dict"}`` that
    ``whisper.load_model(path)`` loads; its encoder matches :func:`tiny_audio_config_dict`."""
    import dataclasses

    import torch
    from whisper.model import ModelDimensions, Whisper

    audio = tiny_audio_config_dict()
    audio["n_mels"] = n_mels
    dims = ModelDimensions(**audio, n_vocab=51865, n_text_ctx=8, n_text_state=32, n_text_head=2, n_text_layer=1)
    _seed_everything(seed)
    model = Whisper(dims)
    # Random (not default-initialised) weights, so equivalence tests exercise every tensor.
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            param.copy_(torch.randn(param.shape, generator=generator) * 0.1)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"dims": dataclasses.asdict(dims), "model_state_dict": model.state_dict()}, path)
    return path
