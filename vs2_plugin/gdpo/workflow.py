"""The ``gdpo`` stage: LLaMA-Factory's DPO workflow with ground-truth guidance (eq. 11).

Entry points:

* :func:`run_gdpo_from_dict` — raw YAML/CLI dict with ``stage: gdpo`` -> pop the
  :class:`GDPOArguments` keys, parse the rest as ``stage: dpo`` with LLaMA-Factory's parser,
  run. This is what ``llamafactory-cli train`` reaches through the integration, and what the
  mrDPO driver calls once per round.
* :func:`run_gdpo` — the same with already parsed arguments.

With ``gdpo_rounds: true`` one call runs one round of a multi-round run kept in
``output_dir`` (see :mod:`vs2_plugin.gdpo.rounds`): it resumes an unfinished round (from its last
complete checkpoint, reusing its cached reference log-probs) or starts the next one with the
previous rounds' adapters merged into the reference and a fresh LoRA.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vs2_plugin.errors import ConfigError
from vs2_plugin.gdpo.config import GDPOArguments

CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")


@dataclass
class GDPOResult:
    """What a gDPO run (or round) produced."""

    output_dir: str
    round: int | None = None
    skipped: bool = False
    metrics: dict | None = None
    trainer: Any = None


def run_gdpo_from_dict(args: dict[str, Any], callbacks: list | None = None) -> GDPOResult:
    """Pop the gDPO keys, parse the rest as LLaMA-Factory DPO arguments, run the stage."""
    from vs2_plugin.integrations.llamafactory_api import LogCallback, get_train_args

    args = dict(args)
    gdpo_args = GDPOArguments.pop_from(args)
    stage = args.get("stage", "gdpo")
    if stage not in ("gdpo", "dpo"):
        raise ConfigError(f"run_gdpo_from_dict runs stage 'gdpo', got stage={stage!r}")
    args["stage"] = "dpo"
    model_args, data_args, training_args, finetuning_args, _generating_args = get_train_args(args)
    callbacks = list(callbacks or [])
    if not any(isinstance(cb, LogCallback) for cb in callbacks):
        callbacks.append(LogCallback())
    return run_gdpo(model_args, data_args, training_args, finetuning_args, gdpo_args, callbacks)


def check_dpo_settings(finetuning_args) -> None:
    if finetuning_args.pref_loss != "sigmoid":
        raise ConfigError(f"gDPO uses the sigmoid DPO loss; pref_loss={finetuning_args.pref_loss!r} is not supported")
    if finetuning_args.pref_ftx > 0:
        raise ConfigError(
            f"pref_ftx={finetuning_args.pref_ftx} adds NLL on the chosen side (cDPO); gDPO's NLL is on the "
            "ground truth: use gdpo_lambda and gt_dataset instead"
        )
    if finetuning_args.pref_bco_weight > 0 or finetuning_args.ld_alpha is not None:
        raise ConfigError("gDPO does not combine with pref_bco_weight or ld_alpha")


def run_gdpo(model_args, data_args, training_args, finetuning_args, gdpo_args: GDPOArguments, callbacks=None):
    """Run the gDPO stage (one round in multi-round mode). Returns a :class:`GDPOResult`."""
    check_dpo_settings(finetuning_args)
    if gdpo_args.gdpo_rounds:
        return _run_round(model_args, data_args, training_args, finetuning_args, gdpo_args, callbacks)
    result = train_gdpo(model_args, data_args, training_args, finetuning_args, gdpo_args, callbacks)
    return result


# --------------------------------------------------------------------------------- one training run
def load_gt_dataset(template, model_args, data_args, training_args, gdpo_args, tokenizer_module):
    """The ground-truth captions through LLaMA-Factory's SFT data path (same template, mm plugin)."""
    from vs2_plugin.integrations.llamafactory_api import get_dataset

    gt_data_args = copy.copy(data_args)
    gt_data_args.dataset = [name.strip() for name in gdpo_args.gt_dataset.split(",") if name.strip()]
    gt_data_args.dataset_dir = gdpo_args.gt_dataset_dir or data_args.dataset_dir
    gt_data_args.eval_dataset = None
    gt_data_args.val_size = 0.0
    gt_data_args.packing = False
    gt_data_args.neat_packing = False
    gt_data_args.tokenized_path = None
    gt_data_args.streaming = False
    module = get_dataset(template, model_args, gt_data_args, training_args, stage="sft", **tokenizer_module)
    return module["train_dataset"]


