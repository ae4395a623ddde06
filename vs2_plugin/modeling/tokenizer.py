"""Tokenizer pieces shared by the tiny model builder and ``vs2 build``.

The audio branch needs three tokens the Qwen2.5-VL vocabulary lacks: ``<|audio_start|>``,
``<|audio_pad|>`` (one per audio token the aligner produces) and ``<|audio_end|>``.
The tiny tokenizer is a byte-level BPE trained offline on Python's own stdlib sources,
wrapped in ``Qwen2Tokenizer`` (the class Qwen2.5-VL uses), so no download is needed.
"""

from __future__ import annotations

import inspect
import json

AUDIO_START = "<|audio_start|>"
AUDIO_PAD = "<|audio_pad|>"
AUDIO_END = "<|audio_end|>"
AUDIO_TOKENS = [AUDIO_START, AUDIO_PAD, AUDIO_END]

#: The Qwen2.5-VL special tokens, in Qwen's order, followed by ours.
QWEN_SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
]
SPECIAL_TOKENS = QWEN_SPECIAL_TOKENS + AUDIO_TOKENS

#: Qwen2.5-VL's chat template reduced to what the placeholders need, plus audio items:
#: a video becomes ``<|vision_start|><|video_pad|><|vision_end|>`` and an audio item
#: ``<|audio_start|><|audio_pad|><|audio_end|>``; the processor / data plugin expands the pads.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' }}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{{ '<|vision_start|><|image_pad|><|vision_end|>' }}"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{{ '<|vision_start|><|video_pad|><|vision_end|>' }}"
    "{% elif content['type'] == 'audio' or 'audio' in content %}"
    "{{ '<|audio_start|><|audio_pad|><|audio_end|>' }}"
    "{% elif 'text' in content %}{{ content['text'] }}"
    "{% endif %}{% endfor %}{% endif %}"
    "{{ '<|im_end|>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

# Fixed list so the training text (and hence the vocabulary) only depends on the Python version.
_CORPUS_MODULES = ("json", "argparse", "collections", "textwrap", "string", "dataclasses", "functools", "enum")


def _training_corpus() -> list[str]:
    import importlib

    texts = []
    for name in _CORPUS_MODULES:
        module = importlib.import_module(name)
        texts.append(inspect.getsource(module))
    # A few caption-like sentences so common English words get merged too.
    texts.append(
        "A man speaks while a dog barks in the background. The camera pans to the left and "
        "music plays softly. Two people talk about the weather; a car drives past."
    )
    return texts


def train_tiny_tokenizer(vocab_size: int = 1000, with_audio_tokens: bool = True):
    """Train a byte-level BPE of ``vocab_size`` base tokens and wrap it in ``Qwen2Tokenizer``.

    The special tokens follow at ids ``vocab_size ...`` in :data:`SPECIAL_TOKENS` order
    (without the audio ones if ``with_audio_tokens`` is false, like a stock Qwen2.5-VL).
    Deterministic for a given Python installation (the stdlib sources are the corpus).
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import Qwen2Tokenizer

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=[],
        show_progress=False,
    )
    bpe.train_from_iterator(_training_corpus(), trainer)
    model = json.loads(bpe.to_str())["model"]
    vocab = dict(sorted(model["vocab"].items(), key=lambda kv: kv[1]))
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in model["merges"]]
    tokenizer = Qwen2Tokenizer(
        vocab=vocab,
        merges=merges,
        unk_token=None,
        eos_token="<|endoftext|>",
        pad_token="<|endoftext|>",
        errors="replace",
    )
    if with_audio_tokens:
        add_audio_tokens(tokenizer, extra=QWEN_SPECIAL_TOKENS)
    else:
        tokenizer.add_special_tokens({"additional_special_tokens": QWEN_SPECIAL_TOKENS[1:]})
    tokenizer.eos_token = "<|im_end|>"  # as in Qwen2.5-VL-Instruct: a chat turn ends generation
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.model_max_length = 32768
    return tokenizer


def add_audio_tokens(tokenizer, extra: list[str] | None = None) -> list[int]:
    """Add the audio special tokens (and ``extra`` ones) that are missing; return the audio ids.

    Tokens already in the vocabulary keep their ids, so adding is idempotent.
    """
    wanted = list(extra or []) + AUDIO_TOKENS
    vocab = tokenizer.get_vocab()
    missing = [tok for tok in wanted if tok not in vocab]
    if missing:
        tokenizer.add_special_tokens({"additional_special_tokens": missing}, replace_extra_special_tokens=False)
    return [tokenizer.convert_tokens_to_ids(tok) for tok in AUDIO_TOKENS]


def special_token_ids(tokenizer) -> dict[str, int]:
    """Ids of the Qwen and audio special tokens in ``tokenizer`` (the model config needs them)."""
    ids = {tok: tokenizer.convert_tokens_to_ids(tok) for tok in SPECIAL_TOKENS}
    unknown = [tok for tok, idx in ids.items() if idx is None or idx == tokenizer.unk_token_id]
    if unknown:
        from vs2_plugin.errors import ConfigError

        raise ConfigError(f"tokenizer lacks special tokens {unknown}")
    return ids
