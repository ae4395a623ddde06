"""PipelinePlan (the settings of vs2 demo and benchmarks/learning.py): validation and the mrDPO config it makes."""

from __future__ import annotations

import json
import re

import pytest

from vs2_plugin.errors import ConfigError
from vs2_plugin.pipeline.caption_budget import CAPTION_BUDGET, auto_budget, caption_budget
from vs2_plugin.pipeline.demo import mrdpo_config, sft_model
from vs2_plugin.pipeline.plan import DEMO_PLAN, FULL_SFT, PipelinePlan, media_recipe


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"n_train": 0}, "PipelinePlan.n_train must be an integer >= 1, got 0"),
        ({"pretrain_steps": 2.5}, "PipelinePlan.pretrain_steps must be an integer >= 1, got 2.5"),
        ({"rounds": True}, "PipelinePlan.rounds must be an integer >= 1, got True"),
        ({"rounds_after_rebirth": -1}, "PipelinePlan.rounds_after_rebirth must be an integer >= 0, got -1"),
        ({"encoder_steps": 0}, "PipelinePlan.encoder_steps must be an integer >= 1, got 0"),
        ({"n_train": 4, "n_rl": 5}, "PipelinePlan.n_rl must be None or an integer in [1, n_train=4], got 5"),
        ({"media": {"video_fps": 2.0, "max_steps": 3}}, "PipelinePlan.media must map LLaMA-Factory media arguments"),
    ],
)
def test_bad_plans_name_the_value(kwargs, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        PipelinePlan(**kwargs)


def test_mrdpo_config_of_a_plan_merges_its_overrides(tmp_path):
    plan = PipelinePlan(
        mrdpo={**DEMO_PLAN.mrdpo, "gdpo_lambda": 0.0, "train": {"max_steps": 2, "gdpo_lora_mode": "single"}}
    )
    (tmp_path / CAPTION_BUDGET).write_text(json.dumps({"max_new_tokens": 288}))
    cfg = mrdpo_config(tmp_path, plan, tmp_path / "run", tmp_path / "align", [str(tmp_path / "sft")], 3)
    assert cfg.sampling.max_new_tokens == 288  # the plan's "auto": the run folder's recorded budget
    assert cfg.gdpo_lambda == 0.0 and cfg.rounds == 3 and cfg.judge["judge"] == "synth_exact"
    assert cfg.train["max_steps"] == 2 and cfg.train["gdpo_lora_mode"] == "single"
    assert cfg.infer["repetition_penalty"] == 1.2 and cfg.infer["use_audio_in_video"] is True  # merged, not replaced
    assert cfg.train_videos == str(tmp_path / "data" / "train.jsonl")
    assert cfg.heldout_videos == str(tmp_path / "data" / "heldout.jsonl")
    assert cfg.adapter_name_or_path == [str(tmp_path / "sft")]


def test_the_plans_media_arguments_reach_every_stage_that_reads_media(tmp_path):
    plan = PipelinePlan(media={"video_fps": 2.0})
    (tmp_path / CAPTION_BUDGET).write_text(json.dumps({"max_new_tokens": 256}))
    cfg = mrdpo_config(tmp_path, plan, tmp_path / "run", tmp_path / "align", [], 1)
    assert cfg.train["video_fps"] == 2.0 and cfg.infer["video_fps"] == 2.0  # the rounds' training and sampling
    assert cfg.infer["video_maxlen"] == 30  # the recipe's other media arguments kept
    sft = media_recipe("av_sft.yaml", plan, video_fps=1.0, max_steps=7)  # the plan's media win over overrides
    assert (sft["video_fps"], sft["max_steps"], sft["stage"]) == (2.0, 7, "sft")
    assert media_recipe("av_sft.yaml", PipelinePlan())["video_fps"] == 1.0  # no media: the recipe's own
    default = mrdpo_config(tmp_path, PipelinePlan(), tmp_path / "run", tmp_path / "align", [], 1)
    assert default.infer["video_fps"] == 1.0


def test_mrdpo_samples_the_first_n_rl_train_clips(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "train.jsonl").write_text("".join(f'{{"id": "v{i}"}}\n' for i in range(5)))
    (tmp_path / CAPTION_BUDGET).write_text(json.dumps({"max_new_tokens": 256}))
    cfg = mrdpo_config(tmp_path, PipelinePlan(n_train=5, n_rl=2), tmp_path / "run", tmp_path / "align", [], 1)
    assert cfg.train_videos == str(data / "train_rl2.jsonl")
    assert (data / "train_rl2.jsonl").read_text().splitlines() == ['{"id": "v0"}', '{"id": "v1"}']


def test_the_sft_model_is_its_own_checkpoint_after_full_fine_tuning_else_alignment_plus_lora(tmp_path):
    assert sft_model(tmp_path, PipelinePlan(sft={**FULL_SFT, "max_steps": 2})) == (str(tmp_path / "sft"), [])
    lora = PipelinePlan(sft={"finetuning_type": "lora", "max_steps": 2})
    assert sft_model(tmp_path, lora) == (str(tmp_path / "align"), [str(tmp_path / "sft")])


def test_the_caption_budget_must_hold_the_longest_reference(tiny_model_dir, tmp_path):
    from transformers import AutoTokenizer

    from vs2_plugin.pipeline.caption_budget import check_caption_budget

    long = 'A red circle appears at the top left. Then a voice says "apple". ' * 6
    rows = [
        {"id": "short", "video": "a.mp4", "reference": "A low tone sounds."},
        {"id": "long", "video": "b.mp4", "reference": long},
    ]
    listing = tmp_path / "clips.jsonl"
    for row in rows:
        (tmp_path / row["video"]).touch()
    listing.write_text("".join(json.dumps(r) + "\n" for r in rows))
    n = len(AutoTokenizer.from_pretrained(str(tiny_model_dir))(long, add_special_tokens=False)["input_ids"])
    assert check_caption_budget(tiny_model_dir, [listing], n + 1) == n
    with pytest.raises(ConfigError, match=rf"max_new_tokens={n} cannot hold .*\({n} tokens \+ EOS, clip long of "):
        check_caption_budget(tiny_model_dir, [listing], n)


def test_a_resumed_folder_must_hold_the_plans_clips(tmp_path):
    from dataclasses import asdict, replace

    from vs2_plugin.pipeline.demo import synth_data
    from vs2_plugin.synth.generate import SynthConfig

    plan = PipelinePlan(n_train=3, n_heldout=2)
    made = SynthConfig(out="elsewhere", seed=0, n_train=3, n_heldout=2, min_seconds=4.0, max_seconds=6.0)
    made = replace(made, vary_wording=plan.vary_wording, n_text=plan.n_text)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "manifest.json").write_text(json.dumps({"config": asdict(made)}))
    assert synth_data(tmp_path, plan) == tmp_path / "data"  # the same clips: kept, nothing generated
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["manifest.json"]
    with pytest.raises(ConfigError, match=re.escape("(seed: 0 there, 7 now)")):
        synth_data(tmp_path, replace(plan, seed=7))
    with pytest.raises(ConfigError, match=re.escape("n_train: 3 there, 4 now")):
        synth_data(tmp_path, replace(plan, n_train=4))