def attach_ground_truth(dataset_module, template, model_args, data_args, training_args, gdpo_args, tokenizer_module):
    """Give every pair of the training *and* evaluation sets its ground-truth row and ``pair_index``.

    The evaluation loss is eq. 11 too, so ``val_size`` / ``eval_dataset`` pairs need their ground
    truth as much as the training pairs. Returns the training set's match statistics
    (``gt_match_rate``: the share of pairs that got their own video and prompt), logged and
    stored with the train metrics and in ``rounds.json``.
    """
    from transformers.utils import logging

    from vs2_plugin.gdpo.gtdata import add_pair_index, attach_gt_with_stats

    gt = None
    if gdpo_args.gdpo_lambda > 0 and any(dataset_module.get(k) is not None for k in ("train_dataset", "eval_dataset")):
        gt = load_gt_dataset(template, model_args, data_args, training_args, gdpo_args, tokenizer_module)

    def prepare(pairs, name):
        if gt is None:
            return add_pair_index(pairs), {}
        pairs, stats = attach_gt_with_stats(pairs, gt, gdpo_args.gt_sampling, seed=training_args.seed)
        logging.get_logger(__name__).info(
            "gDPO ground truth (%s, gt_sampling=%s): %d of %d pairs got their own video and prompt (match rate %.3f)",
            name,
            gdpo_args.gt_sampling,
            round(stats["gt_match_rate"] * stats["pairs"]),
            stats["pairs"],
            stats["gt_match_rate"],
        )
        return pairs, stats

    stats: dict = {}
    if dataset_module.get("train_dataset") is not None:
        dataset_module["train_dataset"], train_stats = prepare(dataset_module["train_dataset"], "train")
        stats = {k: v for k, v in train_stats.items() if k == "gt_match_rate"}
    evals = dataset_module.get("eval_dataset")
    if isinstance(evals, dict):
        dataset_module["eval_dataset"] = {name: prepare(ds, f"eval {name}")[0] for name, ds in evals.items()}
    elif evals is not None:
        dataset_module["eval_dataset"], eval_stats = prepare(evals, "eval")
        if eval_stats:
            stats["eval_gt_match_rate"] = eval_stats["gt_match_rate"]
    return stats


def apply_aligner_policy(model, finetuning_args, gdpo_args) -> None:
    """Freeze the aligner (policy 'freeze'); then refuse any trainable weight the reference would share."""
    if gdpo_args.gdpo_aligner_policy == "freeze" and gdpo_args.aligner_modules:
        for name, param in model.named_parameters():
            if any(f".{m}." in f".{name}." for m in gdpo_args.aligner_modules):
                param.requires_grad_(False)
    if finetuning_args.finetuning_type != "lora":
        return
    drifting = [
        name
        for name, param in model.named_parameters()
        if param.requires_grad and "lora_" not in name and ".modules_to_save." not in name
    ]
    if drifting:
        shown = ", ".join(drifting[:5]) + (" ..." if len(drifting) > 5 else "")
        raise ConfigError(
            f"trainable weights outside the LoRA adapter would move the reference (the policy with its adapter "
            f"off): {shown}; list their modules in gdpo_aligner_modules (policy 'adapter' trains them as "
            "modules_to_save, 'freeze' freezes them)"
        )


