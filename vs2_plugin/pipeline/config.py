"""Configuration of the mrDPO driver (``recipes/mrdpo.yaml``) and of rebirth tuning.

Relative paths are resolved against the current directory, as LLaMA-Factory does. Every
dataclass validates in ``__post_init__`` and names the bad key and value.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vs2_plugin.data.media import MIN_DURATION_S
from vs2_plugin.errors import ConfigError, did_you_mean

DEFAULT_GLOBAL_PROMPT = (
    "Provide a comprehensive description of all the content in the video, leaving out no details. "
    "Be sure to include as much of the audio information as possible, and ensure that your descriptions "
    "of the audio and video are closely aligned."
)
DEFAULT_LOCAL_PROMPT = (
    "Describe in detail what happens in the video between {start:g} and {end:g} seconds, "
    "including what is seen and what is heard."
)


def _check_choice(name: str, value: Any, allowed: tuple) -> None:
    if value not in allowed:
        raise ConfigError(f"{name} must be one of {', '.join(map(str, allowed))}; got {value!r}")


def _check_positive(name: str, value: Any, minimum: float = 1, integer: bool = True) -> None:
    ok = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok or value < minimum:
        kind = "an integer" if integer else "a number"
        raise ConfigError(f"{name} must be {kind} >= {minimum}; got {value!r}")


@dataclass
class SamplingConfig:
    """How captions are sampled from the current model (paper sec. 4.2: two per video)."""

    backend: str = "local"  #: "local" (this machine, data-parallel workers) or "openai"
    samples_per_video: int = 2
    workers: int = 1  #: local: processes sampling disjoint shards (one per GPU when CUDA is there)
    #: local: prompts (video x global/local) per generate call; each brings samples_per_video rows
    batch_size: int = 4
    global_prompt: str = DEFAULT_GLOBAL_PROMPT
    local_prompt: str = DEFAULT_LOCAL_PROMPT
    local: bool = True  #: also sample local (time-interval) captions
    max_new_tokens: int = 1024
    temperature: float = 1.0
    top_p: float = 0.9
    #: openai backend: an OpenAI-compatible server that serves the current model
    base_url: str | None = None
    model: str | None = None
    concurrency: int = 4
    timeout_s: float = 600.0

    def __post_init__(self):
        _check_choice("sampling.backend", self.backend, ("local", "openai"))
        _check_positive("sampling.samples_per_video", self.samples_per_video, 2)
        _check_positive("sampling.workers", self.workers)
        _check_positive("sampling.batch_size", self.batch_size)
        _check_positive("sampling.max_new_tokens", self.max_new_tokens)
        _check_positive("sampling.concurrency", self.concurrency)
        for name in ("top_p", "temperature", "timeout_s"):
            _check_positive(f"sampling.{name}", getattr(self, name), minimum=0, integer=False)
        if not 0 < self.top_p <= 1:
            raise ConfigError(f"sampling.top_p must be in (0, 1]; got {self.top_p!r}")
        if self.temperature <= 0:
            raise ConfigError(f"sampling.temperature must be > 0 for sampling; got {self.temperature!r}")
        if self.backend == "openai" and not self.base_url:
            raise ConfigError("sampling.base_url is required for sampling.backend: openai")
        try:
            self.local_prompt.format(start=0.0, end=1.0)
        except (KeyError, IndexError, ValueError) as exc:
            raise ConfigError(f"sampling.local_prompt may only use {{start}} and {{end}}: {exc}") from None


@dataclass
class MrDPOConfig:
    """One mrDPO run (paper sec. 3.3, Fig. 2-3): per round sample -> judge -> pairs -> gDPO -> eval."""

    run_dir: str
    model_name_or_path: str  #: post-alignment checkpoint (the frozen backbone of every round)
    train_videos: str  #: JSONL: id, video, reference (or events), optional local intervals
    heldout_videos: str | None = None  #: same format; evaluated after every round
    #: LoRA adapters merged before round 1 (e.g. the SFT LoRA): a list or LLaMA-Factory's "a,b"
    adapter_name_or_path: list[str] = field(default_factory=list)
    rounds: int = 6
    seed: int = 42
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    judge: dict[str, Any] = field(default_factory=lambda: {"judge": "offline"})
    #: "table3" (paper App. F) or a list of per-round dicts {delta_e_global, delta_r_global, delta_e_local, delta_r_local}
    #: (aliases e_g, r_g, e_t, r_t), as fractions
    thresholds: Any = "table3"
    stop_unnatural_rate: float = 0.10  #: stop when held-out unnatural-pattern rate exceeds this
    #: judged captions may fail (after the judge's own retries) up to this fraction per step: they are
    #: left out; above it the step stops, keeps what was judged and a rerun retries only the failed ones
    max_judge_failure_rate: float = 0.10
    #: eq. 11's lambda; unset: the train recipe's, else GDPOArguments' default (written once there)
    gdpo_lambda: float | None = None
    #: a ``llamafactory-cli train`` gDPO round recipe (e.g. recipes/gdpo_round.yaml) whose arguments
    #: every round reuses; ``train`` overrides them. Relative paths: the working folder, else the
    #: folder of the package (a repository checkout or an installed wheel's copy of recipes/)
    train_recipe: str | None = None
    #: LLaMA-Factory arguments of every gDPO round (template, LoRA, optimiser, ...), on top of train_recipe
    train: dict[str, Any] = field(default_factory=dict)
    #: LLaMA-Factory arguments for loading the model to sample (video_fps, video_maxlen, ...;
    #: frames default to the paper's, VIDEO_DEFAULTS, not LLaMA-Factory's)
    infer: dict[str, Any] = field(default_factory=dict)
    #: bad rows of the video lists (missing / unreadable / truncated / too short video, no video
    #: stream, malformed row): "skip" = left out and listed in <run_dir>/skipped_videos.jsonl,
    #: "fail" = stop with one line naming the row, file and problem
    bad_samples: str = "skip"
    min_duration_s: float = MIN_DURATION_S  #: shorter videos are bad
    max_duration_s: float | None = None  #: longer videos are bad (default: no limit)
    #: where per-round held-out metrics go besides metrics.json, as LLaMA-Factory's report_to:
    #: "none", "tensorboard" (event files in <run_dir>/runs), "all", a list or "a,b"; unset: the
    #: supported values of train.report_to
    report_to: Any = None

    def __post_init__(self):
        if isinstance(self.sampling, dict):
            self.sampling = _build(SamplingConfig, self.sampling, "sampling")
        _check_positive("rounds", self.rounds)
        _check_positive("seed", self.seed, minimum=0)
        _check_choice("bad_samples", self.bad_samples, ("skip", "fail"))
        _check_positive("min_duration_s", self.min_duration_s, minimum=0, integer=False)
        if self.max_duration_s is not None:
            _check_positive("max_duration_s", self.max_duration_s, minimum=0, integer=False)
        for name in ("stop_unnatural_rate", "max_judge_failure_rate"):
            _check_positive(name, getattr(self, name), minimum=0, integer=False)
        self.schedule()  # a bad thresholds value fails here, before any video is read or judged
        if self.max_duration_s is not None and float(self.max_duration_s) <= float(self.min_duration_s):
            raise ConfigError(f"max_duration_s must be larger than min_duration_s; got {self.max_duration_s!r}")
        if self.adapter_name_or_path is None:
            self.adapter_name_or_path = []
        if isinstance(self.adapter_name_or_path, str):
            self.adapter_name_or_path = [a.strip() for a in self.adapter_name_or_path.split(",") if a.strip()]
        if self.report_to is None:  # train.report_to may name trackers the driver does not feed
            inherited = report_targets(self.train.get("report_to", "none"), check=False)
            self.report_to = [r for r in inherited if r in REPORTERS] or ["none"]
        self.report_to = report_targets(self.report_to)
        if not isinstance(self.judge, dict):
            raise ConfigError(f"judge must be a mapping of judge settings; got {self.judge!r}")
        from vs2_plugin.judge.config import JudgeConfig, normalize_judge_settings
        from vs2_plugin.judge.runner import require_judge

        self.judge = normalize_judge_settings(self.judge)
        require_judge(JudgeConfig.from_dict(self.judge))  # registered name, valid options: fail before any work
        if not 0 <= float(self.stop_unnatural_rate) <= 1:
            raise ConfigError(f"stop_unnatural_rate must be in [0, 1]; got {self.stop_unnatural_rate!r}")
        if not 0 <= float(self.max_judge_failure_rate) <= 1:
            raise ConfigError(f"max_judge_failure_rate must be in [0, 1]; got {self.max_judge_failure_rate!r}")
        for key in ("stage", "output_dir", "dataset", "dataset_dir", "gt_dataset", "model_name_or_path"):
            if key in self.train:
                raise ConfigError(f"train.{key} is set by the driver for every round; remove it from the config")
        self.train = check_arguments("train", self.train)  # typed: a float field's 1 reaches the run as 1.0
        self.infer = check_arguments("infer", self.infer)
        if self.train_recipe:
            path = resolve_recipe(self.train_recipe)
            recipe = load_yaml(path)
            if self.gdpo_lambda is None:
                self.gdpo_lambda = recipe.get("gdpo_lambda")
            inherited = {k: v for k, v in recipe.items() if k not in DRIVER_SET_KEYS}
            inherited = check_arguments("train", inherited, where=f"train_recipe {path}")
            self.train = {**inherited, **self.train}
        if self.gdpo_lambda is None:
            from vs2_plugin.gdpo.config import GDPOArguments

            self.gdpo_lambda = GDPOArguments.__dataclass_fields__["gdpo_lambda"].default
        _check_positive("gdpo_lambda", self.gdpo_lambda, minimum=0, integer=False)

    def schedule(self):
        """The pair thresholds of every round (:class:`vs2_plugin.judge.pairs.Schedule`)."""
        from vs2_plugin.judge.pairs import Schedule

        if isinstance(self.thresholds, str) and self.thresholds != "table3":
            raise ConfigError(
                f"thresholds: {self.thresholds!r} is no schedule{did_you_mean(self.thresholds, ['table3'])}; "
                "give table3 or a list of rounds of {delta_e_global, delta_r_global, delta_e_local, delta_r_local}"
            )
        return Schedule() if self.thresholds in (None, "table3") else Schedule.from_config(self.thresholds)

    @property
    def reporters(self) -> list[str]:
        return [r for r in self.report_to if r != "none"]

    @property
    def template(self) -> str:
        from vs2_plugin.integrations.llamafactory import TEMPLATE_NAME

        return str(self.train.get("template", self.infer.get("template", TEMPLATE_NAME)))


#: keys of a round recipe the driver sets itself for every round (the recipe's values are dropped)
DRIVER_SET_KEYS = frozenset(
    {
        "stage",
        "do_train",
        "model_name_or_path",
        "adapter_name_or_path",
        "dataset",
        "dataset_dir",
        "gt_dataset",
        "gt_dataset_dir",
        "output_dir",
        "gdpo_rounds",
        "gdpo_round",
        "seed",
        "gdpo_lambda",
    }
)


def check_arguments(kind: str, args: dict[str, Any], where: str | None = None) -> dict[str, Any]:
    """Refuse a key of ``args`` that ``kind`` would not take ("train": a gDPO round's ``llamafactory-cli
    train``; "infer": loading the model to sample), naming close matches, and a value of another type
    or choice than its field's (:func:`~vs2_plugin.integrations.llamafactory.typed_values`): a typo
    then stops the run at load, not after a round of sampling and judging. ``where``: the file they
    come from (default: keys are named ``kind.key``). Returns ``args`` as typed (a whole number for a
    float field as a float)."""
    problems, typed = argument_problems(kind, args, where)
    if problems:
        raise ConfigError("; ".join(problems))
    return typed


def plugin_train_keys() -> set[str]:
    """The training keys the plugin adds to LLaMA-Factory's: gDPO's ``gdpo_*`` and the data check's ``vs2_*``."""
    from vs2_plugin.data.validate import DataCheckArguments
    from vs2_plugin.gdpo.config import GDPOArguments

    return GDPOArguments.field_names() | DataCheckArguments.field_names()


