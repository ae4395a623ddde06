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
#: the weight files PEFT reads from an adapter folder
ADAPTER_WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")
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
    try:
        if not isinstance(json.loads((p / marker).read_text(encoding="utf-8")), dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{what} {p}: {marker} is not readable JSON ({exc})") from None
    return p


def _one_line(exc: BaseException) -> str:
    """The first informative line of a library's error (torch's size mismatches start with a heading)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()] or [type(exc).__name__]
    if not (lines[0].endswith(":") and len(lines) > 1):
        return lines[0]
    return lines[1] + (f" (and {len(lines) - 2} more)" if len(lines) > 2 else "")


def _load_base(model_dir: str | Path):
    """The checkpoint in float32: a video-SALMONN 2 / Qwen2.5-VL model, or a text-only causal LM
    (what the gDPO rounds of a text model merge); ConfigError naming the folder when it cannot load."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForImageTextToText

    from vs2_plugin.modeling import register_auto_classes

    register_auto_classes()
    try:
        config = AutoConfig.from_pretrained(str(model_dir))
        # a model with a vision tower (video-SALMONN 2, Qwen2.5-VL) or a text-only language model
        auto = AutoModelForImageTextToText if hasattr(config, "vision_config") else AutoModelForCausalLM
        return auto.from_pretrained(str(model_dir), dtype=torch.float32)
    except (OSError, ValueError) as exc:  # transformers' words for a folder it cannot read or load
        raise ConfigError(f"model {model_dir}: cannot load it ({_one_line(exc)})") from None


def _load_adapter(model, adapter: str | Path, base: str | Path):
    """``model`` with ``adapter`` loaded. An adapter of another model is refused: PEFT only warns
    when none of its weights finds a module here, and merging it would change nothing."""
    import warnings

    from peft import PeftModel

    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*Found missing adapter keys", category=UserWarning)
        try:
            return PeftModel.from_pretrained(model, str(adapter))
        except UserWarning:
            problem = "its LoRA weights name modules this model does not have"
        except (OSError, ValueError, RuntimeError) as exc:  # no weights file, no target module, sizes
            if isinstance(exc, RuntimeError) and "state_dict" not in str(exc):
                raise  # not torch's "Error(s) in loading state_dict" (out of memory, say)
            problem = _one_line(exc)
    raise ConfigError(f"adapter {adapter}: does not fit model {base} ({problem}); was it trained on another model?")


def merged_model(model_dir: str | Path, adapters: list[str]):
    """The base with every adapter merged in, in float32 (``model.eval()``)."""
    model = _load_base(model_dir)
    for adapter in adapters:
        model = _load_adapter(model, adapter, model_dir).merge_and_unload()
    return model.eval()


def check_export(
    model_dir: str | Path, adapters: list[str], out: str | Path, dtype: str = "auto", overwrite: bool = False
) -> tuple[Path, Path]:
    """The base folder and ``out`` of :func:`export_merged` once the sources, the dtype and ``out``
    are checked (ConfigError naming the first that is wrong); nothing imported, nothing written."""
    if dtype not in DTYPES:
        raise ConfigError(f"dtype must be one of {', '.join(DTYPES)}; got {dtype!r}")
    base = _check_dir(model_dir, "model", "config.json")
    for adapter in adapters:
        if not any((_check_dir(adapter, "adapter", "adapter_config.json") / n).is_file() for n in ADAPTER_WEIGHTS):
            # PEFT would look for the weights on the model hub, under the folder's name
            raise ConfigError(f"adapter {adapter}: no {' or '.join(ADAPTER_WEIGHTS)} (its LoRA weights)")
    out = Path(out)
    for source, what in [(base, "--model"), *((Path(a), "an adapter") for a in adapters)]:
        # replacing --out would delete what is being merged (with --overwrite the base itself, or a
        # whole folder of checkpoints that holds it)
        if out.resolve() == source.resolve() or out.resolve() in source.resolve().parents:
            raise ConfigError(f"--out {out} holds {what} {source}, which the export reads; choose another folder")
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise ConfigError(f"--out {out} exists and is not empty; choose another folder or pass --overwrite")
    return base, out


def export_merged(
    model_dir: str | Path, adapters: list[str], out: str | Path, dtype: str = "auto", overwrite: bool = False
) -> Path:
    """Write base + ``adapters`` as one checkpoint to ``out`` (atomically); returns ``out``. The
    sources and ``out`` are checked before torch and transformers are imported (seconds)."""
    base, out = check_export(model_dir, adapters, out, dtype, overwrite)
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
