"""What a run's inputs are by their contents, not by their paths.

A run folder is resumed with the paths it is given now: a model, an adapter or a video list may
have moved (the same contents: resumed), or been replaced at the same path (other contents: the
finished steps were made from something else, and a resumed run would mix the two). The
fingerprints recorded when a run starts tell the two apart.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

#: bytes read from each end of a large file: weights trained further differ there too, and a
#: resume does not read gigabytes of a 7B model to find out
EDGE_BYTES = 1 << 20

#: files of a model or adapter folder that make it what it is, besides its weights and configs
_DEFINING_NAMES = frozenset(
    {
        "tokenizer.json",
        "tokenizer.model",
        "vocab.json",
        "vocab.txt",
        "merges.txt",
        "special_tokens_map.json",
        "added_tokens.json",
        "chat_template.json",
        "chat_template.jinja",
    }
)
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")


def defines_model(name: str) -> bool:
    """Whether a file of a model folder is part of the model (weights, configs, tokenizer, code),
    not a record of how it was trained (``trainer_state.json``, ``training_args.bin``, logs)."""
    if name == "training_args.bin":
        return False
    return name.endswith((*_WEIGHT_SUFFIXES, "config.json", ".index.json", ".py")) or name in _DEFINING_NAMES


def file_fingerprint(path: Path) -> str:
    """sha256 of a file's size and bytes; of a file over ``2 * EDGE_BYTES``, of its size and the
    bytes at each end."""
    digest = hashlib.sha256()
    size = path.stat().st_size
    digest.update(str(size).encode())
    with path.open("rb") as f:
        if size <= 2 * EDGE_BYTES:
            digest.update(f.read())
        else:
            digest.update(f.read(EDGE_BYTES))
            f.seek(size - EDGE_BYTES)
            digest.update(f.read(EDGE_BYTES))
    return digest.hexdigest()


def fingerprint(source: str) -> str:
    """One input by its contents: a file by :func:`file_fingerprint`; a folder (a model, an
    adapter) by those of its top-level files that :func:`defines_model`, checkpoints and training
    records left out; anything else (a hub id) by its name."""
    path = Path(source)
    if path.is_file():
        return file_fingerprint(path)[:16]
    if path.is_dir():
        digest = hashlib.sha256()
        for item in sorted(path.iterdir()):
            if item.is_file() and defines_model(item.name):
                digest.update(f"{item.name}:{file_fingerprint(item)}\n".encode())
        return digest.hexdigest()[:16]
    return f"name:{source}"


def fingerprints(inputs: dict[str, str | list[str] | None]) -> dict[str, Any]:
    """:func:`fingerprint` of each input (a list: of each of its paths, in order; None stays None)."""
    out: dict[str, Any] = {}
    for key, value in inputs.items():
        if isinstance(value, list):
            out[key] = [fingerprint(v) for v in value]
        else:
            out[key] = None if value in (None, "") else fingerprint(str(value))
    return out


def changed_inputs(recorded: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """The inputs that both records fingerprint and whose contents differ, as a phrase each. An
    input only one record has is no difference: a run started by a vs2 that kept no fingerprints
    is resumed as before."""
    return [
        f"{key} (its contents are not those the run was started with)"
        if recorded[key] is not None and current[key] is not None
        else f"{key} ({'unset' if recorded[key] is None else 'set'} when the run started)"
        for key in sorted(recorded.keys() & current.keys())
        if recorded[key] != current[key]
    ]


#: the key of a run record (``config.json``) that holds its inputs' fingerprints
INPUTS_KEY = "input_fingerprints"


def resume_changes(record: Path, settings: dict[str, Any], inputs: dict[str, Any]) -> list[str]:
    """What a rerun would change of the run recorded in ``record`` (none yet: nothing): the inputs
    whose contents differ (:func:`changed_inputs`), then the settings that may not change
    (:func:`~vs2_plugin.pipeline.config.resume_differences`)."""
    import json

    from vs2_plugin.pipeline.config import resume_differences

    if not record.is_file():
        return []
    old = json.loads(record.read_text(encoding="utf-8"))
    return changed_inputs(old.pop(INPUTS_KEY, None) or {}, inputs) + resume_differences(old, settings)


def write_run_record(record: Path, settings: dict[str, Any], inputs: dict[str, Any]) -> None:
    """``record``: the run's settings and, under :data:`INPUTS_KEY`, its inputs' fingerprints."""
    import json

    from vs2_plugin.gdpo.rounds import atomic_write_text

    record.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(record, json.dumps({**settings, INPUTS_KEY: inputs}, indent=2))