def argument_problems(kind: str, args: dict[str, Any], where: str | None = None) -> tuple[list[str], dict[str, Any]]:
    """(problems, args as typed) of :func:`check_arguments`: the unknown keys (one problem), the
    known keys' values of another type or choice, and numbers outside :data:`ARGUMENT_RANGES`."""
    if not args:
        return [], dict(args or {})  # nothing to check: spares importing LLaMA-Factory
    from vs2_plugin.integrations.llamafactory import argument_names, typed_values

    known = argument_names(kind)
    if known is None:
        return [], dict(args)  # ALLOW_EXTRA_ARGS is set: LLaMA-Factory takes any key, so the driver does too
    if kind == "train":  # the plugin pops its own keys before LLaMA-Factory parses the rest
        known = known | plugin_train_keys()
    prefix = f"{kind}." if where is None else ""
    head = "" if where is None else f"{where}: "
    problems = []
    unknown = sorted(set(map(str, args)) - known)
    if unknown:
        named = [f"{prefix}{key}{did_you_mean(key, known)}" for key in unknown]
        takes = (
            "LLaMA-Factory's training arguments (llamafactory-cli train -h), gDPO's gdpo_* and the data check's "
            "vs2_* keys"
            if kind == "train"
            else "LLaMA-Factory's model, data, finetuning and generating arguments"
        )
        problems.append(f"{head}unknown argument(s) {', '.join(named)}; {kind} takes {takes}")
    typed, mistyped = typed_values(kind, {k: v for k, v in args.items() if str(k) in known}, head + prefix)
    out_of_range = [  # a value of another type is named above, as mistyped
        f"{head}{prefix}{key}: {typed[key]!r} {rule}"
        for key, (rule, ok) in ARGUMENT_RANGES.items()
        if key in typed and _is_number(typed[key]) and not ok(typed[key])
    ]
    return problems + mistyped + out_of_range, {**args, **typed}


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


