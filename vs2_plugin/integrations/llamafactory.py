"""The one module that touches LLaMA-Factory internals.

Together with :mod:`vs2_plugin.integrations.llamafactory_api` (the LLaMA-Factory names the rest
of the package uses, re-exported) this folder is the only place that imports ``llamafactory``,
so an upgrade touches ``vs2_plugin/integrations/`` only. The training-data check it runs before
training lives in :mod:`vs2_plugin.data.train_check`, the argument helpers in
:mod:`vs2_plugin.pipeline.run_args`.

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

import contextlib
import dataclasses
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from vs2_plugin.autoload import when_imported
from vs2_plugin.data.train_check import check_training_data
from vs2_plugin.errors import ConfigError, UnsupportedLlamaFactory, Vs2Error
from vs2_plugin.modeling import MODEL_TYPE
from vs2_plugin.modeling.targets import check_module_targets
from vs2_plugin.pipeline.run_args import args_to_dict, as_arg_list, stage_of

#: LLaMA-Factory versions whose internals this module was written against.
SUPPORTED_VERSIONS = ("0.9.5",)

TEMPLATE_NAME = "video_salmonn2"
MM_PLUGIN_NAME = "video_salmonn2"

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


_template_module_waiting = None


def _register_template(template_module) -> None:
    global _template_module_waiting
    ours = sys.modules.get("vs2_plugin.data.mm_plugin")
    if ours is not None and not hasattr(ours, "VideoSalmonn2Plugin"):
        # vs2_plugin.data.mm_plugin was imported first and is importing LLaMA-Factory for its base
        # class: the plugin is not defined yet, and the module's last line finishes this
        _template_module_waiting = template_module
        return
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


def mm_plugin_defined() -> None:
    """Called by the last line of :mod:`vs2_plugin.data.mm_plugin`: the template registration that
    waited for its plugin class (the module was imported before LLaMA-Factory) is done now."""
    global _template_module_waiting
    if _template_module_waiting is not None:
        template_module, _template_module_waiting = _template_module_waiting, None
        _register_template(template_module)


def _register_composite_model(visual) -> None:
    # What LLaMA-Factory freezes / keeps out of LoRA (substring match on module names): the
    # audio encoder counts as vision tower (frozen with it, sec. 3.2); the audio aligner is
    # never a LoRA target (it trains fully in alignment, as modules_to_save afterwards).
    from vs2_plugin.modeling.freezing import composite_model_spec

    if MODEL_TYPE not in visual.COMPOSITE_MODELS:
        visual._register_composite_model(**composite_model_spec())
    _record("composite_model", MODEL_TYPE)


def lora_reach(model_type: str, args: dict[str, Any]) -> tuple[bool, set[str]]:
    """How LLaMA-Factory picks LoRA's modules for ``model_type`` in a run of ``args``: (whether by
    parts of names, as for composite models, the name parts it keeps out of LoRA then: the
    model's LoRA conflict keys and the parts this run freezes). The freezing rule is
    ``get_forbidden_modules``', read from the same registry without its log lines."""
    from llamafactory.model.model_utils.visual import COMPOSITE_MODELS

    spec = COMPOSITE_MODELS.get(model_type)
    if spec is None:
        return False, set()

    def flag(name: str) -> bool:
        value = args.get(name)
        return argument_default(name) if value is None else str(value).strip().lower() in ("true", "1")

    kept_out = set(spec.lora_conflict_keys)
    for name, keys in (
        ("freeze_vision_tower", spec.vision_model_keys),
        ("freeze_multi_modal_projector", spec.projector_keys),
        ("freeze_language_model", spec.language_model_keys),
    ):
        if flag(name):
            kept_out.update(keys)
    return True, kept_out


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
        try:
            return _train(config, original)
        except Vs2Error as exc:
            # a bad sample, a misspelt target, a forced key: the user's to mend, one line as vs2's
            # commands print it (``llamafactory-cli`` would show a traceback through LLaMA-Factory)
            from vs2_plugin.secrets import redact

            raise SystemExit(f"vs2_plugin: error: {redact(exc)}") from None

    _training_function.__vs2_wrapped__ = True
    _training_function.__wrapped__ = original
    tuner._training_function = _training_function
    _record("stage_dispatch", "llamafactory.train.tuner._training_function")


