"""``vs2 check-recipe``: every shipped recipe passes; each kind of mistake is named before a run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.support.paths import REPO
from vs2_plugin.cli import main as vs2_main
from vs2_plugin.pipeline.config import load_yaml
from vs2_plugin.pipeline.recipe_check import check_recipe

RECIPES = sorted((REPO / "recipes").rglob("*.yaml"))
DEMO_DATA = REPO / "vs2_plugin" / "assets" / "demo_data"


def _problems(findings) -> list[str]:
    return [f.text for f in findings if f.level == "problem"]


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_shipped_recipe_passes_its_keys_and_types(path):
    kind, findings = check_recipe(path, files=False)
    expected = "mrdpo" if path.stem == "mrdpo" else "infer" if "inference" in path.parts else "train"
    assert kind == expected
    assert not _problems(findings)


def test_the_tiny_sft_recipe_with_its_files_and_every_sample(tiny_model_dir, monkeypatch):
    monkeypatch.chdir(REPO)  # the recipe's dataset_dir is relative, as llamafactory-cli reads it
    kind, findings = check_recipe("recipes/tiny/av_sft.yaml", [f"model_name_or_path={tiny_model_dir}"], data=True)
    assert kind == "train" and not _problems(findings), findings
    rows = json.loads((DEMO_DATA / "vs2_demo_av_sft.json").read_text())
    assert f"data: {len(rows)} samples checked, none bad" in [f.text for f in findings]


@pytest.mark.parametrize(
    "overrides, named",
    [
        (["lerning_rate=1.0e-3"], "unknown argument(s) lerning_rate (did you mean learning_rate?)"),
        (["learning_rate=abc"], "learning_rate: 'abc' is str, not float"),
        (["do_train=maybe"], "do_train: 'maybe' is str, not bool"),
        (["finetuning_type=lora", "stage=vs2_align"], "stage 'vs2_align' requires finetuning_type='full'"),
        (["stage=gdpo", "gdpo_lambda=-1"], "gdpo_lambda must be a finite number >= 0, got -1"),
        (["lr_scheduler_type=cosine_wobble"], "cosine_wobble is not a valid SchedulerType"),
        (["dataset=no_such_set"], "dataset 'no_such_set' is not in"),
        (["dataset_dir=/nonexistent"], "dataset: /nonexistent/dataset_info.json"),
        (["template=no_such_template"], "template 'no_such_template' is not registered"),
        (["deepspeed=recipes/deepspeed/ds_z9.json"], "deepspeed recipes/deepspeed/ds_z9.json: cannot read"),
        (["adapter_name_or_path=/nonexistent/adapter"], "adapter_name_or_path /nonexistent/adapter: not found"),
    ],
)
def test_each_mistake_is_named(tiny_model_dir, monkeypatch, overrides, named):
    monkeypatch.chdir(REPO)
    _, findings = check_recipe("recipes/tiny/av_sft.yaml", [f"model_name_or_path={tiny_model_dir}", *overrides])
    problems = _problems(findings)
    assert len(problems) == 1 and named in problems[0], problems


def test_a_missing_model_and_a_bad_sample_are_named(tiny_model_dir, tmp_path, monkeypatch):
    data = tmp_path / "data"
    shutil.copytree(DEMO_DATA, data)
    rows = json.loads((data / "vs2_demo_av_sft.json").read_text())
    rows[1]["videos"] = ["media/gone.mp4"]
    (data / "vs2_demo_av_sft.json").write_text(json.dumps(rows, indent=1))
    monkeypatch.chdir(REPO)
    base = ["recipes/tiny/av_sft.yaml", f"dataset_dir={data}"]
    _, findings = check_recipe(base[0], [*base[1:], f"model_name_or_path={tmp_path / 'none'}"], data=True)
    assert _problems(findings) == [f"model_name_or_path {tmp_path / 'none'}: not found"]  # no data pass without it
    _, findings = check_recipe(base[0], [*base[1:], f"model_name_or_path={tiny_model_dir}"], data=True)
    problems = _problems(findings)
    assert len(problems) == 1, problems
    assert "dataset 'vs2_demo_av_sft' (vs2_demo_av_sft.json item 2)" in problems[0]
    assert "gone.mp4: file not found" in problems[0] and f"1 of {len(rows)}" not in problems[0]
    assert not (REPO / "recipes" / "tiny" / "bad_samples.jsonl").exists()


def test_an_mrdpo_config_is_read_as_its_rounds_would_run(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    _, findings = check_recipe("recipes/tiny/mrdpo.yaml", ["train.learning_rate=abc"], files=False)
    assert _problems(findings) == ["train.learning_rate: 'abc' is str, not float"]
    _, findings = check_recipe("recipes/tiny/mrdpo.yaml", ["infer.video_fsp=2"], files=False)
    assert "infer.video_fsp (did you mean video_fps?)" in _problems(findings)[0]
    _, findings = check_recipe("recipes/tiny/mrdpo.yaml", [f"train_videos={tmp_path / 'v.jsonl'}"])
    assert f"train_videos {tmp_path / 'v.jsonl'}: not found" in _problems(findings)


def test_yaml_reads_an_exponent_without_a_dot_as_a_number(tmp_path):
    """As LLaMA-Factory reads a recipe (OmegaConf): YAML 1.1 would give the trainer the text '1e-4'."""
    path = tmp_path / "r.yaml"
    path.write_text("learning_rate: 1e-4\nwarmup: 2E3\nname: 1e\nquoted: '1e-4'\nsteps: 30\n")
    assert load_yaml(path) == {"learning_rate": 1e-4, "warmup": 2000.0, "name": "1e", "quoted": "1e-4", "steps": 30}


def test_the_command_exits_1_on_a_problem_and_0_when_clean(tiny_model_dir, monkeypatch, capsys):
    monkeypatch.chdir(REPO)
    recipe = "recipes/tiny/av_sft.yaml"
    assert vs2_main(["check-recipe", recipe, f"model_name_or_path={tiny_model_dir}"]) == 0
    assert capsys.readouterr().out.strip().endswith(f"{recipe} (training recipe): ok")
    assert vs2_main(["check-recipe", recipe, "learning_rate=abc", "--keys-only"]) == 1
    out = capsys.readouterr().out
    assert "problem: " in out and out.strip().endswith("1 problem(s)")
    assert vs2_main(["check-recipe", str(Path("no/such.yaml"))]) == 2
    assert "config file not found" in capsys.readouterr().err