#: numeric LLaMA-Factory arguments whose type its parser checks and whose range nothing checks before
#: the run has loaded its model (``lora_rank: 0`` fails in PEFT, ``video_fps: -1`` in the first batch);
#: not ``max_new_tokens``, which LLaMA-Factory reads as "use max_length" when it is 0 or less
ARGUMENT_RANGES: dict[str, tuple[str, Any]] = {
    **{
        key: ("must be at least 1", lambda v: v >= 1)
        for key in (
            "lora_rank",
            "cutoff_len",
            "per_device_train_batch_size",
            "per_device_eval_batch_size",
            "gradient_accumulation_steps",
            "video_maxlen",
            "video_max_pixels",
            "image_max_pixels",
            "audio_sampling_rate",
        )
    },
    **{key: ("must be above 0", lambda v: v > 0) for key in ("video_fps", "lora_alpha")},
    "lora_dropout": ("must be in [0, 1)", lambda v: 0 <= v < 1),
    "top_p": ("must be in (0, 1]", lambda v: 0 < v <= 1),
}


def resolve_recipe(path: str | Path) -> Path:
    """``path`` as given (absolute or from the working folder), else from the package's parent
    (a repository checkout: ``recipes/...``) or the package itself (an installed wheel's copy)."""
    package = Path(__file__).resolve().parents[1]
    for candidate in (Path(path), package.parent / path, package / path):
        if candidate.is_file():
            return candidate
    raise ConfigError(f"train_recipe {path}: not found (looked in the working folder and next to the package)")