def train_gdpo(model_args, data_args, training_args, finetuning_args, gdpo_args, callbacks=None) -> GDPOResult:
    """One gDPO training run, as LLaMA-Factory's DPO workflow runs one, with what eq. 11 adds: the
    pairs and their ground-truth captions (:func:`attach_ground_truth`), the audio aligner's policy,
    the packed shared prompt, the reference model (the policy without its adapter under LoRA) and its
    log-probability cache. Trains and/or evaluates as ``training_args`` say; returns the metrics."""
    from vs2_plugin.gdpo.trainer import GDPOTrainer
    from vs2_plugin.integrations.llamafactory_api import (
        create_modelcard_and_push,
        get_dataset,
        get_template_and_fix_tokenizer,
        load_model,
        load_tokenizer,
    )

    if data_args.streaming:
        raise ConfigError("gDPO needs a map-style dataset (reference cache, paired ground truth): set streaming: false")
    tokenizer_module = load_tokenizer(model_args)
    tokenizer = tokenizer_module["tokenizer"]
    template = get_template_and_fix_tokenizer(tokenizer, data_args)
    dataset_module = get_dataset(template, model_args, data_args, training_args, stage="rm", **tokenizer_module)
    gt_stats = attach_ground_truth(
        dataset_module, template, model_args, data_args, training_args, gdpo_args, tokenizer_module
    )

    if gdpo_args.gdpo_aligner_policy == "adapter" and gdpo_args.aligner_modules:
        targets = list(finetuning_args.additional_target or [])
        finetuning_args.additional_target = targets + [m for m in gdpo_args.aligner_modules if m not in targets]
    model = load_model(tokenizer, model_args, finetuning_args, training_args.do_train)
    apply_aligner_policy(model, finetuning_args, gdpo_args)

    ref_model = _reference_model(model, model_args, finetuning_args, training_args)
    trainer = GDPOTrainer(
        model=model,
        ref_model=ref_model,
        args=training_args,
        finetuning_args=finetuning_args,
        data_collator=_data_collator(template, model, tokenizer_module, data_args, training_args, gdpo_args),
        callbacks=callbacks,
        gdpo_args=gdpo_args,
        ref_cache=_reference_cache(training_args, gdpo_args),
        **dataset_module,
        **tokenizer_module,
    )
    metrics: dict = {}
    if training_args.do_train:
        metrics.update(_train(trainer, training_args, finetuning_args, gt_stats))
    if training_args.do_eval:
        eval_metrics = trainer.evaluate(metric_key_prefix="eval")
        if id(model) == id(ref_model):
            eval_metrics = {k: v for k, v in eval_metrics.items() if "rewards" not in k}
        trainer.log_metrics("eval", eval_metrics)
        trainer.save_metrics("eval", eval_metrics)
        metrics.update(eval_metrics)
    create_modelcard_and_push(trainer, model_args, data_args, training_args, finetuning_args)
    return GDPOResult(output_dir=training_args.output_dir, metrics=metrics, trainer=trainer)


def _data_collator(template, model, tokenizer_module, data_args, training_args, gdpo_args):
    """The pair collator; with ``gdpo_pack_prompt`` the shared prompt is packed once per pair, under
    the attention :func:`~vs2_plugin.gdpo.packing.resolve_pack_attention` picks (set on the model)."""
    from vs2_plugin.gdpo.packing import (
        FLEX_BLOCK,
        GDPODataCollator,
        resolve_pack_attention,
        set_pack_attention,
        text_attention,
    )
    from vs2_plugin.integrations.llamafactory_api import IGNORE_INDEX

    pad_to = 8
    if gdpo_args.gdpo_pack_prompt:
        import torch

        on_cuda = torch.cuda.is_available() and not getattr(training_args, "use_cpu", False)
        attention = resolve_pack_attention(gdpo_args.gdpo_pack_attention, text_attention(model), on_cuda)
        set_pack_attention(model, attention)
        pad_to = FLEX_BLOCK if attention == "flex_attention" else 8  # FlexAttention's block size
    tokenizer = tokenizer_module["tokenizer"]
    return GDPODataCollator(
        template=template,
        model=model,
        pad_to_multiple_of=pad_to,
        label_pad_token_id=IGNORE_INDEX if data_args.ignore_pad_token_for_loss else tokenizer.pad_token_id,
        pack_prompt=gdpo_args.gdpo_pack_prompt,
        **tokenizer_module,
    )


def _reference_model(model, model_args, finetuning_args, training_args):
    """The frozen reference of the DPO term: the model itself for evaluation alone, None under LoRA
    (the policy with its adapter disabled), else LLaMA-Factory's reference model."""
    from vs2_plugin.integrations.llamafactory_api import create_ref_model

    if finetuning_args.ref_model is None and not training_args.do_train:
        return model
    if finetuning_args.ref_model is None and finetuning_args.finetuning_type == "lora":
        return None
    return create_ref_model(model_args, finetuning_args)


