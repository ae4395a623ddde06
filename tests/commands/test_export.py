"""``vs2 export``: one standalone checkpoint whose outputs equal base + adapters."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from tests.support.paths import REPO
from vs2_plugin.cli import main as vs2_main
from vs2_plugin.errors import ConfigError, Vs2Error

DEMO = REPO / "vs2_plugin" / "assets" / "demo_data"
HELDOUT_CLIP = DEMO / "media" / "living_room.mp4"  # the held-out clip of the demo data (no audio track)
AUDIO_CLIP = DEMO / "media" / "drawing.mp4"  # with an audio track: the audio branch is exercised too


def clip_inputs(model_dir: Path, video: Path) -> dict:
    """Model inputs of one captioning prompt for ``video``, built by LLaMA-Factory's template and our plugin."""
    from llamafactory.data import get_template_and_fix_tokenizer
    from llamafactory.hparams import get_infer_args
    from llamafactory.model import load_tokenizer

    model_args, data_args, _, _ = get_infer_args(
        {
            "model_name_or_path": str(model_dir),
            "template": "video_salmonn2",
            "video_fps": 1.0,
            "video_maxlen": 30,
            "video_max_pixels": 12544,
            "use_audio_in_video": True,
            "infer_backend": "huggingface",
        }
    )
    tok = load_tokenizer(model_args)
    template = get_template_and_fix_tokenizer(tok["tokenizer"], data_args)
    messages = [{"role": "user", "content": "<video>Describe the video."}, {"role": "assistant", "content": ""}]
    messages = template.mm_plugin.process_messages(messages, [], [str(video)], [], tok["processor"])
    prompt_ids, _ = template.encode_oneturn(tok["tokenizer"], messages)
    mm = template.mm_plugin.get_mm_inputs([], [str(video)], [], [0], [1], [0], [prompt_ids], tok["processor"])
    return {
        "input_ids": torch.tensor([prompt_ids]),
        "attention_mask": torch.ones(1, len(prompt_ids), dtype=torch.long),
        **mm,
    }


@pytest.fixture(scope="module")
def exported(tiny_model_dir, tmp_path_factory, random_adapter):
    tmp = tmp_path_factory.mktemp("export")
    adapters = [
        str(random_adapter(tiny_model_dir, tmp / "sft", seed=1, aligner=True)),
        str(random_adapter(tiny_model_dir, tmp / "round-001", seed=2, aligner=True)),
    ]
    run_dir = tmp / "run"
    run_dir.mkdir()
    (run_dir / "final_model.json").write_text(json.dumps({"model": str(tiny_model_dir), "adapters": adapters}))
    out = tmp / "merged"
    assert vs2_main(["export", "--run", str(run_dir), "--out", str(out)]) == 0
    return {"base": tiny_model_dir, "adapters": adapters, "out": out}


def test_exported_logits_equal_base_plus_adapters(exported):
    from peft import PeftModel
    from transformers import AutoModelForImageTextToText

    from vs2_plugin.modeling.export import merged_model

    stacked = AutoModelForImageTextToText.from_pretrained(str(exported["base"]), dtype=torch.float32)
    for adapter in exported["adapters"]:  # unmerged: the adapters run as LoRA layers on the base
        stacked = (
            PeftModel.from_pretrained(stacked, adapter).merge_and_unload()
            if adapter != exported["adapters"][-1]
            else PeftModel.from_pretrained(stacked, adapter)
        )
    stacked.eval()
    merged = merged_model(exported["out"], [])
    base = merged_model(exported["base"], [])
    for clip in (HELDOUT_CLIP, AUDIO_CLIP):
        inputs = clip_inputs(exported["out"], clip)
        assert ("audio_features" in inputs) == (clip == AUDIO_CLIP)
        with torch.no_grad():
            want, got, plain = (m(**inputs).logits for m in (stacked, merged, base))
        assert (want - got).abs().max().item() <= 1e-4, clip.name
        assert (want - plain).abs().max().item() > 1e-3, (
            f"{clip.name}: the adapters changed nothing; the test proves nothing"
        )


