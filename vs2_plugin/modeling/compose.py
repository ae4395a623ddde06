"""Compose a video-SALMONN 2 checkpoint from local parts (``vs2 build``, :mod:`vs2_plugin.commands.build`).

* the visual LLM: a Qwen2.5-VL model directory (safetensors), copied tensor by tensor; the
  published layout (flat ``config.json``, ``model.safetensors.index.json`` + bf16 shards,
  hub tensor names, tied embeddings without ``lm_head`` for the 3B) and transformers-5
  ``save_pretrained`` output both work (``tests/modeling/test_compose_hub.py``);
* the audio encoder: the encoder half of an openai-whisper checkpoint, read with
  ``torch.load(weights_only=True)`` (no pickled code runs);
* the audio aligner: randomly initialised (seeded), trained later in the alignment stage.

A composed model given as the visual LLM is composed again: its own audio encoder and aligner
are left out and replaced (:data:`AUDIO_BRANCH`), its trained audio token rows kept.

The work streams one safetensors shard at a time, so memory stays near the size of the
largest shard. The tokenizer gets ``<|audio_start|>``, ``<|audio_pad|>``, ``<|audio_end|>``;
Qwen2.5's embedding matrix has spare rows beyond its tokenizer (152,064 rows in the 7B,
151,936 in the 3B, for 151,665 tokens), so it is resized only if an audio token id falls outside it. The audio tokens land in
those spare, never-trained rows, so :func:`init_new_token_rows` gives each new token's input
embedding the mean of the source tokenizer's rows (plus a little seeded noise so the three
differ); the alignment stage then trains offsets for ``<|audio_start|>`` / ``<|audio_end|>``
(``audio_aligner.markers``, :class:`vs2_plugin.modeling.qformer.AudioMarkerOffsets`).
``<|audio_pad|>`` is always replaced by audio features. ``lm_head`` rows are left as they
are: the model never has to emit these tokens.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from vs2_plugin.errors import ConfigError, MediaError
from vs2_plugin.gdpo.rounds import atomic_directory
from vs2_plugin.modeling import MODEL_TYPE

SHARD_BYTES = 4 * 1024**3
#: the keys of a composed source's audio branch, which the new Whisper encoder and aligner replace
AUDIO_BRANCH = ("model.audio_encoder.", "model.audio_aligner.")
_NOT_CONFIG_KEYS = ("model_type", "architectures", "transformers_version", "_name_or_path", "auto_map")


def qwen_key_to_ours(key: str) -> str:
    """Map a Qwen2.5-VL checkpoint key (hub layout or transformers-5 layout) to our layout."""
    if key.startswith("visual."):
        return "model." + key
    if key.startswith("model.") and not key.startswith(("model.language_model.", "model.visual.")):
        return "model.language_model." + key[len("model.") :]
    return key


def _source_shards(visual_llm: Path) -> list[Path]:
    index = visual_llm / "model.safetensors.index.json"
    if index.is_file():
        try:
            files = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise MediaError(index, f"not a safetensors index (a 'weight_map' of tensor -> file): {exc}") from None
        missing = [name for name in files if not (visual_llm / name).is_file()]
        if missing:
            raise MediaError(index, f"names shard(s) not in the folder: {', '.join(missing)}")
        return [visual_llm / name for name in files]
    single = visual_llm / "model.safetensors"
    if single.is_file():
        return [single]
    raise MediaError(visual_llm, "no model.safetensors or model.safetensors.index.json (safetensors weights needed)")


def build_config(visual_llm: Path, audio_config: dict, token_ids: dict, vocab_size: int, **audio_settings):
    from transformers import AutoConfig

    from vs2_plugin.modeling.config import VideoSalmonn2Config

    source = AutoConfig.from_pretrained(visual_llm)
    if source.model_type not in ("qwen2_5_vl", MODEL_TYPE):
        raise ConfigError(f"--visual-llm {visual_llm}: model_type is {source.model_type!r}, expected 'qwen2_5_vl'")
    kwargs = {k: v for k, v in source.to_dict().items() if k not in _NOT_CONFIG_KEYS}
    for key in ("audio_config", "audio_token_id", "audio_start_token_id", "audio_end_token_id", *ALIGNER_SETTINGS):
        kwargs.pop(key, None)
    kwargs["text_config"]["vocab_size"] = vocab_size
    kwargs.update(audio_settings)
    return VideoSalmonn2Config(
        **kwargs,
        audio_config=audio_config,
        audio_start_token_id=token_ids["<|audio_start|>"],
        audio_token_id=token_ids["<|audio_pad|>"],
        audio_end_token_id=token_ids["<|audio_end|>"],
    )


def init_aligner(config, seed: int, dtype):
    """A freshly initialised audio aligner, the way the model's ``_init_weights`` does it."""
    import torch
    from torch import nn

    from vs2_plugin.modeling.qformer import WindowQFormerAligner

    generator = torch.Generator().manual_seed(seed)
    aligner = WindowQFormerAligner(config)
    std = config.text_config.initializer_range
    with torch.no_grad():
        for module in aligner.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                module.weight.normal_(0.0, std, generator=generator)
                if getattr(module, "bias", None) is not None:
                    module.bias.zero_()
        aligner.query_tokens.normal_(0.0, std, generator=generator)
    return {f"model.audio_aligner.{k}": v.to(dtype) for k, v in aligner.state_dict().items()}