#: where the driver can send per-round metrics ("all" = every one of them)
REPORTERS = ("none", "all", "tensorboard")
#: old driver key -> LLaMA-Factory's name for it (old names still work, with a warning)
RENAMED_KEYS = {"model": "model_name_or_path", "init_adapters": "adapter_name_or_path"}


def report_targets(value: Any, check: bool = True) -> list[str]:
    """``report_to`` as a list (LLaMA-Factory takes a name, a list or "a,b")."""
    names = [v.strip() for v in value.split(",")] if isinstance(value, str) else [str(v) for v in (value or [])]
    for name in names if check else ():
        _check_choice("report_to", name, REPORTERS)
    return names or ["none"]


def rename_deprecated(data: dict[str, Any], where: str) -> dict[str, Any]:
    """Map the old keys ``model`` / ``init_adapters`` to LLaMA-Factory's names, with a warning for each."""
    import logging
    import warnings

    data = dict(data)
    for old, new in RENAMED_KEYS.items():
        if old not in data:
            continue
        if new in data:
            raise ConfigError(f"{where}: both {old!r} (old name) and {new!r} are set; keep only {new!r}")
        message = f"{where}: {old!r} is deprecated, use {new!r} (LLaMA-Factory's name)"
        warnings.warn(message, DeprecationWarning, stacklevel=3)
        logging.getLogger("vs2_plugin").warning(message)
        data[new] = data.pop(old)
    return data


#: settings a run may be resumed with other values of: how the work is done, not what it makes
RESUMABLE_KEYS = frozenset(
    {
        # a run folder and its inputs may be moved, and a path be given relative or absolute
        "run_dir",
        "model_name_or_path",
        "adapter_name_or_path",
        "train_videos",
        "heldout_videos",
        "train_recipe",
        "rounds",  # a finished run goes on with more rounds
        "report_to",
        "stop_unnatural_rate",
        "max_judge_failure_rate",
        "sampling.workers",
        "sampling.batch_size",
        "sampling.concurrency",
        "sampling.timeout_s",
        "judge.show_progress",
        "judge.cache_path",
        "judge.options.concurrency",
        "judge.options.max_retries",
        "judge.options.timeout_s",
        "judge.options.backoff_base_s",
        "judge.options.backoff_max_s",
        "train.report_to",
        "train.logging_steps",
        "train.dataloader_num_workers",
    }
)


