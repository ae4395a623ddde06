"""Library of ``vs2 export``: merge a checkpoint and its LoRA adapters into one standalone
checkpoint. Sources and outputs are described on the command, :mod:`vs2_plugin.commands.export`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from vs2_plugin.errors import ConfigError
from vs2_plugin.gdpo.rounds import atomic_directory
from vs2_plugin.modeling import MODEL_TYPE

DTYPES = ("auto", "float32", "bfloat16", "float16")
#: written next to config.json; each re-exports the package's class (``auto_map`` targets)
SHIM_MODULES = {
    "configuration_video_salmonn2.py": "from vs2_plugin.modeling.config import VideoSalmonn2Config  # noqa: F401\n",
    "modeling_video_salmonn2.py": (
        "from vs2_plugin.modeling.model import VideoSalmonn2ForConditionalGeneration, VideoSalmonn2Model  # noqa: F401\n"
    ),
}
AUTO_MAP = {
    "AutoConfig": "configuration_video_salmonn2.VideoSalmonn2Config",
    "AutoModel": "modeling_video_salmonn2.VideoSalmonn2Model",
    "AutoModelForImageTextToText": "modeling_video_salmonn2.VideoSalmonn2ForConditionalGeneration",
}


def _check_dir(path: str | Path, what: str, marker: str) -> Path:
    p = Path(path)
    if not (p / marker).is_file():
        raise ConfigError(f"{what} {p}: {marker} not found")
    return p


def merged_model(model_dir: str | Path, adapters: list[str]):
    """The base with every adapter merged in, in float32 (``model.eval()``)."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForImageTextToText

    from vs2_plugin.modeling import register_auto_classes

    register_auto_classes()
    model = AutoModelForImageTextToText.from_pretrained(str(model_dir), dtype=torch.float32)
    for adapter in adapters:
        model = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
    return model.eval()


def export_merged(
    model_dir: str | Path, adapters: list[str], out: str | Path, dtype: str = "auto", overwrite: bool = False
) -> Path:
    """Write base + ``adapters`` as one checkpoint to ``out`` (atomically); returns ``out``. The
    sources and ``out`` are checked before torch and transformers are imported (seconds)."""
    if dtype not in DTYPES:
        raise ConfigError(f"dtype must be one of {', '.join(DTYPES)}; got {dtype!r}")
    base = _check_dir(model_dir, "model", "config.json")
    for adapter in adapters:
        _check_dir(adapter, "adapter", "adapter_config.json")
    out = Path(out)
    for source, what in [(base, "--model"), *((Path(a), "an adapter") for a in adapters)]:
        # replacing --out would delete what is being merged (with --overwrite the base itself, or a
        # whole folder of checkpoints that holds it)
        if out.resolve() == source.resolve() or out.resolve() in source.resolve().parents:
            raise ConfigError(f"--out {out} holds {what} {source}, which the export reads; choose another folder")
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise ConfigError(f"--out {out} exists and is not empty; choose another folder or pass --overwrite")
    import torch
    from transformers import AutoProcessor, AutoTokenizer

    model = merged_model(base, adapters)
    from vs2_plugin.modeling.geometry import read_model_config

    base_config = read_model_config(base)
    saved_dtype = base_config.get("dtype") or base_config.get("torch_dtype") or "float32"  # transformers 5 / 4 name
    target = getattr(torch, saved_dtype if dtype == "auto" else dtype)
    model = model.to(target)
    with atomic_directory(out) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        AutoTokenizer.from_pretrained(str(base)).save_pretrained(tmp)
        try:
            AutoProcessor.from_pretrained(str(base)).save_pretrained(tmp)
        except (OSError, ValueError):  # a text-only checkpoint: the tokenizer is all there is
            pass
        _add_auto_map(tmp)
        sources = {
            "model": str(base.resolve()),
            "adapters": [str(Path(a).resolve()) for a in adapters],
            "dtype": str(target).replace("torch.", ""),
        }
        (tmp / "vs2_export.json").write_text(json.dumps(sources, indent=2) + "\n", encoding="utf-8")
    return out


def _add_auto_map(folder: Path) -> None:
    path = folder / "config.json"
    config: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    if config.get("model_type") != MODEL_TYPE:
        return
    config["auto_map"] = AUTO_MAP
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    for name, text in SHIM_MODULES.items():
        (folder / name).write_text(text, encoding="utf-8")