def _pad_rows(tensor, rows: int):
    import torch

    extra = rows - tensor.shape[0]
    if extra <= 0:
        return tensor
    mean = tensor.float().mean(dim=0, keepdim=True).to(tensor.dtype)
    return torch.cat([tensor, mean.expand(extra, -1)], dim=0)


def init_new_token_rows(weight, real_rows: int, ids, seed: int = 0, noise: float = 0.01):
    """``weight`` with rows ``ids`` set to the mean of rows ``[0, real_rows)`` plus seeded
    Gaussian noise of ``noise`` x those rows' per-dimension standard deviation.

    The common initialisation of new tokens (transformers' ``resize_token_embeddings`` with
    ``mean_resizing`` samples around the same mean): a new token starts as an "average" token
    instead of an untrained row, and the noise keeps new tokens distinct from each other.
    Computed in float32, returned in ``weight``'s dtype; other rows are untouched.
    """
    import torch

    ids = sorted({int(i) for i in ids})
    if not ids:
        return weight
    if not 0 < real_rows <= weight.shape[0] or any(i < real_rows or i >= weight.shape[0] for i in ids):
        raise ConfigError(
            f"new token rows {ids} must lie in [{real_rows}, {weight.shape[0]}) after {real_rows} real rows"
        )
    real = weight[:real_rows].float()
    mean, std = real.mean(dim=0), real.std(dim=0)
    generator = torch.Generator().manual_seed(seed)
    rows = mean + noise * std * torch.randn(len(ids), weight.shape[1], generator=generator)
    out = weight.clone()
    out[ids] = rows.to(weight.dtype)
    return out


class _ShardWriter:
    def __init__(self, out: Path, limit: int = SHARD_BYTES):
        self.out, self.limit = out, limit
        self.pending, self.size, self.files, self.weight_map = {}, 0, [], {}

    def add(self, key, tensor):
        nbytes = tensor.numel() * tensor.element_size()
        if self.pending and self.size + nbytes > self.limit:
            self.flush()
        self.pending[key] = tensor.contiguous()
        self.size += nbytes

    def flush(self):
        from safetensors.torch import save_file

        if not self.pending:
            return
        name = f"model-{len(self.files) + 1:05d}.safetensors"
        save_file(self.pending, str(self.out / name), metadata={"format": "pt"})
        self.files.append(name)
        self.weight_map.update({k: name for k in self.pending})
        self.pending, self.size = {}, 0

    def finish(self):
        self.flush()
        total = len(self.files)
        final = {}
        for i, name in enumerate(self.files, start=1):
            target = "model.safetensors" if total == 1 else f"model-{i:05d}-of-{total:05d}.safetensors"
            (self.out / name).rename(self.out / target)
            final[name] = target
        if total > 1:
            index = {"metadata": {}, "weight_map": {k: final[v] for k, v in sorted(self.weight_map.items())}}
            (self.out / "model.safetensors.index.json").write_text(json.dumps(index, indent=2))


#: the aligner settings ``vs2 build`` sets; one left ``None`` takes VideoSalmonn2Config's default
#: (the audio geometry's from :data:`vs2_plugin.modeling.geometry.AUDIO_DEFAULTS`)
ALIGNER_SETTINGS = (
    "audio_window_s",
    "audio_queries_per_window",
    "qformer_layers",
    "qformer_hidden",
    "qformer_heads",
    "segment_position",
    "max_audio_segments",
)


#: the vision tokens a Qwen2.5-VL tokenizer holds, each with the config.json key giving its id
VISION_TOKENS = {
    "video_token_id": "<|video_pad|>",
    "image_token_id": "<|image_pad|>",
    "vision_start_token_id": "<|vision_start|>",
}


def check_tokenizer_matches(tokenizer, config, folder: Path) -> None:
    """Refuse a tokenizer whose vision tokens are not at the ids the model's config gives them.

    A folder without its tokenizer files still loads a tokenizer (a handful of tokens, every text
    encoded as nothing), and the audio tokens added to it would take the ids of real vocabulary rows.
    """
    for key, token in VISION_TOKENS.items():
        expected, got = getattr(config, key, None), tokenizer.convert_tokens_to_ids(token)
        if expected is not None and got != expected:
            raise MediaError(
                folder,
                f"its tokenizer ({len(tokenizer)} tokens) does not match its config.json: {token} is id {got}, "
                f"{key} is {expected}; are the tokenizer files (tokenizer.json, tokenizer_config.json) there?",
            )


