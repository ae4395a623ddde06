"""What a recipe would get wrong, found on any machine before a GPU is booked (``vs2 check-recipe``).

A recipe is read the way its command reads it, with the same ``key=value`` overrides on top:

- a training recipe (it names a ``stage``: ``llamafactory-cli train``) — every key and type through
  LLaMA-Factory's own argument parser, the plugin's stages' rules (``vs2_align`` freezes all but
  the audio aligner, gDPO's ``gdpo_*`` keys) and the data check's ``vs2_*`` keys; then the files it
  names: the model and adapters, the DeepSpeed config, each dataset in its ``dataset_info.json``
  and that dataset's file, the chat template;
- an inference recipe (no ``stage``: ``llamafactory-cli api`` / ``chat``) — the same with the
  inference arguments;
- an mrDPO driver config (it names ``train_videos``: ``vs2 mrdpo``) — the driver's own validation
  at load, the gDPO round recipe it trains with (with its ``train:`` keys on top), its model,
  adapters and video lists.

``data=True`` also runs the bad-sample pass a training run starts with
(:func:`vs2_plugin.data.train_check.check_training_data`: every row and media file of the
datasets, by the recipe's ``vs2_*`` settings) and reports what it finds, writing nothing
beside the recipe. What cannot be checked here is said as a note: bf16 on a machine without a
GPU, a model named by its hub id.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vs2_plugin.errors import ConfigError, DataError, Vs2Error

#: dataset keys of a training recipe -> the key naming their dataset_info.json folder
DATASET_KEYS = {"dataset": "dataset_dir", "eval_dataset": "dataset_dir", "gt_dataset": "gt_dataset_dir"}


@dataclass(frozen=True)
class Finding:
    """One result: ``problem`` (the recipe would fail or do something else than it says) or ``note``."""

    level: str
    text: str


def recipe_kind(data: dict[str, Any]) -> str:
    """``mrdpo`` (a driver config), ``train`` (names a stage) or ``infer``."""
    if "train_videos" in data:
        return "mrdpo"
    return "train" if "stage" in data else "infer"


def check_recipe(path: str | Path, overrides: list[str] | None = None, *, files: bool = True, data: bool = False):
    """``(kind, findings)`` for the recipe at ``path`` with ``overrides`` (``key=value``) on top.
    ``files=False`` checks keys and types only (a recipe for a machine whose models are elsewhere)."""
    from vs2_plugin.pipeline.config import load_yaml, merge_overrides, parse_overrides

    raw = load_yaml(path)
    kind = recipe_kind(raw)
    if kind == "mrdpo":
        return kind, _check_mrdpo(path, overrides or [], files=files)
    args = merge_overrides(raw, parse_overrides(overrides)) if overrides else raw
    return kind, check_arguments(args, kind, where=str(path), files=files, data=data)


def check_arguments(
    args: dict[str, Any], kind: str, *, where: str, files: bool = True, data: bool = False
) -> list[Finding]:
    """Findings for LLaMA-Factory arguments ``args`` of ``kind`` "train" or "infer" (see the module)."""
    from vs2_plugin.integrations.llamafactory import parse_arguments
    from vs2_plugin.pipeline import config

    findings: list[Finding] = []
    try:
        config.check_arguments(kind, args, where=where)  # unknown keys (with close matches), then types
        findings += [Finding("note", n) for n in parse_arguments(kind, args)]
    except Vs2Error as exc:
        return [Finding("problem", str(exc))]
    if files:
        findings += _check_files(args, kind)
        if data and kind == "train" and not any(f.level == "problem" for f in findings):
            findings += _check_data(args)
    return findings


def _check_files(args: dict[str, Any], kind: str) -> list[Finding]:
    from vs2_plugin.data import validate
    from vs2_plugin.integrations.llamafactory import argument_default, template_names
    from vs2_plugin.pipeline.generation import check_model_files, hub_id

    out: list[Finding] = []
    model = str(args.get("model_name_or_path") or "")
    adapters = validate.split_names(args.get("adapter_name_or_path"))
    try:
        check_model_files(model, adapters, "model_name_or_path {}", "adapter_name_or_path {}")
        if not Path(model).exists() and hub_id(model):
            out.append(Finding("note", f"model_name_or_path {model}: a hub id, downloaded when the run starts"))
    except ConfigError as exc:
        out.append(Finding("problem", str(exc)))
    deepspeed = args.get("deepspeed")
    if deepspeed:
        try:
            json.loads(Path(deepspeed).read_text(encoding="utf-8"))
        except OSError as exc:
            out.append(Finding("problem", f"deepspeed {deepspeed}: cannot read ({exc.strerror})"))
        except ValueError as exc:
            out.append(Finding("problem", f"deepspeed {deepspeed}: not valid JSON ({exc})"))
    template = args.get("template")
    if template and template not in template_names():
        out.append(Finding("problem", f"template {template!r} is not registered with LLaMA-Factory"))
    if kind != "train":
        return out
    for key, dir_key in DATASET_KEYS.items():
        names = validate.split_names(args.get(key))
        folder = str(args.get(dir_key) or args.get("dataset_dir") or argument_default("dataset_dir"))
        if not names or folder == "ONLINE" or folder.startswith("REMOTE:"):
            continue
        try:
            for spec in validate.dataset_specs(names, folder):
                if spec.local and "file_name" in spec.entry:
                    spec.files()
        except (DataError, ConfigError) as exc:
            out.append(Finding("problem", f"{key}: {exc}"))
    return out


def _check_data(args: dict[str, Any]) -> list[Finding]:
    """The training run's own bad-sample pass, its listing kept in a scratch folder."""
    from vs2_plugin.data import validate
    from vs2_plugin.data.train_check import check_training_data

    with tempfile.TemporaryDirectory(prefix="vs2_check_") as scratch:
        probe = {**args, "output_dir": scratch, "vs2_bad_samples": "fail"}
        try:
            check_training_data(probe)
        except DataError as exc:
            listed = Path(scratch) / validate.BAD_FILE
            rows = [json.loads(line) for line in listed.read_text().splitlines()] if listed.is_file() else []
            found = [Finding("problem", str(exc).replace(str(listed), "the list below"))]
            return found + [
                Finding("problem", validate.BadSample(**{"index": None, **row}).message()) for row in rows[1:]
            ]
        summary_file = Path(scratch) / validate.SUMMARY_FILE
        summary = json.loads(summary_file.read_text()) if summary_file.is_file() else {}
    if not summary:
        return [Finding("note", "data: not checked (vs2_bad_samples: off)")]
    return [Finding("note", f"data: {summary['samples']} samples checked, none bad")]


