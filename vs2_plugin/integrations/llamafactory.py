"""The one module that touches LLaMA-Factory internals.

LLaMA-Factory 0.9.5 has registries an import can extend (templates, multimodal plugins,
composite models, the web UI's stage lists) but no stage registry: ``train/tuner.py`` ends
its stage if/elif with "Unknown task". So besides registering into those registries, this
module wraps ``llamafactory.train.tuner._training_function`` — the single patch we make —
to dispatch our stages before LLaMA-Factory parses the arguments.

:func:`register` is the ``llamafactory.plugins`` entry point (see :mod:`vs2_plugin.autoload`).
It is cheap: each registration runs when the LLaMA-Factory module it extends is first
imported, so ``llamafactory-cli version`` does not pay for importing the trainer. Every
registration is idempotent and recorded in :data:`REGISTRATIONS` (``vs2 plugins`` prints it).
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from vs2_plugin.autoload import when_imported
from vs2_plugin.errors import ConfigError, UnsupportedLlamaFactory

#: LLaMA-Factory versions whose internals this module was written against.
SUPPORTED_VERSIONS = ("0.9.5",)

TEMPLATE_NAME = "video_salmonn2"
MM_PLUGIN_NAME = "video_salmonn2"
MODEL_TYPE = "video_salmonn2"

#: what happened, for ``vs2 plugins``: kind -> list of names
REGISTRATIONS: dict[str, list[str]] = {}


@dataclass(frozen=True)
class StageSpec:
    """A training stage we add: shown in LlamaBoard as ``label``, parsed as ``base``."""

    name: str
    label: str
    base: str  # the LLaMA-Factory stage whose arguments and dataset handling apply
    pairwise: bool = False
    #: forced finetuning settings (key -> value); a conflicting user value is an error
    forced: dict[str, Any] = field(default_factory=dict)


STAGES: dict[str, StageSpec] = {
    "gdpo": StageSpec("gdpo", "video-SALMONN 2 gDPO (DPO + lambda * NLL on ground truth)", "dpo", pairwise=True),
    "vs2_align": StageSpec(
        "vs2_align",
        "video-SALMONN 2 audio alignment (only the audio aligner trains)",
        "sft",
        forced={
            "finetuning_type": "full",
            "freeze_vision_tower": True,
            "freeze_multi_modal_projector": True,
            "freeze_language_model": True,
        },
    ),
}


def _record(kind: str, name: str) -> None:
    names = REGISTRATIONS.setdefault(kind, [])
    if name not in names:
        names.append(name)


def installed_version() -> str:
    import llamafactory

    return str(getattr(llamafactory, "__version__", "unknown"))


def check_version(version: str | None = None) -> str:
    """Raise :class:`UnsupportedLlamaFactory` unless the installed version is supported."""
    version = installed_version() if version is None else version
    if version not in SUPPORTED_VERSIONS:
        raise UnsupportedLlamaFactory(
            f"vs2_plugin supports LLaMA-Factory {', '.join(SUPPORTED_VERSIONS)}, but {version} is installed; "
            f"install a supported version (pip install 'llamafactory=={SUPPORTED_VERSIONS[-1]}') "
            f"or set LLAMAFACTORY_PLUGINS_DISABLE=1 to run LLaMA-Factory without vs2_plugin"
        )
    return version


def register() -> None:
    """Entry point: check the version, then arm every registration (idempotent)."""
    check_version()
    when_imported("llamafactory.extras.constants", _register_constants)
    when_imported("llamafactory.data.template", _register_template)
    when_imported("llamafactory.model.model_utils.visual", _register_composite_model)
    when_imported("llamafactory.model", _register_auto_classes)
    when_imported("llamafactory.train.tuner", _wrap_training_function)


# ----------------------------------------------------------------------------- registries


def _register_constants(constants) -> None:
    for spec in STAGES.values():
        if spec.label not in constants.TRAINING_STAGES:
            constants.TRAINING_STAGES[spec.label] = spec.name
        if spec.pairwise:
            constants.STAGES_USE_PAIR_DATA.add(spec.name)
        _record("stage", spec.name)
    constants.MROPE_MODELS.add(MODEL_TYPE)
    _record("mrope_model", MODEL_TYPE)
    if "video-SALMONN-2-7B" not in constants.SUPPORTED_MODELS:
        # The path is the recipes' post-alignment checkpoint (vs2 build + recipes/audio_align.yaml):
        # no published checkpoint has this model's layout, so the UI must not offer a download.
        constants.register_model_group(
            models={"video-SALMONN-2-7B": {constants.DownloadSource.DEFAULT: "saves/video-salmonn2-7b/base"}},
            template=TEMPLATE_NAME,
            multimodal=True,
        )
    _record("model_group", "video-SALMONN-2-7B")


def _register_template(template_module) -> None:
    from llamafactory.data import mm_plugin

    from vs2_plugin.data.mm_plugin import VideoSalmonn2Plugin

    if MM_PLUGIN_NAME not in mm_plugin.PLUGINS:
        mm_plugin.register_mm_plugin(MM_PLUGIN_NAME, VideoSalmonn2Plugin)
    _record("mm_plugin", MM_PLUGIN_NAME)
    if TEMPLATE_NAME not in template_module.TEMPLATES:
        qwen = template_module.TEMPLATES["qwen2_vl"]  # same chat format as the visual base
        template_module.register_template(
            name=TEMPLATE_NAME,
            format_user=qwen.format_user,
            format_assistant=qwen.format_assistant,
            format_system=qwen.format_system,
            format_function=qwen.format_function,
            format_observation=qwen.format_observation,
            format_tools=qwen.format_tools,
            default_system=qwen.default_system,
            stop_words=list(qwen.stop_words),
            replace_eos=qwen.replace_eos,
            mm_plugin=mm_plugin.get_mm_plugin(MM_PLUGIN_NAME, image_token="<|image_pad|>", video_token="<|video_pad|>"),
        )
    _record("template", TEMPLATE_NAME)


def _register_composite_model(visual) -> None:
    # What LLaMA-Factory freezes / keeps out of LoRA (substring match on module names): the
    # audio encoder counts as vision tower (frozen with it, sec. 3.2); the audio aligner is
    # never a LoRA target (it trains fully in alignment, as modules_to_save afterwards).
    from vs2_plugin.modeling.freezing import composite_model_spec

    if MODEL_TYPE not in visual.COMPOSITE_MODELS:
        visual._register_composite_model(**composite_model_spec())
    _record("composite_model", MODEL_TYPE)


def _register_auto_classes(_module) -> None:
    from vs2_plugin.modeling import register_auto_classes

    register_auto_classes()
    _record("auto_class", MODEL_TYPE)


# ----------------------------------------------------------------------------- stage dispatch


def _wrap_training_function(tuner) -> None:
    original = tuner._training_function
    if getattr(original, "__vs2_wrapped__", False):
        return

    def _training_function(config: dict[str, Any]) -> None:
        args = config.get("args")
        stage = stage_of(args)
        if uses_vs2(args):
            checked = check_training_data(args_to_dict(args))
            config = {**config, "args": checked if isinstance(args, dict) else _as_arg_list(args, checked)}
        if stage not in STAGES:
            return original(config)
        return run_stage(STAGES[stage], config, original)

    _training_function.__vs2_wrapped__ = True
    _training_function.__wrapped__ = original
    tuner._training_function = _training_function
    _record("stage_dispatch", "llamafactory.train.tuner._training_function")


def stage_of(args: dict[str, Any] | list[str] | None) -> str | None:
    """The ``stage`` named by a YAML dict or a ``--stage X`` / ``--stage=X`` argument list."""
    if isinstance(args, dict):
        return args.get("stage")
    if isinstance(args, list):
        for i, item in enumerate(args):
            if item == "--stage" and i + 1 < len(args):
                return args[i + 1]
            if item.startswith("--stage="):
                return item.split("=", 1)[1]
    return None


def uses_vs2(args: dict[str, Any] | list[str] | None) -> bool:
    """Does this run use our template, one of our stages, or one of our data-check keys?"""
    from vs2_plugin.data.validate import DataCheckArguments

    if args is None or (isinstance(args, list) and any(a in ("-h", "--help") for a in args)):
        return False
    if stage_of(args) in STAGES:
        return True
    as_dict = args if isinstance(args, dict) else args_to_dict(args)
    return as_dict.get("template") == TEMPLATE_NAME or bool(DataCheckArguments.field_names() & set(as_dict))


def args_to_dict(args: dict[str, Any] | list[str]) -> dict[str, Any]:
    """Normalise ``--key value`` / ``--key=value`` / bare ``--flag`` lists into a dict."""
    if isinstance(args, dict):
        return dict(args)
    out: dict[str, Any] = {}
    i = 0
    while i < len(args):
        item = args[i]
        if not item.startswith("--"):
            raise ConfigError(f"unexpected command-line argument {item!r}; use --key value")
        key = item[2:]
        if "=" in key:
            key, value = key.split("=", 1)
        elif i + 1 < len(args) and not args[i + 1].startswith("--"):
            value = args[i + 1]
            i += 1
        else:
            value = "true"
        out[key.replace("-", "_")] = value
        i += 1
    return out


def _as_arg_list(original: list[str], wanted: dict[str, Any]) -> list[str]:
    """``original`` (``--key value`` list) with the keys ``wanted`` lacks removed and changed
    values replaced, untouched items kept as given (LLaMA-Factory parses lists with types)."""
    out: list[str] = []
    done: set[str] = set()
    i = 0
    while i < len(original):
        item = original[i]
        key = item[2:].split("=", 1)[0].replace("-", "_")
        takes_value = "=" not in item and i + 1 < len(original) and not original[i + 1].startswith("--")
        span = original[i : i + (2 if takes_value else 1)]
        i += len(span)
        if key not in wanted:
            continue
        done.add(key)
        value = wanted[key]
        given = span[1] if takes_value else (item.split("=", 1)[1] if "=" in item else "true")
        out += span if str(value) == given else [f"--{key}", str(value)]
    for key in wanted.keys() - done:
        out += [f"--{key}", str(wanted[key])]
    return out


def pop_dataclass_args(args: dict[str, Any], cls) -> Any:
    """Remove ``cls``'s fields from ``args`` and build ``cls`` from them (it validates)."""
    names = {f.name for f in dataclasses.fields(cls)}
    picked = {k: args.pop(k) for k in list(args) if k in names}
    return cls(**picked)


