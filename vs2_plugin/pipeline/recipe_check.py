"""What a recipe would get wrong, found on any machine before a GPU is booked (``vs2 check-recipe``).

A recipe is read the way its command reads it, with the same ``key=value`` overrides on top:

- a training recipe (``llamafactory-cli train``: it names a ``stage``, or keys only training
  takes) — every key, type and choice through LLaMA-Factory's own argument fields and parser,
  the plugin's stages' rules (``vs2_align`` freezes all but the audio aligner, gDPO's ``gdpo_*``
  keys) and the data check's ``vs2_*`` keys; the chat template; then the files it names: the
  model and adapters, the DeepSpeed config, each dataset in its ``dataset_info.json`` (pairs
  where the stage ranks, plain samples where it does not) and that dataset's files;
- an inference recipe (``llamafactory-cli api`` / ``chat``) — the same with the inference arguments;
- an mrDPO driver config (``vs2 mrdpo``: it names ``train_videos`` or other driver keys) — the
  driver's own validation at load, the arguments its gDPO rounds and its sampling model will get,
  its model, adapters and video lists.

Every problem found is reported, not only the first. ``data=True`` also runs the bad-sample pass a
training run starts with (:func:`vs2_plugin.data.train_check.check_training_data`: every row and
media file, by the recipe's ``vs2_*`` settings), writing nothing beside the recipe: under
``vs2_bad_samples: skip`` the rows the run would leave out are notes, a problem only when nothing
is left. What cannot be checked here is said as a note: bf16 without a GPU, a model named by its
hub id.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vs2_plugin.errors import ConfigError, DataError, Vs2Error
from vs2_plugin.modeling.export import ADAPTER_WEIGHTS

#: suffixes ``llamafactory-cli`` reads as a recipe file, case and all (anything else is taken for arguments)
RECIPE_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class Finding:
    """One result: ``problem`` (the recipe would fail or do something else than it says) or ``note``."""

    level: str
    text: str


def recipe_kind(data: dict[str, Any]) -> str:
    """``train`` (a stage), ``mrdpo`` (a key only the driver takes), ``train`` (a key only training
    takes: LLaMA-Factory's default stage is sft) or ``infer``."""
    import dataclasses

    from vs2_plugin.integrations.llamafactory import argument_names
    from vs2_plugin.pipeline.config import MrDPOConfig, plugin_train_keys

    if "stage" in data:
        return "train"
    train = (argument_names("train") or frozenset()) | plugin_train_keys()
    if ({f.name for f in dataclasses.fields(MrDPOConfig)} - train) & set(data):
        return "mrdpo"
    return "train" if (train - (argument_names("infer") or frozenset())) & set(data) else "infer"


def check_recipe(path: str | Path, overrides: list[str] | None = None, *, files: bool = True, data: bool = False):
    """``(kind, findings)`` for the recipe at ``path`` with ``overrides`` (``key=value``) on top.
    ``files=False`` checks keys, types and choices only (a recipe for a machine whose models are
    elsewhere)."""
    from vs2_plugin.pipeline.config import load_yaml, merge_overrides, parse_overrides

    raw = load_yaml(path)
    if not raw:  # nothing to read as any kind of recipe: as unreadable as a file that is not YAML
        raise ConfigError(f"{path}: an empty recipe (no key)")
    kind = recipe_kind(raw)
    findings: list[Finding] = []
    if kind != "mrdpo" and not Path(path).name.endswith(RECIPE_SUFFIXES):
        findings.append(Finding("problem", f"{path}: llamafactory-cli reads a recipe only from a .yaml or .yml file"))
    if kind == "mrdpo":
        findings += _check_mrdpo(path, overrides or [], files=files, data=data)
    else:
        args = merge_overrides(raw, parse_overrides(overrides)) if overrides else raw
        findings += argument_findings(args, kind, where=str(path), files=files, data=data)
    if data and (kind == "infer" or not files):
        why = "--keys-only" if not files else "an inference recipe names no dataset"
        findings.append(Finding("note", f"--data: no samples checked ({why})"))
    return kind, findings


def argument_findings(
    args: dict[str, Any], kind: str, *, where: str, files: bool = True, data: bool = False
) -> list[Finding]:
    """Findings for LLaMA-Factory arguments ``args`` of ``kind`` "train" or "infer" (see the module)."""
    from vs2_plugin.integrations.llamafactory import parse_arguments
    from vs2_plugin.pipeline import config

    problems, _ = config.argument_problems(kind, args, where=where)  # unknown keys, types, choices
    findings = [Finding("problem", p) for p in problems]
    if not problems:  # the parser would refuse the same first; its own checks come after
        try:
            findings += [Finding("note", n) for n in parse_arguments(kind, args, where=where, files=files)]
        except Vs2Error as exc:
            findings.append(Finding("problem", str(exc)))
    findings += _check_template(args, kind)
    if files:
        findings += _check_model(args) + _check_deepspeed(args)
        if kind == "train":
            findings += _check_targets(args) + _check_datasets(args)
            if data and not any(f.level == "problem" for f in findings):
                findings += _check_data(args)
            elif data:
                findings.append(Finding("note", "--data: no samples checked until the problems above are mended"))
    return findings


def _check_template(args: dict[str, Any], kind: str) -> list[Finding]:
    """The template where the values went unchecked (``ALLOW_EXTRA_ARGS`` set); otherwise
    ``argument_problems`` names an unknown one, with close matches. A video-SALMONN 2 model with
    another template (:func:`~vs2_plugin.integrations.llamafactory.model_template_problem`)."""
    from vs2_plugin.integrations.llamafactory import argument_names, model_template_problem, template_problem

    problem = template_problem(args.get("template")) if argument_names(kind) is None else None
    problem = problem or model_template_problem(args.get("model_name_or_path"), args.get("template"))
    return [Finding("problem", problem)] if problem else []


def _check_model(args: dict[str, Any]) -> list[Finding]:
    """The model and each adapter, each reported on its own."""
    from vs2_plugin.data import dataset_rows
    from vs2_plugin.pipeline.generation import folder_problem

    model = str(args.get("model_name_or_path") or "")
    problems = [folder_problem(model, f"model_name_or_path {model}") if model else None]  # none: the parser's to say
    if model and problems[0] is None:
        problems[0] = _folder_contents_problem(model, f"model_name_or_path {model}", adapter=False)
    for adapter in dataset_rows.split_names(args.get("adapter_name_or_path")):
        name = f"adapter_name_or_path {adapter}"
        problems.append(folder_problem(adapter, name, adapter=True) or _folder_contents_problem(adapter, name, True))
    out = [Finding("problem", p) for p in problems if p]
    value = args.get("adapter_name_or_path")
    if isinstance(value, str) and value.strip() and len(dataset_rows.split_names(value)) != len(value.split(",")):
        # LLaMA-Factory keeps the empty name and loads it as an adapter (from the hub), after the model
        out.append(Finding("problem", f"adapter_name_or_path {value!r}: an empty name between commas"))
    if model and problems[0] is None and not Path(model).exists():  # no folder, no problem: a hub id
        out.append(Finding("note", f"model_name_or_path {model}: a hub id, downloaded when the run starts"))
    return out


#: a local folder's marker file and the weight files one of which it needs, as transformers and PEFT read them
FOLDER_FILES = {
    False: (
        "config.json",
        ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json"),
    ),
    True: ("adapter_config.json", ADAPTER_WEIGHTS),
}


def _folder_contents_problem(path: str, name: str, adapter: bool) -> str | None:
    """What loading a local model or adapter folder would fail on once the run has started: its
    config not a JSON object, no weights file (PEFT then looks for an adapter on the hub)."""
    marker, weights = FOLDER_FILES[adapter]
    if not (Path(path) / marker).is_file():
        return None  # a hub id, or what folder_problem says
    try:
        if not isinstance(json.loads((Path(path) / marker).read_text(encoding="utf-8")), dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as exc:
        return f"{name}: {marker} is not readable JSON ({exc})"
    if not any((Path(path) / weight).is_file() for weight in weights):
        return f"{name}: no weights ({' or '.join(weights)})"
    return None


def _check_targets(args: dict[str, Any]) -> list[Finding]:
    """LoRA's ``lora_target`` and ``additional_target`` against the local model's modules, as
    LLaMA-Factory and PEFT match them: a name that reaches none is skipped without a word in
    training (:mod:`vs2_plugin.modeling.targets`)."""
    from vs2_plugin.modeling.targets import module_target_problems

    problems = module_target_problems(args)
    if problems is None and (Path(str(args.get("model_name_or_path") or "")) / "config.json").is_file():
        return [Finding("note", "lora_target / additional_target: not checked (the model cannot be built here)")]
    return [Finding("problem", p) for p in problems or []]


def _check_deepspeed(args: dict[str, Any]) -> list[Finding]:
    deepspeed = args.get("deepspeed")
    if not deepspeed or isinstance(deepspeed, dict):  # a mapping is the config itself (DeepSpeed's to read)
        return []
    try:
        json.loads(Path(str(deepspeed)).read_text(encoding="utf-8"))
    except OSError as exc:
        return [Finding("problem", f"deepspeed {deepspeed}: cannot read ({exc.strerror or exc})")]
    except ValueError as exc:
        return [Finding("problem", f"deepspeed {deepspeed}: not valid JSON ({exc})")]
    return []


def _check_datasets(args: dict[str, Any]) -> list[Finding]:
    """Each dataset name in its folder's dataset_info.json, with its files, of the kind its stage
    reads: ranked pairs for a pair stage's datasets, plain samples otherwise (gDPO's ground truth too)."""
    from vs2_plugin.data import dataset_rows
    from vs2_plugin.data.train_check import dataset_groups
    from vs2_plugin.integrations.llamafactory import argument_default, pair_data_stages

    out: list[Finding] = []
    stage = str(args.get("stage") or argument_default("stage"))
    for group, keys, _dir_key, folder in dataset_groups(
        args, str(args.get("dataset_dir") or argument_default("dataset_dir"))
    ):
        ranked = stage in pair_data_stages() and group == "train"
        for key in keys:
            value = args.get(key)
            names = dataset_rows.split_names(value)
            if isinstance(value, str) and value.strip() and len(names) != len(value.split(",")):
                out.append(Finding("problem", f"{key} {value!r}: an empty name between commas"))
            if not names or folder == "ONLINE" or folder.startswith("REMOTE:"):
                continue
            try:
                dataset_rows.load_dataset_info(folder)
            except DataError as exc:  # said once for the key, not once for each of its datasets
                out.append(Finding("problem", f"{key} {', '.join(names)}: {exc}"))
                continue
            for name in names:
                out += _check_dataset(key, name, folder, ranked, stage)
    return out


def _check_dataset(key: str, name: str, folder: str, ranked: bool, stage: str) -> list[Finding]:
    from vs2_plugin.data import dataset_rows

    try:
        (spec,) = dataset_rows.dataset_specs([name], folder)
    except (DataError, ConfigError) as exc:
        return [Finding("problem", f"{key}: {exc}")]
    if spec.local and "file_name" not in spec.entry:
        return [Finding("problem", f"{key}: dataset {name!r} has no file_name in {folder}/dataset_info.json")]
    out = []
    if bool(spec.entry.get("ranking", False)) != ranked:
        want = "ranked pairs (ranking: true)" if ranked else "plain samples (no ranking)"
        out.append(Finding("problem", f"{key}: dataset {name!r} is not what {key} of stage {stage} reads: {want}"))
    return out + (_check_dataset_files(key, spec) if spec.local else [])


def _check_dataset_files(key: str, spec) -> list[Finding]:
    try:
        files = spec.files()
    except DataError as exc:
        return [Finding("problem", f"{key}: {exc}")]
    if not files:
        return [Finding("problem", f"{key}: dataset {spec.name!r}: its folder holds no file")]
    if len({f.suffix for f in files}) > 1:
        return [
            Finding("problem", f"{key}: dataset {spec.name!r}: its folder mixes file types (LLaMA-Factory reads one)")
        ]
    return []


def _check_data(args: dict[str, Any]) -> list[Finding]:
    """The training run's own bad-sample pass, its listing kept in a scratch folder."""
    from vs2_plugin.data import validate
    from vs2_plugin.data.train_check import check_training_data

    policy = validate.DataCheckArguments.pop_from(dict(args)).vs2_bad_samples
    if policy == "off":
        return [Finding("note", "data: not checked (vs2_bad_samples: off)")]
    with tempfile.TemporaryDirectory(prefix="vs2_check_") as scratch:
        try:
            check_training_data({**args, "output_dir": scratch}, announce=False)  # its listing is read below
            stopped = None
        except DataError as exc:  # fail: a bad sample; skip: a dataset with nothing left
            stopped = exc
        listed = _listed(Path(scratch) / (validate.BAD_FILE if policy == "fail" else validate.SKIPPED_FILE))
        summary_file = Path(scratch) / validate.SUMMARY_FILE
        summary = json.loads(summary_file.read_text()) if summary_file.is_file() else None
    if stopped is not None and not listed:  # stopped before any sample was read (an unreadable file)
        return [Finding("problem", f"data: {stopped}")]
    if policy == "fail":
        found = [Finding("problem", m) for m in listed]
    else:
        found = [Finding("note", f"left out: {m}") for m in listed]
        if stopped is not None:
            found.append(Finding("problem", "data: a dataset would have no sample left to train on"))
    counted = f"{summary['samples']} samples checked, {summary['bad']} bad" if summary else f"{len(listed)} bad"
    return [Finding("note", f"data ({policy}): {counted}")] + found


def _listed(path: Path | None) -> list[str]:
    """The messages of a bad-sample listing (one JSON row per bad sample)."""
    from vs2_plugin.data import validate

    if path is None or not path.is_file():
        return []
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").split("\n") if line.strip()]
    return [validate.BadSample(**{"index": None, **row}).message() for row in rows]


def _check_mrdpo(path: str | Path, overrides: list[str], *, files: bool, data: bool = False) -> list[Finding]:
    from vs2_plugin.pipeline.config import load_mrdpo_config
    from vs2_plugin.pipeline.mrdpo import round_train_args

    try:
        cfg = load_mrdpo_config(path, overrides)  # the driver's own checks: values, train.* / infer.* keys
    except Vs2Error as exc:
        return [Finding("problem", str(exc))]
    # the types too, as a round's llamafactory-cli train and the sampling model's loading read them
    round_args = round_train_args(cfg, cfg.model_name_or_path, list(cfg.adapter_name_or_path), Path(cfg.run_dir), 1)
    out = argument_findings(round_args, "train", where=f"{path}: train (a gDPO round's arguments)", files=False)
    infer_args = {**cfg.infer, "model_name_or_path": cfg.model_name_or_path}
    infer_args.setdefault("template", cfg.template)
    out += argument_findings(infer_args, "infer", where=f"{path}: infer (the sampling model's arguments)", files=False)
    if files:
        out += _check_model(
            {"model_name_or_path": cfg.model_name_or_path, "adapter_name_or_path": cfg.adapter_name_or_path}
        )
        out += _check_judge_ready(cfg)
        out += _check_deepspeed(round_args) + _check_targets(round_args)
        for key in ("train_videos", "heldout_videos"):
            value = getattr(cfg, key)
            if value and not Path(value).is_file():
                out.append(Finding("problem", f"{key} {value}: not found"))
            elif value and data:
                out += _check_video_list(cfg, key, value)
    return out


def _check_judge_ready(cfg) -> list[Finding]:
    """What the driver's judge needs on this machine (an API key) and lacks."""
    from vs2_plugin.judge.config import JudgeConfig
    from vs2_plugin.judge.runner import judge_not_ready

    config = JudgeConfig.from_dict(cfg.judge)
    why = judge_not_ready(config)
    return [Finding("problem", f"judge {config.judge!r}: {why}")] if why else []


def _check_video_list(cfg, key: str, path: str) -> list[Finding]:
    """Every row and video of a driver's video list, as its run screens them: a bad one is a
    problem under ``bad_samples: fail``, a note of what the run would leave out under ``skip``; a
    list with no usable video (an empty one included) a problem, as the run refuses it."""
    from vs2_plugin.pipeline.screen import screen_rows, video_limits

    try:
        good, bad = screen_rows(path, limits=video_limits(cfg), tag=key)
    except Vs2Error as exc:
        return [Finding("problem", f"{key} {path}: {exc}")]
    level = "problem" if cfg.bad_samples == "fail" else "note"
    out = [Finding(level, b.message()) for b in bad]
    out.append(Finding("note", f"{key} {path}: {len(good) + len(bad)} video(s) checked, {len(bad)} bad"))
    if not good:  # the run stops there whatever the policy
        out.append(Finding("problem", f"{key} {path}: no usable videos ({len(bad)} bad)"))
    return out