def _train(config: dict[str, Any], original: Callable[[dict[str, Any]], None]) -> None:
    """LLaMA-Factory's training entry point with our data check before it and our stages in it."""
    args = config.get("args")
    stage = stage_of(args)
    given = {} if _asks_help(args) else args_to_dict(args)
    if problem := model_template_problem(given.get("model_name_or_path"), given.get("template")):
        raise ConfigError(problem)
    if uses_vs2(args):
        check_module_targets(given)  # a misspelt LoRA target is skipped without a word
        checked = check_training_data(given, argument_default)
        config = {**config, "args": checked if isinstance(args, dict) else as_arg_list(args, checked)}
    if stage not in STAGES:
        return original(config)
    return run_stage(STAGES[stage], config, original)


def _asks_help(args: dict[str, Any] | list[str] | None) -> bool:
    """No run: no arguments, or ``--help`` among them."""
    return args is None or (isinstance(args, list) and any(a in ("-h", "--help") for a in args))


def uses_vs2(args: dict[str, Any] | list[str] | None) -> bool:
    """Does this run use our template, one of our stages, or one of our data-check keys?"""
    from vs2_plugin.data.validate import DataCheckArguments

    if _asks_help(args):
        return False
    if stage_of(args) in STAGES:
        return True
    as_dict = args if isinstance(args, dict) else args_to_dict(args)
    return as_dict.get("template") == TEMPLATE_NAME or bool(DataCheckArguments.field_names() & set(as_dict))


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


def argument_default(name: str) -> Any:
    """The default LLaMA-Factory gives its argument ``name`` (model, data, finetuning or generating
    arguments), read from its dataclasses so that it is never re-typed here."""
    from llamafactory.hparams import DataArguments, FinetuningArguments, GeneratingArguments, ModelArguments

    for cls in (ModelArguments, DataArguments, FinetuningArguments, GeneratingArguments):
        for item in dataclasses.fields(cls):
            if item.name == name:
                if item.default is not dataclasses.MISSING:
                    return item.default
                if item.default_factory is not dataclasses.MISSING:
                    return item.default_factory()
                raise ConfigError(f"LLaMA-Factory's argument {name!r} has no default")
    raise ConfigError(f"LLaMA-Factory has no argument {name!r}")


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


def _argument_classes(kind: str) -> tuple:
    """The dataclasses LLaMA-Factory's parser fills for ``kind``: "train" (``get_train_args``, the
    ``USE_MCA`` variant when that is set) or "infer" (``get_infer_args``)."""
    from llamafactory.extras.misc import is_env_enabled
    from llamafactory.hparams import parser

    if kind == "train":
        return parser._TRAIN_MCA_ARGS if is_env_enabled("USE_MCA") else parser._TRAIN_ARGS
    if kind == "infer":
        return parser._INFER_ARGS
    raise ValueError(f"kind must be 'train' or 'infer'; got {kind!r}")


def argument_names(kind: str) -> frozenset[str] | None:
    """The keys LLaMA-Factory's argument parser accepts: ``kind`` "train" (model, data, training,
    finetuning and generating arguments) or "infer" (the same without training arguments). Read
    from the parser's own dataclass lists, so that they are never re-typed here. None when
    ``ALLOW_EXTRA_ARGS`` is set: the parser then takes any key."""
    from llamafactory.extras.misc import is_env_enabled

    if is_env_enabled("ALLOW_EXTRA_ARGS"):
        return None
    # HfArgumentParser.parse_dict takes the init fields of each dataclass
    return frozenset(item.name for cls in _argument_classes(kind) for item in dataclasses.fields(cls) if item.init)


def pair_data_stages() -> frozenset[str]:
    """The stages whose dataset holds ranked pairs (LLaMA-Factory's list, gDPO added by registration)."""
    from llamafactory.extras.constants import STAGES_USE_PAIR_DATA

    return frozenset(STAGES_USE_PAIR_DATA)


def template_names() -> frozenset[str]:
    """The chat templates LLaMA-Factory knows in this process (ours included once registered)."""
    from llamafactory.data.template import TEMPLATES

    return frozenset(TEMPLATES)


def template_problem(name: Any, where: str = "") -> str | None:
    """Why ``template: name`` would fail once the model is loaded (LLaMA-Factory looks it up in
    its registry, :func:`template_names`, only after loading the tokenizer): the name, after
    ``where``, and close matches; None for a registered name or none (the tokenizer's or the
    empty template)."""
    from vs2_plugin.errors import did_you_mean

    if name is None or name == "":
        return None
    names = template_names()
    if str(name) in names:
        return None
    return f"{where}template: {name!r} is not registered with LLaMA-Factory{did_you_mean(str(name), names)}"