def _apply_forced(spec: StageSpec, args: dict[str, Any]) -> None:
    for key, value in spec.forced.items():
        given = args.get(key, value)
        if str(given).lower() != str(value).lower():
            raise ConfigError(f"stage {spec.name!r} requires {key}={value!r}, but the config sets {key}={given!r}")
        args[key] = value


def run_stage(spec: StageSpec, config: dict[str, Any], original: Callable[[dict[str, Any]], None]) -> None:
    """Run one of our stages inside LLaMA-Factory's training entry point."""
    args = args_to_dict(config.get("args") or {})
    callbacks = config.get("callbacks") or []
    _apply_forced(spec, args)
    if spec.name == "gdpo":
        from llamafactory.train.callbacks import LogCallback

        from vs2_plugin.gdpo.workflow import run_gdpo_from_dict

        callbacks.append(LogCallback())  # writes trainer_log.jsonl, which LlamaBoard reads
        try:
            run_gdpo_from_dict(args, callbacks=callbacks)
        finally:
            _destroy_process_group()
        return
    args["stage"] = spec.base
    original({"args": args, "callbacks": callbacks})


# ----------------------------------------------------------------------------- bad samples


def _is_main_rank() -> bool:
    return os.environ.get("RANK", "0") in ("", "0")


def _model_audio_limits(args: dict[str, Any]) -> dict[str, Any]:
    """Audio token settings of the model (its config, as the multimodal plugin reads it), as
    :class:`~vs2_plugin.data.validate.MediaLimits` keys; empty when the model takes no audio."""
    from vs2_plugin.data.model_audio import model_audio_settings

    settings = model_audio_settings(str(args.get("model_name_or_path") or ""))
    if not settings.enabled:
        return {}
    return {"window_s": settings.window_s, "queries_per_window": settings.queries_per_window,
            "segment_s": settings.segment_s}


