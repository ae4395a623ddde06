"""Reading the files users and runs hand us: JSONL rows and YAML/JSON mappings.

One reader for each, so that every command names the file (and the line) of bad input the same way.
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path
from typing import Any

from vs2_plugin.errors import ConfigError, DataError


def jsonl_lines(path: str | Path) -> list[tuple[int, Any, str | None]]:
    """(line number, value, problem) of each non-blank line of a JSONL file: ``problem`` says why
    the line is not a JSON object (None when it is), for a reader that lists bad lines and goes
    on. An unreadable file is a DataError; a UTF-8 byte-order mark is read as none."""
    path = Path(path)
    try:
        # lines end at "\n" only, as JSON lines define them: a caption may hold U+2028, U+0085...
        # (written unescaped with ensure_ascii=False), at which str.splitlines would also cut
        lines = path.read_text(encoding="utf-8-sig").split("\n")
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    out = []
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            value, problem = None, f"not valid JSON ({exc.msg})"
        else:
            problem = None if isinstance(value, dict) else f"not a JSON object (a {type(value).__name__})"
        if problem is None and _SURROGATE_ESCAPE.search(line):
            problem = lone_surrogate(value)
        if problem and not out and line.lstrip().startswith("["):
            problem += "; JSON lines are expected: one object per line, not an array"
        out.append((n, value, problem))
    return out


def first_surrogate(text: str) -> int | None:
    """Where ``text`` holds its first lone surrogate (half a UTF-16 pair, or an undecodable byte read
    with ``surrogateescape``): no character, so no valid text; None when it holds none."""
    return next((i for i, ch in enumerate(text) if 0xD800 <= ord(ch) <= 0xDFFF), None)


#: an escaped UTF-16 surrogate ("\ud83d"): JSON allows one alone, text cannot hold it
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def lone_surrogate(value: Any, where: str = "") -> str | None:
    """Why ``value`` (a row read from JSON) holds no valid text: the first string with an unpaired
    UTF-16 surrogate (a ``\\ud83d`` escape, e.g. an emoji cut in two), named by its key path."""
    if isinstance(value, str):
        if (i := first_surrogate(value)) is None:
            return None
        return f"{where or 'a value'} holds \\u{ord(value[i]):04x} at character {i}: half of a UTF-16 surrogate pair, not a character"
    if isinstance(value, dict):
        items = ((f"{where}.{k}" if where else repr(k), k, v) for k, v in value.items())
        return next((p for name, k, v in items if (p := lone_surrogate(k, name) or lone_surrogate(v, name))), None)
    if isinstance(value, list):
        return next((p for i, v in enumerate(value) if (p := lone_surrogate(v, f"{where}[{i}]"))), None)
    return None


def numbered_jsonl(path: str | Path, *, allow_empty: bool = False) -> list[tuple[int, dict[str, Any]]]:
    """(line number, row) of each row of a JSONL file, blank lines skipped, so that an error
    about a row can name the line an editor shows. A line that is not a JSON object and (unless
    ``allow_empty``) a file without rows are a DataError naming the file and line."""
    rows = []
    for n, value, problem in jsonl_lines(path):
        if problem:
            raise DataError(f"{path}:{n}: {problem}")
        rows.append((n, value))
    if not rows and not allow_empty:
        raise DataError(f"{path}: no rows")
    return rows


def read_jsonl(path: str | Path, *, allow_empty: bool = False) -> list[dict[str, Any]]:
    """The rows of :func:`numbered_jsonl` without their line numbers."""
    return [row for _, row in numbered_jsonl(path, allow_empty=allow_empty)]


def load_mapping(path: Path) -> dict[str, Any]:
    """A YAML or JSON (by suffix) file whose top level is a mapping; anything else is a ConfigError."""
    try:
        text = path.read_text(encoding="utf-8-sig")  # a byte-order mark (Windows editors) is no content
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    else:
        import yaml

        try:
            data = yaml.safe_load(text)  # safe_load: tags such as !!python/object are refused
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML ({yaml_problem(exc)})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return data


def yaml_problem(exc: Exception) -> str:
    """PyYAML's error as one line: what is wrong and where (its own text spans several lines,
    with the offending line drawn)."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None)
    if problem and mark is not None:
        return f"{problem} at line {mark.line + 1}, column {mark.column + 1}"
    return " ".join(str(exc).split())


@functools.cache
def _recipe_loader():
    """PyYAML's safe loader (no code from YAML: tags such as !!python/object are refused) reading a
    recipe as LLaMA-Factory does (OmegaConf): ``1e-4`` is a number, as in YAML 1.2 (YAML 1.1 wants
    ``1.0e-4`` and would hand a learning rate to the trainer as text), a date is text, and a key
    given twice is an error."""
    import yaml

    class RecipeLoader(yaml.SafeLoader):
        def construct_mapping(self, node, deep=False):
            # a key given twice is refused, as OmegaConf refuses it (PyYAML would keep the last);
            # merge keys (<<: *base) are left to PyYAML
            keys = [k for k, _ in node.value if k.tag == "tag:yaml.org,2002:str"]
            names = [k.value for k in keys]
            twice = next((k for i, k in enumerate(keys) if k.value in names[:i]), None)
            if twice is not None:  # marked where it is given again
                raise yaml.constructor.ConstructorError(
                    None, None, f"found duplicate key {twice.value!r}", twice.start_mark
                )
            return super().construct_mapping(node, deep=deep)

    # as OmegaConf: no dates (run_name: 2024-01-01 stays text), and 1e-4 is a number
    RecipeLoader.yaml_implicit_resolvers = {
        first: [r for r in resolvers if r[0] != "tag:yaml.org,2002:timestamp"]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    exponent = re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$")
    RecipeLoader.add_implicit_resolver("tag:yaml.org,2002:float", exponent, list("-+0123456789"))
    return RecipeLoader


def recipe_yaml(text: str) -> Any:
    """YAML ``text`` read as a recipe (:func:`_recipe_loader`); yaml.YAMLError when it is no YAML."""
    import yaml

    return yaml.load(text, Loader=_recipe_loader())


def check_folder_can_be_made(folder: str | Path, what: str) -> None:
    """Refuse, before the work whose output goes there, a ``folder`` that could not be made or
    written: its nearest existing part (itself, or a folder above it) a file, or not writable.
    ``what`` names it in the ConfigError (``--out report.json``)."""
    import os

    folder = Path(folder).absolute()
    existing = next(p for p in (folder, *folder.parents) if p.exists())  # where its missing folders are made
    if not existing.is_dir():
        raise ConfigError(f"{what}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"{what}: no permission to write into {existing}")
    import tempfile

    try:  # what the permission bits do not tell: a read-only mount, /proc, a full disk; root's access
        tempfile.TemporaryFile(dir=existing).close()
    except OSError as exc:
        raise ConfigError(f"{what}: cannot write into {existing} ({exc.strerror or exc})") from None
