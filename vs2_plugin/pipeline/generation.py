"""Batched caption generation: many videos per ``generate`` call, n captions per prompt.

Used by the mrDPO driver's local sampling, rebirth labelling and ``vs2 caption``. Compared
with one ``ChatModel.chat`` call per caption:

* the model is loaded the way LLaMA-Factory's chat engine loads it (``get_infer_args``,
  ``load_tokenizer``, ``load_model``) and every prompt is built the way that engine and the
  training data path build it (the ``video_salmonn2`` template and mm plugin), so a greedy
  caption equals the chat engine's;
* the n captions of one prompt share one prefill: the prompt (media encoders included) runs
  once and its KV cache is repeated for the n rows that continue from it (without that,
  ``num_return_sequences`` would copy the prompt and prefill it n times); its media are read
  and decoded once;
* several prompts go into one left-padded batch; the mm plugin decodes each distinct file of
  a batch once, so a video's global and local prompts share one decode.

Sampling is seeded per caption: each output row draws from its own ``torch.Generator``
seeded by its key (:func:`seed_for`), after the temperature / top-k / top-p warpers, so a
caption does not depend on which other captions share its batch nor on the batch size, and an
interrupted run that resumes produces the captions an uninterrupted run would.

A prompt whose video cannot be read (:class:`~vs2_plugin.errors.MediaError`) fails alone:
the batch is retried prompt by prompt and the bad one is reported as an error result.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from transformers import LogitsProcessor, LogitsProcessorList
from transformers.generation.logits_process import (
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from vs2_plugin.errors import DataError, MediaError

VIDEO_PLACEHOLDER = "<video>"


def seed_for(seed: int, key: str) -> int:
    """A 32-bit seed from the run seed and a caption's key (stable across processes)."""
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


@dataclass
class PromptGroup:
    """One prompt on one video and the keys of the captions wanted from it (one per sample)."""

    video: str
    prompt: str  #: user text; ``<video>`` is put in front of it
    keys: list[str] = field(default_factory=list)


@dataclass
class Caption:
    key: str
    text: str | None
    finish_reason: str  #: "stop", "length" or "error"
    error: str | None = None  #: what is wrong with the video (its path is the prompt group's)


@dataclass(frozen=True)
class Decoding:
    """Greedy, or sampling with temperature / top-p (top-k from LLaMA-Factory's generating args)."""

    greedy: bool = True
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int = 0


class _SeededSampler(LogitsProcessor):
    """Samples each row with its own generator; returns scores whose argmax is the sample.

    ``generate`` runs with its own warpers switched off (temperature 1, no top-k / top-p), so
    the warpers here are the only ones applied and its draw from the returned scores can only
    pick the token sampled here.
    """

    def __init__(self, seeds: list[int], temperature: float, top_p: float, top_k: int):
        self.seeds = seeds
        self.generators: list[torch.Generator] | None = None  # made on the device of the logits
        warpers = [TemperatureLogitsWarper(float(temperature))]
        if top_k and top_k > 0:
            warpers.append(TopKLogitsWarper(int(top_k)))
        if top_p < 1.0:
            warpers.append(TopPLogitsWarper(float(top_p)))
        self.warpers = LogitsProcessorList(warpers)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if self.generators is None:
            self.generators = [torch.Generator(device=scores.device).manual_seed(s) for s in self.seeds]
        probs = torch.softmax(self.warpers(input_ids, scores).float(), dim=-1)
        chosen = torch.stack([torch.multinomial(probs[i], 1, generator=g) for i, g in enumerate(self.generators)])
        out = torch.full_like(scores, float("-inf"))
        return out.scatter_(1, chosen, 0.0)


def hub_id(name: str, marker: str = "config.json") -> bool:
    """Whether ``name`` reads as a model hub id ("org/model"), not a path, where the hub can answer:
    not when its first part is a folder here (``outputs/tiny-modle`` is a mistyped path); with
    ``HF_HUB_OFFLINE`` set, only when the hub cache holds its ``marker`` file."""
    import os
    import re

    if re.fullmatch(r"[\w.-]+/[\w.-]+", name) is None or name.startswith("."):
        return False
    if Path(name.split("/")[0]).is_dir():
        return False
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        from huggingface_hub import try_to_load_from_cache

        try:  # no hub: only its cache answers
            return isinstance(try_to_load_from_cache(name, marker), str)
        except ValueError:  # a name the hub would not take as a repository id
            return False
    return True


def folder_problem(path: str, name: str, adapter: bool = False) -> str | None:
    """Why ``path`` is not a model folder (``config.json``) or, with ``adapter``, a LoRA adapter folder
    (``adapter_config.json``), named as ``name``; None when it is one, or reads as a hub id (:func:`hub_id`)."""
    marker, kind = ("adapter_config.json", "a LoRA adapter folder") if adapter else ("config.json", "a model folder")
    if not Path(path).exists():
        return None if hub_id(str(path), marker) else f"{name}: not found"  # a hub id: the hub's (or its cache's)
    if not (Path(path) / marker).is_file():
        return f"{name}: {marker} not found (not {kind})"
    return None


