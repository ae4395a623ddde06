"""gDPO with evaluation (val_size, eval steps) and lambda > 0; the ground-truth match rate per round;
the memory round hook refused where LLaMA-Factory cannot merge in memory."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import pytest
import yaml

from tests.support.paths import REPO
from vs2_plugin.errors import ConfigError
from vs2_plugin.gdpo.config import GDPOArguments
from vs2_plugin.gdpo.workflow import check_round_hook, memory_merge_blockers


@pytest.mark.slow
def test_tiny_recipe_with_val_size_trains_and_evaluates(tiny_model_dir, tmp_path):
    import vs2_plugin.integrations.llamafactory as integration
    from vs2_plugin.gdpo.workflow import run_gdpo_from_dict

    integration.register()
    args = yaml.safe_load((REPO / "recipes" / "tiny" / "gdpo_round.yaml").read_text())
    out = tmp_path / "gdpo"
    args.update(
        model_name_or_path=str(tiny_model_dir),
        output_dir=str(out),
        dataset_dir=str(REPO / args["dataset_dir"]),
        val_size=0.5,
        eval_strategy="steps",
        eval_steps=1,
        per_device_eval_batch_size=2,
        do_eval=True,
        max_steps=2,
        gradient_accumulation_steps=1,
        save_strategy="no",
        seed=1,
    )
    assert args["gdpo_lambda"] > 0
    result = run_gdpo_from_dict(args)

    history = result.trainer.state.log_history
    evals = [h for h in history if "eval_loss" in h]
    assert [h["step"] for h in evals] == [1, 2, 2]  # at both eval steps, then the final evaluation
    for h in evals:
        assert math.isfinite(h["eval_loss"])
        # eq. 11 on the eval pairs: the ground-truth term is there, not just the DPO part
        assert h["eval_gdpo/nll_loss"] > 0
        assert h["eval_loss"] == pytest.approx(h["eval_gdpo/dpo_loss"] + 0.1 * h["eval_gdpo/nll_loss"], rel=1e-4)
    assert math.isfinite(result.metrics["eval_loss"])  # the final evaluation after training too
    assert "eval_gdpo/nll_loss" in json.loads((out / "round-001" / "eval_results.json").read_text())
    assert len(result.trainer.eval_dataset) == 2 and len(result.trainer.train_dataset) == 2
    assert "gt_input_ids" in result.trainer.eval_dataset.column_names

    # the ground-truth match rate of the round: logged with the train metrics and in rounds.json
    state = json.loads((out / "rounds.json").read_text())
    train_results = json.loads((out / "round-001" / "train_results.json").read_text())
    assert state["rounds"][0]["gt_match_rate"] == train_results["gt_match_rate"] == 1.0  # every demo pair has its gt


def test_match_rate_counts_pairs_that_got_their_own_ground_truth():
    from datasets import Dataset

    from vs2_plugin.gdpo.gtdata import attach_gt_with_stats

    def row(prompt, answer):
        return {"input_ids": [*prompt, *answer], "labels": [-100] * len(prompt) + answer, "videos": ["v.mp4"]}

    pairs = Dataset.from_list(
        [
            {"chosen_input_ids": [1, 2, 7], "chosen_labels": [-100, -100, 7], "videos": ["v.mp4"]},
            {"chosen_input_ids": [3, 4, 7], "chosen_labels": [-100, -100, 7], "videos": ["v.mp4"]},
            {"chosen_input_ids": [5, 6, 7], "chosen_labels": [-100, -100, 7], "videos": ["v.mp4"]},
            {"chosen_input_ids": [1, 2, 8], "chosen_labels": [-100, -100, 8], "videos": ["v.mp4"]},
        ]
    )
    gt = Dataset.from_list(
        [{**row([1, 2], [9]), "attention_mask": [1] * 3}, {**row([3, 4], [9]), "attention_mask": [1] * 3}]
    )
    out, stats = attach_gt_with_stats(pairs, gt, "match", seed=0)
    assert stats == {"gt_match_rate": 0.75, "pairs": 4}  # prompt [5, 6] has no ground truth of its own
    assert out["gt_input_ids"][0] == [1, 2, 9] and out["gt_input_ids"][1] == [3, 4, 9]


# ----------------------------------------------------------------------------- round hook refusals
def _args(tmp_path, deepspeed=None, quantization_bit=None, model=None):
    model_args = SimpleNamespace(
        model_name_or_path=str(model or tmp_path), quantization_bit=quantization_bit, use_unsloth=False, use_kt=False
    )
    return model_args, SimpleNamespace(deepspeed=deepspeed)


def _gdpo(hook):
    return GDPOArguments(gdpo_lambda=0.0, gdpo_rounds=True, gdpo_round_hook=hook)


@pytest.mark.parametrize(
    "setting, needle",
    [
        ({"deepspeed": str(REPO / "recipes" / "deepspeed" / "ds_z3.json")}, "ZeRO-3"),
        ({"deepspeed": {"zero_optimization": {"stage": 3}}}, "ZeRO-3"),
        ({"quantization_bit": 4}, "quantization_bit=4"),
    ],
)
def test_memory_round_hook_is_refused_where_llamafactory_cannot_merge(tmp_path, setting, needle):
    model_args, training_args = _args(tmp_path, **setting)
    with pytest.raises(ConfigError, match=needle) as info:
        check_round_hook(_gdpo("memory"), model_args, training_args)
    assert "gdpo_round_hook: export" in str(info.value)
    check_round_hook(_gdpo("export"), model_args, training_args)  # export mode merges on disk: fine


def test_memory_round_hook_refused_for_a_prequantized_checkpoint(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"quantization_config": {"quant_method": "gptq", "bits": 4}}))
    model_args, training_args = _args(tmp_path)
    assert memory_merge_blockers(model_args, training_args) == [f"a quantized checkpoint ({tmp_path})"]
    with pytest.raises(ConfigError, match="gdpo_round_hook: export"):
        check_round_hook(_gdpo("memory"), model_args, training_args)


def test_memory_round_hook_allowed_with_zero2_and_full_precision(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "qwen2"}))
    model_args, training_args = _args(tmp_path, deepspeed=str(REPO / "recipes" / "deepspeed" / "ds_z2.json"))
    assert memory_merge_blockers(model_args, training_args) == []
    check_round_hook(_gdpo("memory"), model_args, training_args)


def test_rounds_refuse_memory_hook_under_zero3_before_touching_the_run(tmp_path):
    """The real round entry point refuses before any state is written."""
    from vs2_plugin.gdpo.workflow import _run_round

    model_args, training_args = _args(tmp_path, deepspeed={"zero_optimization": {"stage": 3}})
    model_args.adapter_name_or_path = None
    training_args.output_dir = str(tmp_path / "run")
    with pytest.raises(ConfigError, match="gdpo_round_hook: export"):
        _run_round(model_args, None, training_args, SimpleNamespace(finetuning_type="lora"), _gdpo("memory"), None)
    assert not (tmp_path / "run" / "rounds.json").exists()