def _check_mrdpo(path: str | Path, overrides: list[str], *, files: bool) -> list[Finding]:
    from vs2_plugin.pipeline.config import load_mrdpo_config
    from vs2_plugin.pipeline.generation import check_model_files
    from vs2_plugin.pipeline.mrdpo import round_train_args

    try:
        cfg = load_mrdpo_config(path, overrides)  # the driver's own checks: values, train.* / infer.* keys
    except Vs2Error as exc:
        return [Finding("problem", str(exc))]
    # the types too, as a round's llamafactory-cli train and the sampling model's loading read them
    round_args = round_train_args(cfg, cfg.model_name_or_path, list(cfg.adapter_name_or_path), Path(cfg.run_dir), 1)
    out = check_arguments(round_args, "train", where=f"{path}: a gDPO round's arguments", files=False)
    infer_args = {**cfg.infer, "model_name_or_path": cfg.model_name_or_path, "template": cfg.template}
    out += check_arguments(infer_args, "infer", where=f"{path}: the sampling model's arguments", files=False)
    if files:
        try:
            check_model_files(
                cfg.model_name_or_path, cfg.adapter_name_or_path, "model_name_or_path {}", "adapter_name_or_path {}"
            )
        except ConfigError as exc:
            out.append(Finding("problem", str(exc)))
        for key in ("train_videos", "heldout_videos"):
            value = getattr(cfg, key)
            if value and not Path(value).is_file():
                out.append(Finding("problem", f"{key} {value}: not found"))
    return out