def check_model_files(
    model: str, adapters: list[str], model_name: str = "model {}", adapter_name: str = "adapter {}"
) -> None:
    """A model folder and adapter folders that exist (:func:`folder_problem`), checked before anything
    loads (loading a missing one ends in a long traceback from the model hub); ConfigError naming the
    first that does not. ``model_name`` / ``adapter_name`` say how an error names them (``{}``: the path)."""
    from vs2_plugin.errors import ConfigError

    checks = [(model, model_name.format(model), False)]
    checks += [(adapter, adapter_name.format(adapter), True) for adapter in adapters]
    for path, name, adapter in checks:
        problem = folder_problem(path, name, adapter)
        if problem:
            raise ConfigError(problem)


class CaptionGenerator:
    """The model (base + LoRA adapters) loaded once, generating captions in batches."""

    def __init__(
        self,
        model: str,
        adapters: list[str] | None = None,
        infer: dict[str, Any] | None = None,
        max_new_tokens: int = 1024,
    ):
        from vs2_plugin.errors import ConfigError
        from vs2_plugin.integrations.llamafactory import TEMPLATE_NAME, model_template_problem, template_problem
        from vs2_plugin.integrations.llamafactory_api import (
            get_infer_args,
            get_template_and_fix_tokenizer,
            load_model,
            load_tokenizer,
        )
        from vs2_plugin.modeling.geometry import VIDEO_DEFAULTS

        args = {
            "template": TEMPLATE_NAME,
            **VIDEO_DEFAULTS.arguments(),  # the paper's frame sampling unless infer says otherwise
            **(infer or {}),
            "model_name_or_path": model,
            "infer_backend": "huggingface",
            "max_new_tokens": max_new_tokens,
        }
        if adapters:
            args["adapter_name_or_path"] = ",".join(adapters)
        problem = template_problem(args["template"], "infer.")  # LLaMA-Factory looks it up after loading
        problem = problem or model_template_problem(model, args["template"], "infer.")
        if problem:
            raise ConfigError(problem)
        model_args, data_args, finetuning_args, generating_args = get_infer_args(args)
        tokenizer_module = load_tokenizer(model_args)
        self.tokenizer = tokenizer_module["tokenizer"]
        self.processor = tokenizer_module["processor"]
        self.tokenizer.padding_side = "left"
        self.template = get_template_and_fix_tokenizer(self.tokenizer, data_args)
        self.model = load_model(self.tokenizer, model_args, finetuning_args, is_trainable=False)
        self.generating_args = generating_args.to_dict(obey_generation_config=True)
        self.stop_ids = set(self.template.get_stop_token_ids(self.tokenizer))
        pad = self.tokenizer.pad_token_id
        self.pad_id = pad if pad is not None else self.tokenizer.eos_token_id
        #: n samples of a prompt continue from one prefill (False: num_return_sequences copies the prompt)
        self.share_prefill = True

    # ------------------------------------------------------------------ inputs
    def prompt_ids(self, video: str, prompt: str) -> list[int]:
        """Token ids of one user turn ``<video>`` + ``prompt``, as the chat engine builds them."""
        plugin = self.template.mm_plugin
        messages = plugin.process_messages(
            [{"role": "user", "content": VIDEO_PLACEHOLDER + prompt}], [], [video], [], self.processor
        )
        ids, _ = self.template.encode_oneturn(self.tokenizer, messages + [{"role": "assistant", "content": ""}])
        ids, _ = plugin.process_token_ids(ids, None, [], [video], [], self.tokenizer, self.processor)
        return ids

    def batch_inputs(self, groups: list[PromptGroup]) -> dict[str, Any]:
        """Model inputs of the groups' prompts (left-padded ids, mask, media), on the model's device."""
        ids = [self.prompt_ids(g.video, g.prompt) for g in groups]
        width = max(len(x) for x in ids)
        input_ids = torch.tensor([[self.pad_id] * (width - len(x)) + x for x in ids], dtype=torch.long)
        mask = torch.tensor([[0] * (width - len(x)) + [1] * len(x) for x in ids], dtype=torch.long)
        videos = [g.video for g in groups]
        n = len(groups)
        mm = self.template.mm_plugin.get_mm_inputs(
            images=[],
            videos=videos,
            audios=[],
            imglens=[0] * n,
            vidlens=[1] * n,
            audlens=[0] * n,
            batch_ids=ids,
            processor=self.processor,
        )
        device, dtype = self.model.device, self.model.dtype
        out: dict[str, Any] = {"input_ids": input_ids.to(device), "attention_mask": mask.to(device)}
        for key, value in mm.items():
            if key == "second_per_grid_ts":
                out[key] = torch.as_tensor(value).tolist()
                continue
            value = torch.as_tensor(value)
            out[key] = (value.to(dtype) if torch.is_floating_point(value) else value).to(device)
        return out

    # ------------------------------------------------------------------ generation
    def _prefill_once(self, inputs: dict[str, Any], n: int) -> dict[str, Any]:
        """Run the prompts (all but their last token) once, media included, and repeat the
        resulting KV cache and M-RoPE offsets n times: ``generate`` then continues n rows per
        prompt from the shared cache, feeding each row only the last prompt token.

        ``num_return_sequences`` alone would copy the prompt before the prefill and run the
        encoders and the prefill n times.
        """
        ids, mask = inputs["input_ids"], inputs["attention_mask"]
        media = {k: v for k, v in inputs.items() if k not in ("input_ids", "attention_mask")}
        out = self.model(input_ids=ids[:, :-1], attention_mask=mask[:, :-1], use_cache=True, logits_to_keep=1, **media)
        cache = out.past_key_values
        cache.batch_repeat_interleave(n)
        # the decoder's positions continue from the offsets of the prompt's 3D positions, which
        # the prefill stored per row (Qwen2.5-VL's ``rope_deltas``, on whichever module holds it)
        for module in self.model.modules():
            deltas = getattr(module, "rope_deltas", None)
            if isinstance(deltas, torch.Tensor) and deltas.shape[0] == ids.shape[0]:
                module.rope_deltas = deltas.repeat_interleave(n, dim=0)
        return {
            "input_ids": ids.repeat_interleave(n, dim=0),
            "attention_mask": mask.repeat_interleave(n, dim=0),
            "past_key_values": cache,
        }

    @torch.inference_mode()
    def generate_batch(self, groups: list[PromptGroup], decoding: Decoding) -> list[Caption]:
        """All groups in one ``generate`` call; every group must want the same number of captions."""
        from transformers import GenerationConfig

        n = {len(g.keys) for g in groups}
        if len(n) != 1 or 0 in n:
            raise ValueError(f"one batch needs the same non-zero number of captions per prompt; got {sorted(n)}")
        n_samples = n.pop()
        if decoding.greedy and n_samples > 1:
            raise ValueError("greedy decoding gives one caption per prompt; ask for one key per group")
        inputs = self.batch_inputs(groups)
        gen = {k: v for k, v in self.generating_args.items() if k not in ("temperature", "top_p", "top_k")}
        gen.update(
            do_sample=False,
            num_beams=1,
            num_return_sequences=n_samples,
            eos_token_id=sorted(self.stop_ids),
            pad_token_id=self.pad_id,
        )
        if not decoding.greedy:
            # transformers' own sampling step, with its warpers switched off, draws the one token
            # _SeededSampler left possible (num_return_sequences > 1 requires do_sample)
            gen.update(do_sample=True, temperature=1.0, top_k=0, top_p=1.0)
        keys = [k for g in groups for k in g.keys]  # the row order of num_return_sequences
        processors = None
        if not decoding.greedy:
            processors = LogitsProcessorList(
                [
                    _SeededSampler(
                        [seed_for(decoding.seed, k) for k in keys],
                        decoding.temperature,
                        decoding.top_p,
                        self.generating_args.get("top_k", 0),
                    )
                ]
            )
        width = inputs["input_ids"].shape[1]
        if n_samples > 1 and self.share_prefill:
            inputs = self._prefill_once(inputs, n_samples)
            gen["num_return_sequences"] = 1  # the rows are already expanded
        output = self.model.generate(**inputs, generation_config=GenerationConfig(**gen), logits_processor=processors)
        responses = output[:, width:].tolist()
        results = []
        for key, ids in zip(keys, responses):
            stop = next((i for i, t in enumerate(ids) if t in self.stop_ids), None)
            text = self.tokenizer.decode(
                ids if stop is None else ids[:stop], skip_special_tokens=True, clean_up_tokenization_spaces=True
            )
            results.append(Caption(key, text, "length" if stop is None else "stop"))
        return results

    def generate(
        self,
        groups: Iterable[PromptGroup],
        decoding: Decoding,
        batch_size: int = 4,
        on_batch: Callable[[list[Caption]], None] | None = None,
    ) -> list[Caption]:
        """Every group, ``batch_size`` prompts per ``generate`` call (consecutive groups with the
        same number of keys); ``on_batch`` gets each batch's captions as soon as they exist."""
        results: list[Caption] = []
        for batch in batches(list(groups), batch_size):
            try:
                got = self.generate_batch(batch, decoding)
            except (MediaError, DataError):
                got = []
                for group in batch:  # isolate the unreadable video(s); the others still get captions
                    try:
                        got.extend(self.generate_batch([group], decoding))
                    except (MediaError, DataError) as exc:
                        problem = exc.problem if isinstance(exc, MediaError) else str(exc)  # the path is the group's
                        got.extend(Caption(k, None, "error", problem) for k in group.keys)
            if on_batch is not None:
                on_batch(got)
            results.extend(got)
        return results


def batches(groups: list[PromptGroup], batch_size: int) -> list[list[PromptGroup]]:
    """Consecutive runs of at most ``batch_size`` groups that want the same number of captions."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1; got {batch_size}")
    out: list[list[PromptGroup]] = []
    for group in groups:
        if out and len(out[-1]) < batch_size and len(out[-1][0].keys) == len(group.keys):
            out[-1].append(group)
        else:
            out.append([group])
    return out