def model_template_problem(model: Any, template: Any, where: str = "") -> str | None:
    """Why a video-SALMONN 2 model must not run with ``template`` (after ``where``): another
    template's plugin gives it no audio tokens and samples frames its own way, so it would train
    or caption on silent videos without a word. Only a local model folder is read (its
    ``config.json``); None when the model is not ours, or the template is ``video_salmonn2``."""
    import json
    from pathlib import Path

    if template in (None, "", TEMPLATE_NAME) or not model or template_problem(template):
        return None  # no template, ours, or one LLaMA-Factory does not know (said by template_problem)
    try:
        model_type = json.loads((Path(str(model)) / "config.json").read_text(encoding="utf-8")).get("model_type")
    except (OSError, ValueError, AttributeError):
        return None  # a hub id, or a folder the loader will refuse in its own words
    if model_type != MODEL_TYPE:
        return None
    return (
        f"{where}template: {template!r} with {model}, a {MODEL_TYPE} model: its audio would be dropped and "
        f"its frames laid out by another plugin; use template: {TEMPLATE_NAME}"
    )


def parse_arguments(kind: str, args: dict[str, Any], where: str = "", files: bool = True) -> list[str]:
    """Check ``args`` as ``llamafactory-cli train`` ("train") or ``api`` / ``chat`` ("infer") would,
    loading nothing: through LLaMA-Factory's own ``get_train_args`` / ``get_infer_args``, so its
    checks after the parse run too (a training run without ``dataset``, ``do_eval`` without an eval
    set, a stage's unsupported options, a package an option needs, a finished run in ``output_dir``
    — that last one not when ``files`` is false). Our stages' forced settings and gDPO's keys are
    applied and popped as :func:`run_stage` does, the data check's ``vs2_*`` keys validated and
    popped. A ConfigError names what LLaMA-Factory refuses (after ``where``). Returns notes on what
    cannot be checked on this machine: mixed precision without a GPU (parsed as fp32); with ``files``
    false, a package an option needs that is not installed here (a recipe for another machine); a training
    run's later checks with several GPUs (``llamafactory-cli`` starts one process per GPU there,
    this check runs in one, which LLaMA-Factory refuses: the keys and types are parsed only). The
    DeepSpeed config is left out (parsing it imports DeepSpeed, an extra); reading its file is the
    caller's."""
    import torch
    from llamafactory.hparams.parser import HfArgumentParser, get_infer_args, get_train_args

    from vs2_plugin.data.validate import DataCheckArguments
    from vs2_plugin.gdpo.config import GDPOArguments

    args = dict(args)
    notes = []
    spec = STAGES.get(str(args.get("stage"))) if kind == "train" else None
    if kind == "train":
        if spec is not None:
            _apply_forced(spec, args)
            if spec.name == "gdpo":
                GDPOArguments.pop_from(args)
            args["stage"] = spec.base
        DataCheckArguments.pop_from(args)
        args.pop("deepspeed", None)
    mixed = [k for k in ("bf16", "fp16", "pure_bf16") if str(args.get(k, "")).lower() in ("true", "1")]
    if {"bf16", "fp16"} <= set(mixed):  # transformers' own check, which the fp32 parse below would hide
        raise ConfigError(f"{where + ': ' if where else ''}at most one of fp16 and bf16 can be true")
    if kind == "train" and mixed and not torch.cuda.is_available():
        notes.append(f"{', '.join(mixed)}: not checked on this machine (no GPU); parsed as fp32")
        args.update({k: False for k in mixed}, use_cpu=True)
    if kind == "train" and not files:
        args["overwrite_output_dir"] = True  # an output_dir on this machine is not the recipe's to answer for
    one_process = kind == "train" and torch.cuda.device_count() > 1
    if one_process:
        notes.append(
            f"{torch.cuda.device_count()} GPUs here: LLaMA-Factory's checks after the parse not run "
            "(they refuse one process for several GPUs; llamafactory-cli starts one a GPU)"
        )
    head = f"{where}: " if where else ""
    try:
        if one_process:
            parsed = HfArgumentParser(_argument_classes(kind)).parse_dict(
                args, allow_extra_keys=argument_names(kind) is None
            )
        else:
            with _quiet_llamafactory():
                parsed = (get_train_args if kind == "train" else get_infer_args)(args)
        if spec is not None and spec.name == "gdpo":  # the gDPO stage's own rules on LLaMA-Factory's DPO keys
            from vs2_plugin.gdpo.workflow import check_dpo_settings

            check_dpo_settings(next(a for a in parsed if hasattr(a, "pref_loss")))
    except ConfigError as exc:
        raise ConfigError(f"{head}{exc}") from None
    except ImportError as exc:  # an option's package (use_unsloth, use_galore...) is not installed
        text = " ".join(str(exc).split()).removeprefix("No package metadata was found for ")  # its hint, on one line
        missing = f"{head}LLaMA-Factory's {kind} arguments need a package not installed here: {text}"
        if files:
            raise ConfigError(missing) from None
        notes.append(missing)  # --keys-only: a recipe for another machine, whose packages are its own
    except (ValueError, TypeError, AssertionError) as exc:  # its own checks are partly asserts
        hint = ""
        if "True is not a valid" in str(exc) or "False is not a valid" in str(exc):
            hint = " (YAML reads a bare yes / no / on / off as true or false: quote the word)"
        raise ConfigError(f"{head}LLaMA-Factory's {kind} arguments: {exc or type(exc).__name__}{hint}") from None
    return notes