def _reference_cache(training_args, gdpo_args):
    """The reference log-probabilities' cache (``gdpo_ref_cache``: memory, disk, or off)."""
    from vs2_plugin.gdpo.refcache import ReferenceCache

    if not training_args.do_train or gdpo_args.gdpo_ref_cache == "off":
        return None
    cache_dir = Path(gdpo_args.gdpo_ref_cache_dir or Path(training_args.output_dir) / "ref_logps")
    return ReferenceCache(gdpo_args.gdpo_ref_cache, cache_dir if gdpo_args.gdpo_ref_cache == "disk" else None)


def _train(trainer, training_args, finetuning_args, gt_stats: dict) -> dict:
    """Train, save the model, metrics (with the ground-truth match statistics) and state; plot the losses."""
    from vs2_plugin.integrations.llamafactory_api import plot_loss

    train_result = trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    train_result.metrics.update(gt_stats)
    trainer.save_model()
    trainer.log_metrics("train", train_result.metrics)
    trainer.save_metrics("train", train_result.metrics)
    trainer.save_state()
    if trainer.is_world_process_zero() and finetuning_args.plot_loss:
        plot_loss(training_args.output_dir, keys=["loss", "gdpo/dpo_loss", "gdpo/nll_loss", "rewards/accuracies"])
    return train_result.metrics


# --------------------------------------------------------------------------------- rounds
def _deepspeed_stage(deepspeed) -> int | None:
    """ZeRO stage of a DeepSpeed config given as a path, a JSON string or a dict (``None``: no DeepSpeed)."""
    if not deepspeed:
        return None
    config = deepspeed
    if isinstance(deepspeed, str):
        path = Path(deepspeed)
        config = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else json.loads(deepspeed)
    stage = (config.get("zero_optimization") or {}).get("stage", 0)
    return int(stage) if str(stage).isdigit() else None


def _checkpoint_is_quantized(model_name_or_path: str) -> bool:
    from vs2_plugin.modeling.geometry import read_model_config

    return bool(read_model_config(model_name_or_path).get("quantization_config"))


def memory_merge_blockers(model_args, training_args) -> list[str]:
    """Why LLaMA-Factory cannot merge stacked adapters in memory for this run (empty: it can).

    With any of these, ``load_model`` merges nothing: it *resumes* the last adapter instead of
    starting a fresh LoRA, so the reference would silently lose the earlier weights.
    """
    from transformers.integrations import is_deepspeed_zero3_enabled

    reasons = []
    if is_deepspeed_zero3_enabled() or _deepspeed_stage(getattr(training_args, "deepspeed", None)) == 3:
        reasons.append("DeepSpeed ZeRO-3")
    if getattr(model_args, "quantization_bit", None) is not None:
        reasons.append(f"quantization_bit={model_args.quantization_bit}")
    elif _checkpoint_is_quantized(model_args.model_name_or_path):
        reasons.append(f"a quantized checkpoint ({model_args.model_name_or_path})")
    for flag in ("use_unsloth", "use_kt"):
        if getattr(model_args, flag, False):
            reasons.append(f"{flag}: true")
    return reasons


def check_round_hook(gdpo_args, model_args, training_args) -> None:
    """Refuse ``gdpo_round_hook: memory`` where LLaMA-Factory cannot merge in memory."""
    if gdpo_args.gdpo_round_hook != "memory":
        return
    blockers = memory_merge_blockers(model_args, training_args)
    if blockers:
        raise ConfigError(
            f"gdpo_round_hook: memory cannot merge the previous rounds' adapters with {', '.join(blockers)} "
            "(LLaMA-Factory would resume the last adapter instead of starting a fresh LoRA, and the reference "
            "would lose the merged weights); set gdpo_round_hook: export"
        )


def last_complete_checkpoint(folder: Path) -> str | None:
    """Newest ``checkpoint-N`` with its ``trainer_state.json`` (written last by the Trainer).

    Newer checkpoints without it were cut off mid-save; they are removed so the Trainer's own
    rotation never counts them.
    """
    found = sorted(
        ((int(m.group(1)), p) for p in Path(folder).glob("checkpoint-*") if (m := CHECKPOINT_RE.match(p.name))),
        reverse=True,
    )
    for _step, path in found:
        if (path / "trainer_state.json").is_file():
            return str(path)
        if int(os.environ.get("RANK", "0")) == 0:
            shutil.rmtree(path, ignore_errors=True)
    return None