def test_the_auto_caption_budget_holds_the_longest_reference_and_its_eos():
    # 243 tokens + EOS -> 256; 255 + EOS = 256 still fits; one more token needs the next step
    assert [auto_budget(n) for n in (243, 255, 256, 257)] == [256, 256, 288, 288]
    assert auto_budget(10, step=8) == 16


def test_an_auto_budget_without_its_record_is_an_error_that_says_where(tmp_path):
    from vs2_plugin.errors import Vs2Error

    with pytest.raises(Vs2Error, match=re.escape(f"{tmp_path / CAPTION_BUDGET} is missing")):
        caption_budget(tmp_path)


def test_clips_without_reference_captions_are_refused_naming_the_listing(tiny_model_dir, tmp_path):
    from vs2_plugin.pipeline.caption_budget import longest_reference

    listing = tmp_path / "clips.jsonl"
    (tmp_path / "a.mp4").touch()
    listing.write_text(json.dumps({"id": "a", "video": "a.mp4", "events": ["A low tone sounds."]}) + "\n")
    with pytest.raises(ConfigError, match=rf"no clip of {re.escape(str(listing))} has a reference caption"):
        longest_reference(tiny_model_dir, [listing])


def test_a_finished_training_stage_is_kept_only_with_the_recipe_it_was_trained_with(tmp_path, monkeypatch):
    import yaml

    from vs2_plugin.errors import Vs2Error
    from vs2_plugin.pipeline import demo

    trained = []
    monkeypatch.setattr(demo, "run_training", lambda recipe, record, log: trained.append(recipe))
    out = tmp_path / "run"
    recipe = media_recipe("av_sft.yaml", DEMO_PLAN, output_dir=str(out / "sft"), **DEMO_PLAN.sft)
    (out / "sft").mkdir(parents=True)
    (out / "sft" / "model.safetensors").write_bytes(b"")
    (out / "logs").mkdir()
    recorded = {**recipe, "output_dir": "/elsewhere/run/sft"}  # the folder was moved: places do not count
    (out / "logs" / "sft.yaml").write_text(yaml.safe_dump(recorded, sort_keys=False))

    assert demo._trained_stage(out, "sft", "model.safetensors", recipe) == 0.0 and trained == []
    longer = {**recipe, "max_steps": recipe["max_steps"] * 2}
    message = f"max_steps: {recipe['max_steps']} -> {2 * recipe['max_steps']}"
    with pytest.raises(Vs2Error, match=re.escape(message)) as refused:
        demo._trained_stage(out, "sft", "model.safetensors", longer)
    assert str(out / "sft") in str(refused.value) and trained == []
    # a stage that is not finished trains, whatever an earlier attempt recorded
    (out / "sft" / "model.safetensors").unlink()
    demo._trained_stage(out, "sft", "model.safetensors", longer)
    assert trained == [longer]


def test_finished_encoder_pretraining_of_another_length_is_refused(tmp_path):
    from vs2_plugin.errors import Vs2Error
    from vs2_plugin.pipeline.demo import ENCODERS_DONE, check_encoder_steps

    encoders = tmp_path / "encoders"
    check_encoder_steps(encoders, DEMO_PLAN)  # not pretrained yet: nothing to check
    encoders.mkdir()
    (encoders / ENCODERS_DONE).write_text(json.dumps({"steps": DEMO_PLAN.encoder_steps}))
    check_encoder_steps(encoders, DEMO_PLAN)
    longer = PipelinePlan(encoder_steps=DEMO_PLAN.encoder_steps + 1)
    with pytest.raises(Vs2Error, match=f"pretrained for {DEMO_PLAN.encoder_steps} steps.*asks {longer.encoder_steps}"):
        check_encoder_steps(encoders, longer)