def compose(visual_llm, whisper, out, *, seed: int = 0, progress: bool = True, **aligner_settings) -> Path:
    """Write the composed model directory ``out``; return its path.

    ``aligner_settings``: :data:`ALIGNER_SETTINGS` keys of :class:`VideoSalmonn2Config`; absent or
    ``None`` ones take the config's defaults (re-composing a composed model resets them too)."""
    unknown = sorted(set(aligner_settings) - set(ALIGNER_SETTINGS))
    if unknown:
        raise ConfigError(f"compose: unknown settings {unknown}; expected some of {list(ALIGNER_SETTINGS)}")
    aligner_settings = {k: v for k, v in aligner_settings.items() if v is not None}
    from transformers import AutoProcessor, AutoTokenizer

    from vs2_plugin.modeling import register_auto_classes
    from vs2_plugin.modeling.tokenizer import AUDIO_TOKENS, add_audio_tokens
    from vs2_plugin.modeling.whisper_encoder import load_whisper_checkpoint

    register_auto_classes()
    visual_llm, out = Path(visual_llm), Path(out)
    if not visual_llm.exists():
        raise ConfigError(f"--visual-llm {visual_llm}: not found")
    if not (visual_llm / "config.json").is_file():
        raise ConfigError(f"--visual-llm {visual_llm}: not a model directory (no config.json)")
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"--out {out} exists and is not empty")
    shards = _source_shards(visual_llm)
    audio_config, encoder_state = load_whisper_checkpoint(whisper)

    from transformers import AutoConfig

    try:
        tokenizer = AutoTokenizer.from_pretrained(visual_llm)
        source_config = AutoConfig.from_pretrained(visual_llm)
    except (OSError, ValueError) as exc:  # transformers' word for a config.json or tokenizer it cannot read
        raise MediaError(visual_llm, f"cannot read its config or tokenizer: {' '.join(str(exc).split())}") from None
    check_tokenizer_matches(tokenizer, source_config, visual_llm)
    known, real_rows = set(tokenizer.get_vocab()), len(tokenizer)
    add_audio_tokens(tokenizer)
    token_ids = {tok: tokenizer.convert_tokens_to_ids(tok) for tok in AUDIO_TOKENS}

    old_vocab = source_config.get_text_config().vocab_size
    needed = max(token_ids.values()) + 1
    vocab_size = old_vocab if needed <= old_vocab else -(-needed // 64) * 64  # resize only if needed
    new_ids = [token_ids[tok] for tok in AUDIO_TOKENS if tok not in known]  # re-composing keeps trained rows
    config = build_config(
        visual_llm,
        audio_config,
        token_ids,
        vocab_size,
        **aligner_settings,
    )

    with atomic_directory(out) as tmp:  # an interrupted or failed build leaves no --out
        dtype = _write_weights(tmp, shards, encoder_state, config, vocab_size, real_rows, new_ids, seed, progress)
        config.dtype = dtype
        config.architectures = ["VideoSalmonn2ForConditionalGeneration"]
        config.save_pretrained(tmp)
        if (visual_llm / "generation_config.json").is_file():
            shutil.copy(visual_llm / "generation_config.json", tmp / "generation_config.json")
        try:
            processor = AutoProcessor.from_pretrained(visual_llm)
            processor.tokenizer = tokenizer
            processor.save_pretrained(tmp)
        except (OSError, ValueError):  # a directory without processor files: tokenizer only
            tokenizer.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    return out


def _open_shard(shard: Path):
    """``safe_open`` on ``shard``; a file that is not safetensors is named, not a traceback."""
    from safetensors import SafetensorError, safe_open

    try:
        return safe_open(str(shard), framework="pt")
    except (SafetensorError, OSError) as exc:
        raise MediaError(shard, f"cannot read it as safetensors ({exc})") from None


def _write_weights(out: Path, shards, encoder_state, config, vocab_size, real_rows, new_ids, seed, progress):
    """Copy the visual LLM's tensors (embedding rows padded, new token rows initialised), add the
    Whisper encoder and a fresh aligner; return the source's dtype."""
    from tqdm import tqdm

    writer = _ShardWriter(out)
    dtype = None
    with tqdm(total=len(shards) + 2, desc="vs2 build", unit="part", disable=not progress) as bar:
        for shard in shards:
            with _open_shard(shard) as reader:
                for key in reader.keys():
                    if key.startswith(AUDIO_BRANCH):  # a composed source: its audio branch is replaced
                        continue
                    tensor = reader.get_tensor(key)
                    dtype = dtype or tensor.dtype
                    ours = qwen_key_to_ours(key)
                    if ours in ("model.language_model.embed_tokens.weight", "lm_head.weight"):
                        tensor = _pad_rows(tensor, vocab_size)
                    if ours == "model.language_model.embed_tokens.weight":
                        tensor = init_new_token_rows(tensor, real_rows, new_ids, seed=seed)
                    writer.add(ours, tensor)
            bar.update(1)
        for key, tensor in encoder_state.items():
            writer.add(f"model.audio_encoder.{key}", tensor.to(dtype))
        bar.update(1)
        for key, tensor in init_aligner(config, seed, dtype).items():
            writer.add(key, tensor)
        writer.finish()
        bar.update(1)
    return dtype
