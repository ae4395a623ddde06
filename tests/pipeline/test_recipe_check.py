"""``vs2 check-recipe``: every shipped recipe passes; each kind of mistake is named before a run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.support.paths import REPO
from vs2_openai_judge.client import NO_API_KEY
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
    assert f"data (fail): {len(rows)} samples checked, 0 bad" in [f.text for f in findings]


@pytest.mark.parametrize(
    "overrides, named",
    [
        (["lerning_rate=1.0e-3"], "unknown argument(s) lerning_rate (did you mean learning_rate?)"),
        (["learning_rate=abc"], "learning_rate: 'abc' is str, not float"),
        (["do_train=maybe"], "do_train: 'maybe' is str, not bool"),
        (["finetuning_type=lora", "stage=vs2_align"], "stage 'vs2_align' requires finetuning_type='full'"),
        (["finetuning_type=lroa"], "finetuning_type: 'lroa' is not one of lora, oft, freeze, full"),
        (["stage=stf"], "stage: 'stf' is not one of pt, sft, rm, ppo, dpo, kto, gdpo, vs2_align"),
        (["stage=dpo"], "dataset 'vs2_demo_av_sft' is not what dataset of stage dpo reads: ranked pairs"),
        (["dataset=vs2_demo_av_sft,,vs2_demo_align"], "an empty name between commas"),
        (["stage=[sft]"], "stage: ['sft'] is not one of"),
        (
            [
                "stage=gdpo",
                "gdpo_lambda=0",
                "pref_ftx=0.5",
                "dataset_dir=vs2_plugin/assets/demo_data/gdpo",
                "dataset=vs2_demo_gdpo_pairs",
            ],
            "pref_ftx=0.5 adds NLL on the chosen side",
        ),
        (["model_name_or_path=null"], "Please provide `model_name_or_path`"),
        (["lr_scheduler_type=cosine_wobble"], "cosine_wobble is not a valid SchedulerType"),
        (["dataset=no_such_set"], "dataset 'no_such_set' is not in"),
        (["dataset_dir=/nonexistent"], "dataset vs2_demo_av_sft: /nonexistent/dataset_info.json: not found"),
        # said once for the key, however many datasets it names
        (["dataset_dir=/nonexistent", "dataset=a,b"], "dataset a, b: /nonexistent/dataset_info.json: not found"),
        (
            ["dataset=vs2_demo_av_sfft"],
            "is not in vs2_plugin/assets/demo_data/dataset_info.json (did you mean vs2_demo_av_sft",
        ),
        (["template=no_such_template"], "template: 'no_such_template' is not registered with LLaMA-Factory"),
        # another template's plugin would drop the model's audio without a word
        (["template=qwen2_vl"], "template: 'qwen2_vl' with "),
        (["deepspeed=recipes/deepspeed/ds_z9.json"], "deepspeed recipes/deepspeed/ds_z9.json: cannot read"),
        (["adapter_name_or_path=/nonexistent/adapter"], "adapter_name_or_path /nonexistent/adapter: not found"),
        (["lora_rank=0"], "lora_rank: 0 must be at least 1"),
        (["video_fps=-1"], "video_fps: -1.0 must be above 0"),
        (["lora_target=q_projj,v_proj"], "lora_target q_projj: no module of the model has it in its name"),
        (["additional_target=audio_alinger"], "additional_target audio_alinger: no module of the model ends with it"),
        # LLaMA-Factory's own checks after its parse
        (["do_eval=true"], "Please make sure eval_dataset be provided or val_size"),
        (["do_predict=true"], "Please enable `predict_with_generate`"),
        (["use_unsloth=true"], "need a package not installed here: The 'unsloth' distribution was not found"),
    ],
)
def test_each_mistake_is_named(tiny_model_dir, monkeypatch, overrides, named):
    monkeypatch.chdir(REPO)
    _, findings = check_recipe("recipes/tiny/av_sft.yaml", [f"model_name_or_path={tiny_model_dir}", *overrides])
    problems = _problems(findings)
    assert len(problems) == 1 and named in problems[0], problems


def test_a_finished_run_in_output_dir_is_named_unless_the_files_are_left_out(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    (tmp_path / "model.safetensors").write_bytes(b"")  # what a finished run leaves, and no checkpoint-N
    overrides = [f"model_name_or_path={tiny_model_dir}", f"output_dir={tmp_path}", "overwrite_output_dir=false"]
    _, findings = check_recipe("recipes/tiny/av_sft.yaml", overrides)
    assert _problems(findings) == [
        "recipes/tiny/av_sft.yaml: LLaMA-Factory's train arguments: Output directory already exists and is not "
        "empty. Please set `overwrite_output_dir`."
    ]
    _, findings = check_recipe("recipes/tiny/av_sft.yaml", overrides, files=False)
    assert not _problems(findings)
    _, findings = check_recipe("recipes/tiny/av_sft.yaml", ["use_unsloth=true"], files=False)
    assert not _problems(findings)  # a recipe for another machine: its packages are its own
    assert any("need a package not installed here: The 'unsloth'" in f.text for f in findings)
    _, findings = check_recipe("recipes/tiny/av_sft.yaml", [*overrides[:-1], "dataset=null"], files=False)
    assert _problems(findings) == [
        "recipes/tiny/av_sft.yaml: LLaMA-Factory's train arguments: Please specify dataset for training."
    ]


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
    """As LLaMA-Factory reads a recipe (OmegaConf): YAML 1.1 would give the trainer the text '1e-4';
    a date stays text and merge keys work, as there."""
    path = tmp_path / "r.yaml"
    path.write_text("learning_rate: 1e-4\nwarmup: 2E3\nname: 1e\nquoted: '1e-4'\nsteps: 30\n")
    assert load_yaml(path) == {"learning_rate": 1e-4, "warmup": 2000.0, "name": "1e", "quoted": "1e-4", "steps": 30}
    path.write_text("base: &b\n  seed: 1\nrun:\n  <<: *b\n  rounds: 2\nrun_name: 2024-01-01\n")
    assert load_yaml(path) == {"base": {"seed": 1}, "run": {"seed": 1, "rounds": 2}, "run_name": "2024-01-01"}


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
    assert vs2_main(["check-recipe", "recipes"]) == 2
    assert "recipes: a folder, not a config file" in capsys.readouterr().err


def test_every_problem_is_reported_not_only_the_first(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    overrides = ["lerning_rate=1", "num_train_epochs=three", "dataset=nope1,nope2", f"model_name_or_path={tmp_path}/m"]
    _, findings = check_recipe("recipes/tiny/av_sft.yaml", overrides)
    problems = _problems(findings)
    assert len(problems) == 5, problems  # unknown keys, a wrong type, two datasets, the model
    assert "lerning_rate (did you mean learning_rate?)" in problems[0]
    assert [p for p in problems if "nope1" in p] and [p for p in problems if "nope2" in p]
    assert f"model_name_or_path {tmp_path}/m: not found" in problems
    _, findings = check_recipe(
        "recipes/tiny/av_sft.yaml", ["num_train_epochs=three", "finetuning_type=lroa"], files=False
    )
    assert sorted(p.split(": ", 1)[1] for p in _problems(findings)) == [
        "finetuning_type: 'lroa' is not one of lora, oft, freeze, full",
        "num_train_epochs: 'three' is str, not float",
    ]  # one line each


def test_what_the_run_takes_is_not_flagged(tiny_model_dir, monkeypatch):
    monkeypatch.chdir(REPO)
    fine = [
        f"model_name_or_path={tiny_model_dir}",
        "lora_target=[q_proj,v_proj]",  # names as a YAML list, as LLaMA-Factory splits "a,b"
        'deepspeed={"zero_optimization":{"stage":2}}',  # the DeepSpeed config as a mapping
        "vs2_bad_samples=off",  # a bare off is YAML's false
    ]
    _, findings = check_recipe("recipes/tiny/av_sft.yaml", fine)
    assert not _problems(findings), findings


def test_recipes_are_told_apart_by_their_keys(tmp_path, capsys):
    sft = load_yaml(REPO / "recipes" / "tiny" / "av_sft.yaml")
    sft.pop("stage")  # LLaMA-Factory's default stage is sft: still a training recipe
    driver = {"run_dir": "x", "model_name_or_path": "m"}  # no train_videos: still the driver's
    cases = {"nostage.yaml": (sft, "train"), "driver.yaml": (driver, "mrdpo")}
    for name, (data, kind) in cases.items():
        (tmp_path / name).write_text(json.dumps(data))  # JSON is YAML
        assert check_recipe(tmp_path / name, files=False)[0] == kind, name
    assert "missing required key(s) train_videos" in _problems(check_recipe(tmp_path / "driver.yaml")[1])[0]
    (tmp_path / "empty.yaml").write_text("")
    assert vs2_main(["check-recipe", str(tmp_path / "empty.yaml")]) == 2  # unreadable as any kind of recipe
    assert f"{tmp_path / 'empty.yaml'}: an empty recipe (no key)" in capsys.readouterr().err
    (tmp_path / "r.json").write_text(json.dumps(load_yaml(REPO / "recipes" / "tiny" / "av_sft.yaml")))
    assert "only from a .yaml or .yml file" in _problems(check_recipe(tmp_path / "r.json", files=False)[1])[0]


def test_a_key_given_twice_is_refused_as_llamafactory_refuses_it(tmp_path):
    from vs2_plugin.errors import ConfigError

    path = tmp_path / "r.yaml"
    path.write_text("learning_rate: 1.0e-4\nstage: sft\nlearning_rate: 5\n")
    with pytest.raises(ConfigError, match="found duplicate key 'learning_rate'"):
        load_yaml(path)


def test_a_mistyped_relative_model_path_is_not_taken_for_a_hub_id(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)  # a hub id is then the hub's to answer
    (tmp_path / "outputs").mkdir()
    recipe = REPO / "recipes" / "tiny" / "av_sft.yaml"
    _, findings = check_recipe(recipe, ["model_name_or_path=outputs/tiny-modle", f"dataset_dir={DEMO_DATA}"])
    assert "model_name_or_path outputs/tiny-modle: not found" in _problems(findings)
    _, findings = check_recipe(recipe, ["model_name_or_path=org/model", f"dataset_dir={DEMO_DATA}"])
    assert not _problems(findings) and "a hub id" in findings[-1].text


def test_data_under_skip_lists_what_the_run_would_leave_out(tiny_model_dir, tmp_path, monkeypatch, capsys):
    data = tmp_path / "data"
    shutil.copytree(DEMO_DATA, data)
    rows = json.loads((data / "vs2_demo_av_sft.json").read_text())
    rows[0]["videos"] = ["media/gone.mp4"]
    (data / "vs2_demo_av_sft.json").write_text(json.dumps(rows))
    monkeypatch.chdir(REPO)
    overrides = [f"model_name_or_path={tiny_model_dir}", f"dataset_dir={data}", "vs2_bad_samples=skip"]
    _, findings = check_recipe("recipes/tiny/av_sft.yaml", overrides, data=True)
    assert not _problems(findings), findings
    texts = [f.text for f in findings]
    assert f"data (skip): {len(rows)} samples checked, 1 bad" in texts
    assert any(t.startswith("left out: dataset 'vs2_demo_av_sft' (vs2_demo_av_sft.json item 1)") for t in texts)
    assert "skipped_samples.jsonl" not in capsys.readouterr().err  # a scratch folder, gone once checked


def test_offline_a_hub_id_is_found_in_the_hub_cache(tmp_path, monkeypatch):
    import huggingface_hub.constants

    from vs2_plugin.pipeline.generation import folder_problem

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    assert folder_problem("org/tiny", "model_name_or_path org/tiny") == "model_name_or_path org/tiny: not found"
    snapshot = tmp_path / "models--org--tiny" / "snapshots" / "abc123"  # the hub cache's layout
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    (tmp_path / "models--org--tiny" / "refs").mkdir()
    (tmp_path / "models--org--tiny" / "refs" / "main").write_text("abc123")
    assert folder_problem("org/tiny", "model_name_or_path org/tiny") is None
    assert (
        folder_problem("org/tiny", "adapter org/tiny", adapter=True) == "adapter org/tiny: not found"
    )  # no adapter file
    assert folder_problem("a/b..c", "model a/b..c") == "model a/b..c: not found"  # no repository id: no traceback


def test_flags_and_overrides_come_in_any_order(monkeypatch, capsys):
    monkeypatch.chdir(REPO)
    argv = ["check-recipe", "recipes/tiny/av_sft.yaml", "--keys-only", "learning_rate=abc", "--data", "seed=1"]
    assert vs2_main(argv) == 1
    out = capsys.readouterr().out
    assert "learning_rate: 'abc' is str, not float" in out and "--data: no samples checked (--keys-only" in out
    assert vs2_main(["mrdpo", "no/such.yaml", "--no-progress", "rounds=2"]) == 2
    assert "config file not found: no/such.yaml" in capsys.readouterr().err  # parsed; not "unrecognized arguments"


def test_an_mrdpo_config_with_data_screens_its_video_lists_as_the_run_would(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    demo = DEMO_DATA / "vs2_demo_rl.jsonl"
    rows = [json.loads(line) for line in demo.read_text().splitlines()]
    for row in rows:  # the list moves: its videos stay where they are
        row["video"] = str((demo.parent / row["video"]).resolve())
    bad = [*rows, {**rows[0], "id": "gone", "video": str(tmp_path / "gone.mp4")}, {"id": "no_reference"}]
    listed = tmp_path / "train.jsonl"
    listed.write_text("".join(json.dumps(r) + "\n" for r in bad) + "{not json\n")
    overrides = [f"model_name_or_path={tiny_model_dir}", f"train_videos={listed}"]
    _, findings = check_recipe("recipes/tiny/mrdpo.yaml", overrides, data=True)
    notes = [f.text for f in findings if f.level == "note" and "train_videos" in f.text]
    assert not _problems(findings)  # bad_samples: skip (the recipe's): what the run would leave out
    assert len(notes) == 4 and notes[-1] == f"train_videos {listed}: {len(rows) + 3} video(s) checked, 3 bad"
    assert "gone.mp4" in notes[0] and "no_reference" in notes[1] and "line" in notes[2]
    _, findings = check_recipe("recipes/tiny/mrdpo.yaml", [*overrides, "bad_samples=fail"], data=True)
    assert len(_problems(findings)) == 3
    # a list with nothing left (or nothing in it) is what the run refuses, whatever the policy
    for rows in ([bad[-2]], []):
        listed.write_text("".join(json.dumps(r) + "\n" for r in rows))
        _, findings = check_recipe("recipes/tiny/mrdpo.yaml", overrides, data=True)
        assert _problems(findings) == [f"train_videos {listed}: no usable videos ({len(rows)} bad)"]


def test_an_mrdpo_config_names_what_its_judge_lacks_on_this_machine(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    overrides = [f"model_name_or_path={tiny_model_dir}", "judge.judge=openai"]
    _, findings = check_recipe("recipes/tiny/mrdpo.yaml", overrides)
    assert _problems(findings) == ["judge 'openai': " + NO_API_KEY]  # the run would stop after sampling
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    assert not _problems(check_recipe("recipes/tiny/mrdpo.yaml", overrides)[1])
    key_file = tmp_path / "key.txt"
    key_file.write_text("\n")
    _, findings = check_recipe("recipes/tiny/mrdpo.yaml", [*overrides, f"judge.options.api_key_file={key_file}"])
    assert _problems(findings) == [f"judge 'openai': api_key_file {str(key_file)!r} is empty"]