def _run_round(model_args, data_args, training_args, finetuning_args, gdpo_args, callbacks) -> GDPOResult:
    from vs2_plugin.gdpo.rounds import RoundState, export_merged, is_main_process, utc_now, wait_for_file

    if finetuning_args.finetuning_type != "lora":
        raise ConfigError(
            f"gdpo_rounds needs finetuning_type: lora (the LoRA proxy), got {finetuning_args.finetuning_type!r}"
        )
    check_round_hook(gdpo_args, model_args, training_args)
    root = Path(training_args.output_dir)
    state = RoundState.load_or_create(
        root, model_args.model_name_or_path, gdpo_args.gdpo_round_hook, model_args.adapter_name_or_path
    )
    index = gdpo_args.gdpo_round or state.next_round()
    record = state.begin(index)
    round_dir = state.round_dir(index)
    if record.status == "done":
        # nothing to do, and said: with new settings a silent exit 0 would seem to have trained
        from vs2_plugin.pipeline import console

        console.warn(
            f"gdpo round {index} is already finished in {round_dir}; nothing was trained. Run the next "
            f"round without gdpo_round (or gdpo_round={state.next_round()}), or give another output_dir"
        )
        return GDPOResult(output_dir=str(round_dir), round=index, skipped=True)

    merged = state.adapters_before(index)
    previous = state.record(index - 1)
    if gdpo_args.gdpo_lora_mode == "single" and previous is not None:
        # the ablation without LoRA proxies: the initial adapters stay merged (the fixed reference)
        # and round index-1's LoRA is resumed, LLaMA-Factory's "continue the last adapter"
        reference_model = state.base_model
        merged = list(state.initial_adapters)
        model_args.adapter_name_or_path = [*merged, str(root / previous.adapter)]
        finetuning_args.create_new_adapter = False
    elif gdpo_args.gdpo_round_hook == "memory":
        reference_model = state.base_model
        model_args.adapter_name_or_path = merged or None
        finetuning_args.create_new_adapter = True
    else:
        # export: round t's reference checkpoint = round t-1's reference + round t-1's adapter
        backbone = state.base_model if previous is None else previous.reference_model
        new_adapters = state.initial_adapters if previous is None else [str(root / previous.adapter)]
        reference_model = backbone
        if new_adapters:
            dtype = "bfloat16" if training_args.bf16 else "float16" if training_args.fp16 else "float32"
            merged_dir = round_dir / "reference"
            if is_main_process():
                export_merged(backbone, new_adapters, merged_dir, data_args.template, dtype)
            else:
                wait_for_file(merged_dir / "config.json")
            reference_model = str(merged_dir)
        model_args.model_name_or_path = reference_model
        model_args.adapter_name_or_path = None
    state.update(record, status="training", reference_model=reference_model, merged_adapters=merged)

    training_args.output_dir = str(round_dir)
    if getattr(training_args, "logging_dir", None) and str(training_args.logging_dir).startswith(str(root)):
        training_args.logging_dir = str(round_dir / Path(training_args.logging_dir).name)
    training_args.resume_from_checkpoint = last_complete_checkpoint(round_dir)
    if gdpo_args.gdpo_ref_cache_dir is None:
        gdpo_args.gdpo_ref_cache_dir = str(round_dir / "ref_logps")
    # Each round's new LoRA gets its own random init (the "LoRA proxy"), reproducibly.
    from transformers import set_seed

    set_seed(training_args.seed + 1000 * (index - 1))

    result = train_gdpo(model_args, data_args, training_args, finetuning_args, gdpo_args, callbacks)
    cache = result.trainer.ref_cache
    state.update(
        record,
        status="done",
        adapter=round_dir.name,
        ref_cache=str(cache.last_path.relative_to(root)) if cache is not None and cache.last_path else None,
        global_step=result.trainer.state.global_step,
        gt_match_rate=(result.metrics or {}).get("gt_match_rate"),
        finished=utc_now(),
    )
    result.round = index
    return result
