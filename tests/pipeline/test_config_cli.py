"""The mrDPO driver's config speaks LLaMA-Factory: its key names, key=value overrides, report_to."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import pytest
import yaml

from tests.support.paths import REPO
from vs2_plugin.errors import ConfigError
from vs2_plugin.pipeline.config import load_mrdpo_config

TINY = REPO / "recipes" / "tiny" / "mrdpo.yaml"


def _write(tmp_path: Path, **changes) -> Path:
    cfg = yaml.safe_load(TINY.read_text())
    cfg.update(changes)
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_llamafactory_key_names(tmp_path):
    cfg = load_mrdpo_config(_write(tmp_path, adapter_name_or_path="a/sft, b/round"))
    assert cfg.model_name_or_path == "outputs/tiny-model"
    assert cfg.adapter_name_or_path == ["a/sft", "b/round"]  # LLaMA-Factory's comma-separated form


def test_old_key_names_work_with_a_deprecation_warning(tmp_path, caplog):
    cfg = yaml.safe_load(TINY.read_text())
    cfg["model"] = cfg.pop("model_name_or_path")
    cfg["init_adapters"] = ["x/sft"]
    del cfg["adapter_name_or_path"]
    path = tmp_path / "old.yaml"
    path.write_text(yaml.safe_dump(cfg))
    with caplog.at_level(logging.WARNING, logger="vs2_plugin"), pytest.warns(DeprecationWarning) as record:
        loaded = load_mrdpo_config(path)
    assert loaded.model_name_or_path == "outputs/tiny-model" and loaded.adapter_name_or_path == ["x/sft"]
    messages = " ".join(str(w.message) for w in record)
    assert "'model' is deprecated, use 'model_name_or_path'" in messages
    assert "'init_adapters' is deprecated, use 'adapter_name_or_path'" in messages
    assert "'model' is deprecated" in caplog.text
    cfg["model_name_or_path"] = "other"
    path.write_text(yaml.safe_dump(cfg))
    with warnings.catch_warnings(), pytest.raises(ConfigError, match="both 'model' .* and 'model_name_or_path'"):
        warnings.simplefilter("ignore")
        load_mrdpo_config(path)


def test_key_value_overrides_are_typed_and_nested():
    cfg = load_mrdpo_config(
        TINY,
        [
            "rounds=3",
            "run_dir=outputs/x",
            "sampling.top_p=0.8",
            "sampling.local=false",
            "train.learning_rate=2e-4",
            "adapter_name_or_path=[a,b]",
            "report_to=none",
        ],
    )
    assert cfg.rounds == 3 and cfg.run_dir == "outputs/x"
    assert cfg.sampling.top_p == 0.8 and cfg.sampling.local is False
    assert cfg.sampling.max_new_tokens == 48  # the rest of the nested mapping is kept
    assert cfg.train["learning_rate"] == 2e-4 and cfg.train["lora_rank"] == 8
    assert cfg.adapter_name_or_path == ["a", "b"] and cfg.reporters == []


def test_override_errors_are_clear():
    with pytest.raises(ConfigError, match="unknown key.*roundz"):
        load_mrdpo_config(TINY, ["roundz=2"])
    with pytest.raises(ConfigError, match="sampling: unknown key.*topp"):
        load_mrdpo_config(TINY, ["sampling.topp=0.5"])
    with pytest.raises(ConfigError, match="'rounds' is not key=value"):
        load_mrdpo_config(TINY, ["rounds"])
    with pytest.raises(ConfigError, match="rounds must be an integer >= 1; got 'two'"):
        load_mrdpo_config(TINY, ["rounds=two"])


@pytest.mark.parametrize(
    ("override", "message"),
    [
        # a misspelt schedule name had passed the config and crashed the run after screening and event extraction
        ("thresholds=table_3", r"thresholds: 'table_3' is no schedule \(did you mean table3\?\)"),
        ("thresholds=[{e_g: 0.05, r_g: 0, e_t: 0.05}]", "schedule round 1: .*delta_r_local"),
        ("thresholds=[{e_g: five, r_g: 0, e_t: 0.05, r_t: 0}]", "delta_e_global must be a fraction.*'five'"),
        ("min_duration_s=-5", "min_duration_s must be a number >= 0; got -5"),
        ("seed=abc", "seed must be an integer >= 0; got 'abc'"),
        ("stop_unnatural_rate=high", "stop_unnatural_rate must be a number >= 0; got 'high'"),
    ],
)
def test_bad_values_are_refused_at_load_naming_them(override, message):
    with pytest.raises(ConfigError, match=message):
        load_mrdpo_config(TINY, [override])


def test_report_to_defaults_to_the_supported_part_of_train_report_to(tmp_path):
    assert load_mrdpo_config(TINY).reporters == ["tensorboard"]
    cfg = yaml.safe_load(TINY.read_text())
    del cfg["report_to"]
    cfg["train"]["report_to"] = "tensorboard,mlflow"
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert load_mrdpo_config(path).reporters == ["tensorboard"]
    with pytest.raises(ConfigError, match="report_to must be one of none, all, tensorboard; got 'wandb'"):
        load_mrdpo_config(TINY, ["report_to=wandb"])


def test_round_metrics_reach_tensorboard(tmp_path):
    """What the driver sends after each held-out evaluation, read back from the event file."""
    from tests.support.tensorboard import scalars
    from vs2_plugin.pipeline.tracking import report_round

    report_round(
        ["tensorboard"],
        tmp_path,
        0,
        {"global": {"rep": 0.02, "miss": 0.6, "hall": 0.3, "total": 0.9, "unnatural": 0.0, "n": 3}},
    )
    report_round(
        ["tensorboard"],
        tmp_path,
        1,
        {
            "global": {"rep": 0.01, "miss": 0.5, "hall": 0.25, "total": 0.75, "unnatural": 0.1},
            "local": {"miss": 0.7, "hall": None},
        },
    )
    report_round(["none"], tmp_path / "off", 1, {"global": {"miss": 0.5}})
    got = scalars(tmp_path / "runs")
    assert got["heldout/global/miss"] == [(0, pytest.approx(0.6)), (1, pytest.approx(0.5))]
    assert got["heldout/global/hall"] == [(0, pytest.approx(0.3)), (1, pytest.approx(0.25))]
    assert got["heldout/global/rep"][1] == (1, pytest.approx(0.01))
    assert got["heldout/global/unnatural"] == [(0, 0.0), (1, pytest.approx(0.1))]
    assert got["heldout/local/miss"] == [(1, pytest.approx(0.7))] and "heldout/local/hall" not in got
    assert not (tmp_path / "off").exists()


@pytest.mark.slow
def test_cli_overrides_drive_a_real_round_and_its_metrics_reach_tensorboard(tmp_path, tiny_model_dir):
    """`vs2 mrdpo CONFIG key=value ...`: the overrides take effect, and the held-out metrics of
    metrics.json are in the TensorBoard event files, one step per round."""
    import json
    import os
    import subprocess
    import sys

    from tests.support.tensorboard import scalars

    cfg = yaml.safe_load(TINY.read_text())
    cfg["thresholds"] = [{"delta_e_global": -1.0, "delta_r_global": -1.0, "delta_e_local": -1.0, "delta_r_local": -1.0}]
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    run = tmp_path / "run"
    demo = REPO / "vs2_plugin" / "assets" / "demo_data"
    args = [
        str(path),
        "rounds=1",
        f"run_dir={run}",
        f"model_name_or_path={tiny_model_dir}",
        "sampling.max_new_tokens=12",
        "train.max_steps=1",
        f"train_videos={demo / 'vs2_demo_rl.jsonl'}",
        f"heldout_videos={demo / 'vs2_demo_heldout.jsonl'}",
    ]
    proc = subprocess.run(
        [sys.executable, "-m", "vs2_plugin.cli", "mrdpo", *args, "--no-progress"],
        cwd=REPO,
        env=dict(os.environ, OMP_NUM_THREADS="1"),
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    saved = json.loads((run / "config.json").read_text())
    assert saved["rounds"] == 1 and saved["sampling"]["max_new_tokens"] == 12 and saved["train"]["max_steps"] == 1
    stages = json.loads((run / "metrics.json").read_text())["stages"]
    got = scalars(run / "runs")
    for step, stage in enumerate(stages):  # "start" (step 0) and "round 1"
        for name in ("miss", "hall", "rep", "unnatural"):
            want = stage["global"][name]
            assert (step, pytest.approx(want, abs=1e-6)) in got[f"heldout/global/{name}"], (stage["stage"], name)
    assert [s for s, _ in got["heldout/global/miss"]] == [0, 1]


def test_missing_required_keys_and_untyped_values_are_named():
    import yaml as _yaml

    data = _yaml.safe_load(TINY.read_text())
    del data["train_videos"]
    from vs2_plugin.pipeline.config import MrDPOConfig, _build

    with pytest.raises(ConfigError, match="missing required key\\(s\\) train_videos"):
        _build(MrDPOConfig, data, "cfg.yaml")
    for override, message in (
        ("sampling.temperature=abc", "sampling.temperature must be a number >= 0; got 'abc'"),
        ("gdpo_lambda=abc", "gdpo_lambda must be a number >= 0; got 'abc'"),
    ):
        with pytest.raises(ConfigError, match=message):
            load_mrdpo_config(TINY, [override])


def test_a_rerun_with_other_settings_is_refused_naming_them(tmp_path):
    """Finished steps were made with the recorded settings: a rerun may change how the work is
    done (rounds, workers, timeouts), not what it makes (seed, sampling, training)."""
    from vs2_plugin.pipeline.config import resume_differences

    recorded = {"seed": 42, "rounds": 2, "run_dir": "a", "sampling": {"temperature": 0.7, "workers": 1}}
    recorded |= {"model_name_or_path": "saves/base", "train": {"learning_rate": 1e-5, "warmup_ratio": 0.03}}
    same_work = {"seed": 42, "rounds": 4, "run_dir": "b", "sampling": {"temperature": 0.7, "workers": 2}}
    # moved or given absolute; a recipe that dropped warmup_ratio; a setting a newer vs2 added
    same_work |= {"model_name_or_path": "/data/saves/base", "train": {"learning_rate": 1e-5}, "judge": {"x": 1}}
    assert resume_differences(recorded, same_work) == []
    other = {**same_work, "seed": 7, "sampling": {"temperature": 0.1, "workers": 1}, "train": {"learning_rate": 2e-5}}
    assert resume_differences(recorded, other) == [
        "sampling.temperature (0.7 -> 0.1)",
        "seed (42 -> 7)",
        "train.learning_rate (1e-05 -> 2e-05)",
    ]


def test_run_mrdpo_refuses_a_run_dir_started_with_other_settings_before_any_work(tmp_path, tiny_model_dir):
    import dataclasses
    import json

    from vs2_plugin.pipeline.mrdpo import run_mrdpo

    run_dir = tmp_path / "run"
    cfg = load_mrdpo_config(TINY, [f"run_dir={run_dir}", f"model_name_or_path={tiny_model_dir}"])
    run_dir.mkdir()
    recorded = json.loads(json.dumps(dataclasses.asdict(cfg), default=str))
    (run_dir / "config.json").write_text(json.dumps({**recorded, "seed": 7}))
    (run_dir / "pipeline_state.json").write_text(json.dumps({"rounds": {"0": {"steps": {"eval": "t"}}}}))
    with pytest.raises(ConfigError, match=r"was started with other settings: seed \(7 -> 42\)"):
        run_mrdpo(cfg, progress=False)
    # nothing screened, sampled or judged
    assert sorted(p.name for p in run_dir.iterdir()) == ["config.json", "pipeline_state.json"]
    with pytest.raises(ConfigError, match="model_name_or_path .*nope: not found"):
        run_mrdpo(load_mrdpo_config(TINY, [f"run_dir={tmp_path / 'other'}", f"model_name_or_path={tmp_path / 'nope'}"]))