def check_training_data(args: dict[str, Any]) -> dict[str, Any]:
    """The bad-sample pass before training (``vs2_bad_samples``; see :mod:`vs2_plugin.data.validate`).

    Pops the data-check keys from ``args``, reads the run's datasets (``dataset``,
    ``eval_dataset`` and gDPO's ``gt_dataset``) through their ``dataset_info.json``, checks
    every row and media file, and writes ``data_check.json`` (counts) to ``output_dir``.
    ``fail``: any bad sample stops the run (DataError, one line; all are listed in
    ``bad_samples.jsonl``). ``skip``: bad samples are listed in ``skipped_samples.jsonl`` and
    the run is pointed at a filtered copy of its datasets in ``output_dir/vs2_data``.
    Returns the (possibly rewritten) args.
    """
    from pathlib import Path

    from vs2_plugin.data import validate
    from vs2_plugin.errors import DataError

    args = dict(args)
    opts = validate.DataCheckArguments.pop_from(args)
    if opts.vs2_bad_samples == "off" or not args.get("output_dir"):
        return args
    audio = _model_audio_limits(args)
    use_audio_in_video = str(args.get("use_audio_in_video", False)).lower() in ("true", "1")
    cutoff = args.get("cutoff_len", 2048)
    limits = validate.MediaLimits(
        min_duration_s=opts.vs2_min_duration_s,
        max_duration_s=opts.vs2_max_duration_s,
        require_video_audio=opts.vs2_require_audio and use_audio_in_video,
        max_audio_tokens=int(cutoff) if audio else None,
        video_audio_tokens=bool(audio) and use_audio_in_video,
        decode=opts.vs2_check_decode,
        fps_phi=float(args.get("video_fps", 2.0) or 2.0),
        max_frames_m=int(args.get("video_maxlen", 128) or 128),
        max_pixels=int(args.get("video_max_pixels", 256 * 256) or 256 * 256),
        **audio,
    )
    dataset_dir = str(args.get("dataset_dir") or "data")
    media_dir = args.get("media_dir")
    groups = [("train", ["dataset", "eval_dataset"], "dataset_dir", dataset_dir)]
    if stage_of(args) == "gdpo" and args.get("gt_dataset"):
        groups.append(("gt", ["gt_dataset"], "gt_dataset_dir", str(args.get("gt_dataset_dir") or dataset_dir)))
    checks: dict[str, list] = {}
    for group, keys, _dir_key, folder in groups:
        names = [n for key in keys for n in validate.split_names(args.get(key))]
        if names and folder != "ONLINE" and not folder.startswith("REMOTE:"):
            specs = validate.dataset_specs(list(dict.fromkeys(names)), folder, media_dir)
            checks[group] = [validate.check_dataset(spec, limits) for spec in specs]
    results = [c for group in checks.values() for c in group]
    bad = [b for c in results for b in c.bad]
    total = sum(c.total for c in results)
    out = Path(str(args["output_dir"]))
    skipped_rows = len({(b.dataset, b.index) for b in bad})
    summary = {
        "policy": opts.vs2_bad_samples,
        "samples": total,
        "bad": skipped_rows,
        "datasets": {c.spec.name: {"samples": c.total, "bad": len({b.index for b in c.bad}), "checked": c.checked}
                     for c in results},
    }
    if opts.vs2_bad_samples == "fail":
        listed = out / validate.BAD_FILE if bad else None
        validate.write_json(out / validate.SUMMARY_FILE, summary)
        if bad:
            validate.write_jsonl(listed, [b.to_dict() for b in bad])
            raise DataError(validate.fail_message(bad, listed, total))
        return args
    summary["skipped"] = skipped_rows
    summary["skipped_list"] = str(out / validate.SKIPPED_FILE)
    validate.write_jsonl(out / validate.SKIPPED_FILE, [b.to_dict() for b in bad])
    validate.write_json(out / validate.SUMMARY_FILE, summary)
    if bad and _is_main_rank():
        print(f"[vs2_plugin] vs2_bad_samples=skip: left out {skipped_rows} of {total} samples "
              f"(listed in {out / validate.SKIPPED_FILE})", file=sys.stderr, flush=True)
    if not bad:
        return args
    for c in results:
        if c.checked and not c.good_rows:
            raise DataError(f"dataset {c.spec.name!r}: all {c.total} samples are bad (listed in "
                            f"{out / validate.SKIPPED_FILE}); nothing left to train on")
    # every checked dataset of the run is read from the copies (absolute media paths), the
    # others from where they were: their dataset_info entries and media_dir point back there
    if not media_dir:
        args["media_dir"] = dataset_dir
    for group, _keys, dir_key, folder in groups:
        target = out / validate.FILTERED_DIR / group
        info = validate.load_dataset_info(folder)
        for name, entry in info.items():
            if isinstance(entry, dict) and "file_name" in entry:
                info[name] = {**entry, "file_name": os.path.abspath(os.path.join(folder, entry["file_name"]))}
        for c in checks.get(group) or []:
            if c.checked:
                validate.write_json(target / f"{c.spec.name}.json", c.good_rows)
                info[c.spec.name] = {**info[c.spec.name], "file_name": f"{c.spec.name}.json"}
        validate.write_json(target / "dataset_info.json", info)
        args[dir_key] = str(target)
    return args


def _destroy_process_group() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def describe() -> dict[str, Any]:
    """What is registered in this process (imports the registries so they fire)."""
    import importlib

    info: dict[str, Any] = {"llamafactory_version": installed_version(), "supported": list(SUPPORTED_VERSIONS)}
    try:
        check_version()
    except UnsupportedLlamaFactory as exc:
        info["error"] = str(exc)
        return info
    for mod in ("llamafactory.extras.constants", "llamafactory.data.template", "llamafactory.model.model_utils.visual"):
        importlib.import_module(mod)
    if "llamafactory.train.tuner" not in sys.modules and os.environ.get("VS2_PLUGINS_IMPORT_TUNER") == "1":
        importlib.import_module("llamafactory.train.tuner")
    info["registrations"] = {k: list(v) for k, v in REGISTRATIONS.items()}
    info["stages"] = {s.name: {"label": s.label, "base": s.base} for s in STAGES.values()}
    return info
