"""Arguments shared by ``vs2 eval`` and ``vs2 pairs``: which judge and how to run it.

``--judge NAME`` selects a registered judge, ``--judge-option KEY=VALUE`` (repeatable) sets one
of that judge's options (the value is read as YAML: ``passes=3`` is an integer). The former
OpenAI flags (``--judge-model``, ``--passes``, ``--concurrency``, ``--base-url``,
``--api-key-file``) still work as deprecated spellings of ``--judge-option``.
"""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path
from typing import Any

from vs2_plugin.errors import ConfigError
from vs2_plugin.files import load_mapping
from vs2_plugin.judge.config import JudgeConfig


def add_judge_arguments(parser) -> None:
    g = parser.add_argument_group("judge")
    g.add_argument(
        "--judge", default=None, help="registered judge name: offline (default), openai, ... (see `vs2 plugins`)"
    )
    g.add_argument(
        "--judge-config",
        type=Path,
        default=None,
        help="YAML/JSON file with the judge settings: judge, show_progress, cache_path, options (a top-level 'judge:' mapping is also accepted)",
    )
    g.add_argument(
        "--judge-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="one option of the selected judge (repeatable; `vs2 plugins` lists the judges), e.g. model=gpt-4.1-mini, passes=7",
    )
    for flag, key in LEGACY_FLAGS.items():
        g.add_argument(
            flag,
            dest=f"legacy_{key}",
            metavar=key.upper(),
            default=None,
            type=int if key in ("passes", "concurrency") else str,
            help=f"deprecated: use --judge-option {key}=VALUE",
        )
    g.add_argument(
        "--cache",
        default=None,
        help="SQLite answer cache path (default $VS2_CACHE_DIR/judge_cache.sqlite, else ~/.cache/vs2_plugin/judge_cache.sqlite)",
    )
    g.add_argument("--no-cache", action="store_true", help="do not read or write the answer cache")
    g.add_argument("--quiet", action="store_true", help="no progress bar")


#: Former OpenAI-only flags -> the option of the openai judge they set.
LEGACY_FLAGS = {
    "--judge-model": "model",
    "--passes": "passes",
    "--concurrency": "concurrency",
    "--base-url": "base_url",
    "--api-key-file": "api_key_file",
}


def parse_option(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` -> (key, value read as YAML); a ConfigError naming the text otherwise."""
    from vs2_plugin.pipeline.config import yaml_value

    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--judge-option expects KEY=VALUE, got {text!r}")
    value = yaml_value(raw) if raw.strip() else None
    return key.strip(), value


def config_from_args(args) -> JudgeConfig:
    """JudgeConfig from ``--judge-config`` overridden by explicit flags, its options parsed and
    validated by the selected judge (unknown judge or option: ConfigError)."""
    from vs2_plugin.judge.runner import get_judge, require_judge

    data: dict[str, Any] = {}
    if args.judge_config is not None:
        data = load_mapping(args.judge_config)
        if isinstance(data.get("judge"), dict):  # a file with a judge: block (an mrDPO config) is read by it alone
            beside = sorted(
                set(data) & {*(f.name for f in dataclasses.fields(JudgeConfig)), "judge_options"} - {"judge"}
            )
            if beside:
                raise ConfigError(
                    f"--judge-config {args.judge_config}: {beside} beside its 'judge:' mapping would be ignored; "
                    "write them inside it"
                )
            data = data["judge"]
    config = JudgeConfig.from_dict(data)  # moves deprecated flat keys into options, with a warning
    if args.judge not in (None, config.judge) and "judge" in data and config.options:
        # the file's options are its judge's: read as --judge's, they were refused as if given here
        raise ConfigError(
            f"--judge {args.judge}: --judge-config {args.judge_config} sets options {sorted(config.options)} of "
            f"judge {config.judge!r}; select that judge, or give the options of {args.judge!r} with --judge-option"
        )
    options = dict(config.options)
    legacy = {
        key: getattr(args, f"legacy_{key}")
        for key in LEGACY_FLAGS.values()
        if getattr(args, f"legacy_{key}") is not None
    }
    if legacy:
        flags = [flag for flag, key in LEGACY_FLAGS.items() if key in legacy]
        warnings.warn(
            f"deprecated flag(s) {', '.join(flags)}: use --judge-option KEY=VALUE "
            f"({', '.join(f'{k}=...' for k in legacy)})",
            FutureWarning,
            stacklevel=2,
        )
        accepted = {f.name for f in dataclasses.fields(get_judge(args.judge or config.judge).options)}
        ignored = sorted(k for k in legacy if k not in accepted)
        if ignored:  # as before: a judge ignored the remote-judge flags it has no use for
            warnings.warn(
                f"judge {args.judge or config.judge!r} has no option {ignored}; ignored", FutureWarning, stacklevel=2
            )
        options.update({k: v for k, v in legacy.items() if k in accepted})
    given = [parse_option(text) for text in args.judge_option]
    keys = [key for key, _ in given]
    if twice := sorted({key for key in keys if keys.count(key) > 1}):  # which one was meant?
        raise ConfigError(f"--judge-option {twice[0]} is given twice; give each option once")
    options.update(given)
    config = dataclasses.replace(config, options=options)
    if args.judge is not None:
        config = dataclasses.replace(config, judge=args.judge)
    if args.cache is not None:
        config = dataclasses.replace(config, cache_path=args.cache)
    if args.no_cache:
        config = dataclasses.replace(config, cache_path=None)
    if args.quiet:
        config = dataclasses.replace(config, show_progress=False)
    return require_judge(config)