@contextlib.contextmanager
def _quiet_llamafactory():
    """LLaMA-Factory's and transformers' log levels as they were, whatever ``get_train_args`` sets:
    its info lines and advice (mixed precision, on a machine that parsed it as fp32) are not findings."""
    import logging

    import transformers

    library = logging.getLogger("llamafactory")
    level, verbosity = library.level, transformers.utils.logging.get_verbosity()
    library.setLevel(logging.ERROR)
    try:
        yield
    finally:
        library.setLevel(level)
        transformers.utils.logging.set_verbosity(verbosity)


def typed_values(kind: str, args: dict[str, Any], where: str) -> tuple[dict[str, Any], list[str]]:
    """(``args`` as typed, the problems): each value checked against the type of LLaMA-Factory's field
    for it (a whole number given for a float field becomes a float). Its parser passes a recipe's values on
    unconverted, so ``learning_rate: "1e-4"`` or ``do_train: "false"`` (text) would reach the trainer
    as text: a problem names every such value, each as ``where`` + key, and every value outside
    a field's choices (``finetuning_type: lroa``; ``stage`` also takes our stages; ``template`` takes
    the names of LLaMA-Factory's registry, :func:`template_problem`). A list of names
    is taken for a text field (LLaMA-Factory splits "a,b" into the same list). Fields of other types
    (enums, dicts) are left to the parser."""
    import typing

    hints: dict[str, Any] = {}
    for cls in _argument_classes(kind):
        try:
            hints.update(typing.get_type_hints(cls))
        except Exception:  # noqa: BLE001 - a field type this version cannot resolve: its fields are not checked
            continue
    out, problems = dict(args), []
    for key, value in args.items():
        hint = hints.get(key)
        if key == "template" and isinstance(value, str):  # its choices: the registry, not its type
            problem = template_problem(value, where)
            if problem:
                problems.append(problem)
                continue
        choices = typing.get_args(hint) if typing.get_origin(hint) is typing.Literal else None
        if choices and value not in choices and not (key == "stage" and isinstance(value, str) and value in STAGES):
            allowed = ", ".join(map(str, (*choices, *STAGES) if key == "stage" else choices))
            problems.append(f"{where}{key}: {value!r} is not one of {allowed}")
            continue
        declared = _declared_types(hint)
        if value is None or declared is None:
            continue
        if float in declared and int not in declared and type(value) is int:
            out[key] = float(value)  # a whole number for a float field
        elif str in declared and isinstance(value, list) and all(isinstance(v, str) for v in value):
            continue  # names as a list: LLaMA-Factory splits "a,b" and takes [a, b] alike
        elif not isinstance(value, declared) or (isinstance(value, bool) and bool not in declared):
            names = " or ".join(t.__name__ for t in declared)
            # a number read where text is meant (a revision "1.10"): converting it back could not restore it
            hint = "; quote it to give text" if declared == (str,) and type(value) in (int, float) else ""
            problems.append(f"{where}{key}: {value!r} is {type(value).__name__}, not {names}{hint}")
    return out, problems


def _declared_types(hint: Any) -> tuple[type, ...] | None:
    """The plain types (bool, int, float, str) a field of type ``hint`` declares, or None to leave it unchecked."""
    import types
    import typing

    arms = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    arms = tuple(a for a in arms if a is not type(None))
    if not arms or not all(a in (bool, int, float, str) for a in arms):
        return None
    return arms
