"""The caption datasets the pipeline writes for LLaMA-Factory: one user turn (a prompt with its
``<video>`` or ``<audio>`` placeholder) and one assistant turn (the caption), in ``sharegpt``
formatting with role / content keys, registered in the folder's ``dataset_info.json``.
"""

from __future__ import annotations

import json
from pathlib import Path

#: the message keys of every caption dataset written here (LLaMA-Factory's ``tags``)
ROLE_TAGS = {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant"}


def caption_row(prompt: str, caption: str, media_key: str, media: str) -> dict:
    """One sample: ``prompt`` (with its placeholder) -> ``caption``, the file under ``media_key``
    ("videos" or "audios")."""
    return {
        "messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": caption}],
        media_key: [media],
    }


def dataset_entry(file_name: str, media_key: str) -> dict:
    """The ``dataset_info.json`` entry of a file of :func:`caption_row` samples."""
    return {
        "file_name": file_name,
        "formatting": "sharegpt",
        "columns": {"messages": "messages", media_key: media_key},
        "tags": dict(ROLE_TAGS),
    }


def write_caption_dataset(folder: Path, name: str, rows: list[dict], media_key: str = "videos") -> None:
    """``folder/<name>.json`` and a ``dataset_info.json`` naming it alone, each written whole (a
    file is replaced, never left half written)."""
    from vs2_plugin.gdpo.rounds import atomic_write_text

    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(folder / f"{name}.json", json.dumps(rows, ensure_ascii=False, indent=1))
    info = {name: dataset_entry(f"{name}.json", media_key)}
    atomic_write_text(folder / "dataset_info.json", json.dumps(info, indent=2))