def test_export_folder_is_standalone(exported):
    out = exported["out"]
    for name in (
        "config.json",
        "model.safetensors",
        "generation_config.json",
        "tokenizer_config.json",
        "processor_config.json",
        "vs2_export.json",
    ):
        assert (out / name).is_file(), name
    assert not (out / "adapter_config.json").exists()
    sources = json.loads((out / "vs2_export.json").read_text())
    assert sources["adapters"] == exported["adapters"] and sources["dtype"] == "float32"
    assert not list(out.parent.glob(f".{out.name}.tmp-*"))  # written atomically, nothing left over


def test_auto_classes_load_it_where_only_the_package_is_installed(exported):
    """A fresh interpreter that never imports vs2_plugin itself nor LLaMA-Factory."""
    code = textwrap.dedent(f"""
        import sys
        from transformers import AutoConfig, AutoModelForImageTextToText, AutoProcessor
        out = {str(exported["out"])!r}
        config = AutoConfig.from_pretrained(out, trust_remote_code=True)
        model = AutoModelForImageTextToText.from_pretrained(out, trust_remote_code=True)
        processor = AutoProcessor.from_pretrained(out, trust_remote_code=True)
        assert "llamafactory" not in sys.modules
        print(type(config).__name__, type(model).__name__, type(processor).__name__, model.config.audio_window_s)
    """)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False)
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.split() == [
        "VideoSalmonn2Config",
        "VideoSalmonn2ForConditionalGeneration",
        "Qwen2_5_VLProcessor",
        "0.2",
    ]


