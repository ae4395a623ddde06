"""GPU smoke test of the whole stack at the 7B layer widths, in minutes, on one GPU.

A random model with the layer widths of Qwen2.5-VL-7B (hidden 3584, MLP 18944, 28 heads, 4 KV
heads, vision 1280 wide, vocabulary 152,064 rows) and Whisper large-v3 (1280 wide, 128 mel bins)
but only ``--layers`` layers per tower, in bf16, through the real code paths with the bundled demo
media: build -> one alignment step (stage vs2_align) -> one SFT step (LoRA) -> one gDPO step
(packed shared prompt; FlexAttention on CUDA, else SDPA) and one stock LLaMA-Factory DPO step on
the same pairs -> one generation from a video with its audio track. Prints one JSON object:
per step the seconds, peak memory (CUDA max_memory_allocated, or peak RSS on CPU) and the loss
(all must be finite), the attention kernels used, and ``ok``. Exit status 0 only if all passed.

``--cpu`` runs the same steps with the tiny widths (hidden 64; Whisper with 128 mel bins) in about
a minute on a CPU, so the script is exercised by the test suite.

Run:  bash scripts/gpu_smoke.sh [--layers 2] [--out DIR] [--json FILE]   (one GPU, <= 10 minutes)
      bash scripts/gpu_smoke.sh --cpu
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "vs2_plugin" / "assets" / "demo_data"
RECIPES = REPO / "recipes" / "tiny"


def model_overrides(seven_b: bool, layers: int) -> dict:
    """VideoSalmonn2Config overrides: the 7B widths (or the tiny ones) with ``layers`` layers, 128 mels."""
    from vs2_plugin.modeling.config import (
        QWEN25VL_7B_ROPE,
        QWEN25VL_7B_TEXT,
        QWEN25VL_7B_VISION,
        WHISPER_LARGE_V3_AUDIO,
    )
    from vs2_plugin.modeling.tiny import tiny_audio_config_dict, tiny_qwen25vl_config_dict
    from vs2_plugin.modeling.tokenizer import special_token_ids, train_tiny_tokenizer

    base = tiny_qwen25vl_config_dict(special_token_ids(train_tiny_tokenizer()))
    text, vision, audio = dict(base["text_config"]), dict(base["vision_config"]), tiny_audio_config_dict()
    audio["n_mels"] = 128
    if seven_b:
        text.update(QWEN25VL_7B_TEXT, rope_parameters=dict(QWEN25VL_7B_ROPE))
        vision.update(QWEN25VL_7B_VISION)
        audio.update(WHISPER_LARGE_V3_AUDIO)
    text["num_hidden_layers"] = layers
    vision["depth"] = layers
    vision["fullatt_block_indexes"] = [layers - 1]
    audio["n_audio_layer"] = layers
    overrides = {"text_config": text, "vision_config": vision, "audio_config": audio}
    if not seven_b:
        overrides.update(qformer_hidden=32, qformer_heads=2)
    return overrides


class StepProbe:
    """Seconds, peak memory and logged losses of one step."""

    def __init__(self, cuda: bool):
        self.cuda = cuda

    def __enter__(self):
        import torch

        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        else:
            Path("/proc/self/clear_refs").write_text("5")
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        import torch

        if self.cuda:
            torch.cuda.synchronize()
            self.peak_mb = torch.cuda.max_memory_allocated() / 2**20
        else:
            self.peak_mb = _vm_hwm_kib() / 1024
        self.seconds = time.perf_counter() - self.start
        return False


def _vm_hwm_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def _loss_callback():
    from transformers import TrainerCallback

    class Losses(TrainerCallback):
        def __init__(self):
            self.logs = []

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs:
                self.logs.append(dict(logs))

    return Losses()


def _recipe(name: str, **overrides) -> dict:
    import yaml

    args = yaml.safe_load((RECIPES / name).read_text())
    args.update(overrides)
    return args


def run_smoke(out: Path, cpu: bool, layers: int) -> dict:
    import torch

    import vs2_plugin.integrations.llamafactory as integration

    integration.register()
    from llamafactory.train.tuner import run_exp

    from vs2_plugin.gdpo.workflow import run_gdpo_from_dict
    from vs2_plugin.modeling.tiny import build_tiny_model

    cuda = torch.cuda.is_available() and not cpu
    if not cpu and not cuda:
        raise SystemExit("gpu_smoke: no CUDA device; use --cpu for the tiny CPU variant")
    device = {
        "use_cpu": not cuda,
        "bf16": cuda,
        "max_steps": 1,
        "save_strategy": "no",
        "report_to": "none",
        "logging_steps": 1,
        "gradient_accumulation_steps": 1,
        "per_device_train_batch_size": 1,
        "overwrite_output_dir": True,
        "seed": 0,
    }
    if cuda:
        device["flash_attn"] = "fa2" if _has_flash_attn() else "sdpa"
    steps: dict[str, dict] = {}

    def record(name, probe, losses=None, **extra):
        entry = {"seconds": round(probe.seconds, 2), "peak_mb": round(probe.peak_mb, 1), **extra}
        if losses is not None:
            entry["loss"] = losses[-1]["loss"] if losses else None
            entry["loss_finite"] = bool(losses) and all(math.isfinite(x["loss"]) for x in losses)
        steps[name] = entry

    model_dir = out / "model"
    with StepProbe(cuda) as probe:
        build_tiny_model(model_dir, seed=0, **model_overrides(not cpu, layers))
    from safetensors import safe_open

    with safe_open(str(model_dir / "model.safetensors"), "pt") as f:
        n_params = sum(math.prod(f.get_slice(k).get_shape()) for k in f.keys())
    record("build", probe, parameters=n_params)

    cb = _loss_callback()
    with StepProbe(cuda) as probe:
        run_exp(
            _recipe(
                "audio_align.yaml",
                model_name_or_path=str(model_dir),
                dataset_dir=str(DEMO),
                output_dir=str(out / "align"),
                **device,
            ),
            callbacks=[cb],
        )
    record("align", probe, cb.logs)

    cb = _loss_callback()
    with StepProbe(cuda) as probe:
        run_exp(
            _recipe(
                "av_sft.yaml",
                model_name_or_path=str(out / "align"),
                dataset_dir=str(DEMO),
                output_dir=str(out / "sft"),
                **device,
            ),
            callbacks=[cb],
        )
    record("sft", probe, cb.logs)

    pair_args = _recipe(
        "gdpo_round.yaml",
        model_name_or_path=str(out / "align"),
        dataset_dir=str(DEMO / "gdpo"),
        gdpo_rounds=False,
        gdpo_ref_cache="memory",
        **device,
    )
    cb = _loss_callback()
    with StepProbe(cuda) as probe:
        result = run_gdpo_from_dict({**pair_args, "output_dir": str(out / "gdpo")}, callbacks=[cb])
    from vs2_plugin.gdpo.packing import text_attention

    record("gdpo_packed", probe, cb.logs, attention=text_attention(result.trainer.model))
    del result

    dpo_args = {
        k: v for k, v in pair_args.items() if not k.startswith("gdpo_") and k not in ("gt_dataset", "gt_sampling")
    }
    cb = _loss_callback()
    with StepProbe(cuda) as probe:
        run_exp({**dpo_args, "stage": "dpo", "output_dir": str(out / "dpo")}, callbacks=[cb])
    record("dpo_stock", probe, cb.logs)

    with StepProbe(cuda) as probe:
        generated = generate_with_audio(str(out / "align"), str(out / "sft"), cuda)
    record("generate_audio", probe, **generated)

    ok = all(s.get("loss_finite", True) for s in steps.values()) and generated["new_tokens"] > 0
    return {
        "ok": ok,
        "device": torch.cuda.get_device_name() if cuda else "cpu",
        "dtype": "bfloat16" if cuda else "float32",
        "widths": "7B" if not cpu else "tiny",
        "layers": layers,
        "steps": steps,
        "total_seconds": round(sum(s["seconds"] for s in steps.values()), 1),
    }


def _has_flash_attn() -> bool:
    from transformers.utils import is_flash_attn_2_available

    return is_flash_attn_2_available()


def generate_with_audio(model: str, adapter: str, cuda: bool) -> dict:
    """One caption of a clip with sound through LLaMA-Factory's ChatModel, audio interleaved."""
    from llamafactory.chat import ChatModel

    chat = ChatModel(
        {
            "model_name_or_path": model,
            "adapter_name_or_path": adapter,
            "template": "video_salmonn2",
            "infer_backend": "huggingface",
            "max_new_tokens": 8,
            "video_fps": 1.0,
            "video_maxlen": 30,
            "video_max_pixels": 12544,
            "use_audio_in_video": True,
            "infer_dtype": "bfloat16" if cuda else "float32",
        }
    )
    video = str(DEMO / "media" / "bigbuckbunny.mp4")
    response = chat.chat(
        [{"role": "user", "content": "<video>Describe the video and its sound."}], videos=[video], do_sample=False
    )[0]
    return {"new_tokens": response.response_length, "prompt_tokens": response.prompt_length, "video": Path(video).name}


