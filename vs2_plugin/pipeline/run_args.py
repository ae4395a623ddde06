"""A LLaMA-Factory run's arguments as plain data: which stage, ``--key value`` lists as dicts,
and a list rewritten after a dict was changed. Nothing here imports LLaMA-Factory."""

from __future__ import annotations

from typing import Any

from vs2_plugin.errors import ConfigError


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


def as_arg_list(original: list[str], wanted: dict[str, Any]) -> list[str]:
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