def test_bad_sources_are_named(tiny_model_dir, tmp_path):
    with pytest.raises(ConfigError, match="adapter .*nope: adapter_config.json not found"):
        vs2_main_raising(
            ["--model", str(tiny_model_dir), "--adapters", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]
        )
    assert vs2_main(["export", "--run", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert not (tmp_path / "o").exists()


def test_an_out_that_holds_a_source_is_refused_even_with_overwrite(tiny_model_dir, tmp_path):
    """Replacing --out would delete the base being merged: the folder itself, or one that holds it."""
    import shutil

    base = tmp_path / "checkpoints" / "base"
    shutil.copytree(tiny_model_dir, base)
    before = sorted(p.name for p in base.iterdir())
    for out in (base, base.parent):
        with pytest.raises(ConfigError, match=f"--out {out} holds --model {base}, which the export reads"):
            vs2_main_raising(["--model", str(base), "--out", str(out), "--overwrite"])
    assert sorted(p.name for p in base.iterdir()) == before


def test_an_existing_out_is_refused_in_one_line_before_any_step(tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "final"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    assert vs2_main(["export", "--model", str(tiny_model_dir), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"vs2 export: error: --out {out} exists and is not empty; choose another folder or pass --overwrite"]
    assert not (tmp_path / "logs").exists()  # no run began: no log, no failed step line


def vs2_main_raising(argv):
    import argparse

    from vs2_plugin.commands import export

    parser = argparse.ArgumentParser()
    export.configure_parser(parser)
    return export.run(parser.parse_args(argv))


def test_interrupted_export_leaves_no_output(tiny_model_dir, tmp_path, monkeypatch):
    from vs2_plugin.modeling import export

    def broken(folder):
        raise KeyboardInterrupt

    monkeypatch.setattr(export, "_add_auto_map", broken)
    with pytest.raises(KeyboardInterrupt):
        export.export_merged(tiny_model_dir, [], tmp_path / "merged")
    assert list(tmp_path.iterdir()) == []


def test_ctrl_c_of_vs2_export_says_nothing_was_written(tiny_model_dir, tmp_path, monkeypatch, capsys):
    from vs2_plugin.modeling import export

    def broken(folder):
        raise KeyboardInterrupt

    monkeypatch.setattr(export, "_add_auto_map", broken)
    out = tmp_path / "out" / "merged"
    assert vs2_main(["export", "--model", str(tiny_model_dir), "--out", str(out)]) == 130
    err = capsys.readouterr().err
    assert "vs2 export: interrupted; nothing was written" in err and "a rerun resumes" not in err
    assert not out.exists()


def test_run_folders_name_their_model(tmp_path):
    from vs2_plugin.pipeline.records import StepState, finished_model

    mrdpo = tmp_path / "mrdpo"
    mrdpo.mkdir()
    (mrdpo / "final_model.json").write_text(json.dumps({"model": "/m/base", "adapters": ["/a/sft", "/a/r1"]}))
    assert finished_model(mrdpo) == ("/m/base", ["/a/sft", "/a/r1"])
    rebirth = tmp_path / "rebirth"  # what vs2 rebirth records when its SFT is done
    StepState(rebirth).mark(0, "train", {"adapter": "/r/sft", "model": "/m/base"})
    assert finished_model(rebirth) == ("/m/base", ["/r/sft"])
    unfinished = tmp_path / "unfinished"
    StepState(unfinished).mark(0, "filter", {"kept": 1})
    with pytest.raises(Vs2Error, match="not a finished run"):
        finished_model(unfinished)


def test_weights_keep_the_base_dtype_unless_asked(tiny_model_dir, tmp_path):
    from safetensors import safe_open

    from vs2_plugin.modeling.export import export_merged, merged_model

    base = tmp_path / "bf16-base"
    shutil.copytree(tiny_model_dir, base)
    merged_model(tiny_model_dir, []).to(torch.bfloat16).save_pretrained(base)

    def dtypes(folder):
        with safe_open(str(folder / "model.safetensors"), "pt") as f:
            return {f.get_slice(k).get_dtype() for k in f.keys()}  # noqa: SIM118 - safe_open is no dict

    assert dtypes(export_merged(base, [], tmp_path / "auto")) == {"BF16"}
    assert dtypes(export_merged(base, [], tmp_path / "fp16", dtype="float16")) == {"F16"}
    assert json.loads((tmp_path / "fp16" / "vs2_export.json").read_text())["dtype"] == "float16"


@pytest.mark.slow
def test_export_of_an_adapter_trained_by_llamafactory(tiny_model_dir, tmp_path):
    """A LoRA + audio-aligner adapter as `llamafactory-cli train` writes it (the tiny SFT recipe)."""
    import yaml
    from peft import PeftModel

    from vs2_plugin.modeling.export import merged_model
    from vs2_plugin.pipeline.train import run_training

    args = yaml.safe_load((REPO / "recipes" / "tiny" / "av_sft.yaml").read_text())
    args.update(
        model_name_or_path=str(tiny_model_dir),
        dataset_dir=str(DEMO),
        output_dir=str(tmp_path / "sft"),
        max_steps=2,
        learning_rate=5e-3,
        save_strategy="no",
    )
    run_training(args, tmp_path / "sft.yaml", tmp_path / "sft.log")
    out = tmp_path / "merged"
    assert (
        vs2_main(["export", "--model", str(tiny_model_dir), "--adapters", str(tmp_path / "sft"), "--out", str(out)])
        == 0
    )
    stacked = PeftModel.from_pretrained(merged_model(tiny_model_dir, []), str(tmp_path / "sft")).eval()
    merged, base = merged_model(out, []), merged_model(tiny_model_dir, [])
    inputs = clip_inputs(out, AUDIO_CLIP)
    with torch.no_grad():
        want, got, plain = (m(**inputs).logits for m in (stacked, merged, base))
    assert (want - got).abs().max().item() <= 1e-4
    assert (want - plain).abs().max().item() > 1e-4  # the trained adapter matters