def library_versions() -> dict:
    """Python and the versions of the libraries the steps ran on (a GPU image brings its own torch)."""
    import importlib.metadata as md

    import torch

    names = ("torch", "transformers", "peft", "trl", "accelerate", "llamafactory", "av")
    versions = {"python": sys.version.split()[0], "cuda": torch.version.cuda}
    return versions | {name: md.version(name) for name in names}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu", action="store_true", help="tiny widths on the CPU (for CI)")
    parser.add_argument("--layers", type=int, default=2, help="layers per tower (LLM, ViT, Whisper)")
    parser.add_argument("--out", help="work folder (default: a temporary one, removed afterwards)")
    parser.add_argument("--json", help="also write the result, with the library versions, to this file")
    opts = parser.parse_args(argv)
    if opts.cpu:
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    if opts.out:
        result = run_smoke(Path(opts.out).resolve(), opts.cpu, opts.layers)
    else:
        with tempfile.TemporaryDirectory(prefix="vs2-smoke-") as tmp:
            result = run_smoke(Path(tmp), opts.cpu, opts.layers)
    print("VS2_SMOKE_JSON " + json.dumps(result))
    if opts.json:
        Path(opts.json).write_text(json.dumps({**result, "versions": library_versions()}, indent=1) + "\n")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