def _flat(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings as one mapping of dotted keys (``{"a": {"b": 1}}`` -> ``{"a.b": 1}``)."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict):  # an empty mapping sets nothing
            out.update(_flat(value, name))
        else:
            out[name] = value
    return out


def resume_differences(recorded: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """The settings (dotted keys, with both values) that ``current`` and the ``config.json`` a run
    was started with both set, to other values, other than :data:`RESUMABLE_KEYS`: finished steps
    were made with the recorded ones, and a resumed run would mix the two."""
    old, new = _flat(recorded), _flat(current)
    # a setting only one side has is no difference: another version of vs2 or of a recipe added or
    # removed it (gdpo_round.yaml's warmup_ratio), and the value it stood for is unknown
    return [
        f"{key} ({old[key]!r} -> {new[key]!r})"
        for key in sorted(old.keys() & new.keys())
        if key not in RESUMABLE_KEYS and old[key] != new[key]
    ]


def _build(cls, data: dict[str, Any], where: str):
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        named = [f"{key}{did_you_mean(key, names)}" for key in unknown]
        raise ConfigError(f"{where}: unknown key(s) {', '.join(named)}; known: {', '.join(sorted(names))}")
    required = [
        f.name
        for f in dataclasses.fields(cls)
        if f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
        and data.get(f.name) in (None, "")
    ]
    if required:
        raise ConfigError(f"{where}: missing required key(s) {', '.join(required)}")
    return cls(**data)


def yaml_value(text: str) -> Any:
    """One value as a recipe's YAML reads it (``30``, ``1e-4``, ``true``); text that is no YAML stays text."""
    import yaml

    from vs2_plugin.files import recipe_yaml

    try:
        return recipe_yaml(text)
    except yaml.YAMLError:
        return text


def load_yaml(path: str | Path) -> dict[str, Any]:
    import yaml

    from vs2_plugin.files import recipe_yaml, yaml_problem

    p = Path(path)
    if p.is_dir():
        raise ConfigError(f"{p}: a folder, not a config file")
    if not p.is_file():
        raise ConfigError(f"config file not found: {p}")
    try:
        data = recipe_yaml(p.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: not valid YAML ({yaml_problem(exc)})") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{p}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: expected a mapping at the top level")
    return data


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``key=value`` arguments as ``llamafactory-cli`` takes them (OmegaConf): values are typed
    as YAML reads them (``rounds=2`` -> 2, ``sampling.top_p=0.8`` -> nested, ``a=[x,y]`` -> list)."""
    from omegaconf import OmegaConf

    for item in items:
        key, eq, _ = item.partition("=")
        if not eq or not key.strip():
            raise ConfigError(f"command-line override {item!r} is not key=value (e.g. rounds=2 run_dir=outputs/try)")
    try:
        return OmegaConf.to_container(OmegaConf.from_cli(list(items)))
    except Exception as exc:  # noqa: BLE001 - OmegaConf's grammar errors have no common base we can name
        raise ConfigError(f"command-line overrides {' '.join(items)!r}: {exc}") from None


def merge_overrides(data: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """``overrides`` on top of ``data``; nested mappings (``sampling``, ``train``, ...) merge key by key."""
    out = dict(data)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge_overrides(out[key], value)
        else:
            out[key] = value
    return out


def load_mrdpo_config(path: str | Path, cli: list[str] | None = None, **overrides: Any) -> MrDPOConfig:
    """The driver config of ``path`` with ``cli`` (``key=value`` strings) and then ``overrides``
    (keyword arguments; ``None`` = not given) applied on top. Unknown keys are an error. A run
    folder's ``config.json`` reads as the config it was started with."""
    from vs2_plugin.pipeline.fingerprint import INPUTS_KEY

    where = str(path)
    data = rename_deprecated(load_yaml(path), where)
    data.pop(INPUTS_KEY, None)  # a run folder's config.json: what its inputs were, not a setting
    if cli:
        data = merge_overrides(data, rename_deprecated(parse_overrides(cli), "command line"))
    data = merge_overrides(data, rename_deprecated({k: v for k, v in overrides.items() if v is not None}, "overrides"))
    return _build(MrDPOConfig, data, where)
