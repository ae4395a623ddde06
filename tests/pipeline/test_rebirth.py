"""Rebirth tuning (paper sec. 3.4) without a model: the final mrDPO model labels, unnatural,
empty and cut-off captions are dropped, the kept ones become an SFT set trained from the
post-alignment checkpoint, and a rerun redoes nothing."""

from __future__ import annotations

import dataclasses
import json

import pytest
import yaml

from vs2_plugin.errors import ConfigError, Vs2Error
from vs2_plugin.pipeline import rebirth
from vs2_plugin.pipeline.config import load_mrdpo_config

CAPTIONS = {
    "good": ("A toddler plays on a rug in a bright living room while a fire burns.", "stop"),
    "header": ("Video Description: a toddler plays on a rug.", "stop"),
    "repeated": ("the the the the the toddler plays on the rug", "stop"),
    "empty": ("   ", "stop"),
    "cut": ("A blue balloon floats near the window and", "length"),
}


@pytest.fixture
def setup(tmp_path, monkeypatch, repo_root):
    videos = tmp_path / "videos.jsonl"
    videos.write_text("".join(json.dumps({"id": name, "video": f"{name}.mp4"}) + "\n" for name in CAPTIONS))
    clip = (repo_root / "vs2_plugin" / "assets" / "demo_data" / "media" / "living_room.mp4").read_bytes()
    for name in CAPTIONS:  # real clips: the list is screened as mrDPO's lists are
        (tmp_path / f"{name}.mp4").write_bytes(clip)
    run = tmp_path / "mrdpo"
    run.mkdir()
    (run / "final_model.json").write_text(json.dumps({"model": "/models/post-align", "adapters": ["/r/1", "/r/2"]}))
    cfg_data = yaml.safe_load((repo_root / "recipes" / "tiny" / "mrdpo.yaml").read_text())
    cfg_data.update(run_dir=str(run), model_name_or_path=str(tmp_path / "post-align"), train_videos=str(videos))
    cfg_path = tmp_path / "mrdpo.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg_data))
    calls = {"sample": [], "train": []}

    def fake_sample(tasks, out_path, *, model, adapters, **kwargs):
        calls["sample"].append({"model": model, "adapters": adapters, "n": len(tasks), "greedy": tasks[0].greedy})
        out_path.touch()  # where the labels are kept
        return [
            {
                "key": t.key,
                "video_id": t.video_id,
                "video": t.video,
                "prompt": t.prompt,
                "caption": CAPTIONS[t.video_id][0],
                "finish_reason": CAPTIONS[t.video_id][1],
            }
            for t in tasks
        ]

    def fake_train(args, yaml_path, log_path):
        calls["train"].append(args)

    monkeypatch.setattr(rebirth, "sample", fake_sample)
    monkeypatch.setattr(rebirth, "run_training", fake_train)
    return load_mrdpo_config(str(cfg_path)), videos, tmp_path, calls


def test_rebirth_labels_with_the_final_model_filters_and_trains_from_post_alignment(setup, repo_root):
    cfg, videos, tmp_path, calls = setup
    out = tmp_path / "rebirth"
    result = rebirth.run_rebirth(
        cfg, str(videos), str(repo_root / "recipes" / "tiny" / "rebirth_sft.yaml"), str(out), progress=False
    )
    # 1. labelled by the final mrDPO model (backbone + every merged LoRA proxy), greedily
    assert calls["sample"] == [
        {"model": "/models/post-align", "adapters": ["/r/1", "/r/2"], "n": len(CAPTIONS), "greedy": True}
    ]
    # 2. unnatural, empty and cut-off captions dropped, with their reasons
    assert (result["labelled"], result["kept"], result["dropped"]) == (5, 1, 4)
    dropped = {json.loads(line)["video_id"]: json.loads(line)["reasons"] for line in (out / "dropped.jsonl").open()}
    assert "header" in dropped["header"] and "repeated_token" in dropped["repeated"]
    assert dropped["empty"] == ["empty caption"] and "cut off at max_new_tokens" in dropped["cut"]
    # 3. the kept captions as a LLaMA-Factory SFT set
    data = json.loads((out / "data" / "vs2_rebirth.json").read_text())
    assert [d["messages"][1]["content"] for d in data] == [CAPTIONS["good"][0]]
    assert data[0]["videos"] == [str(tmp_path / "good.mp4")] or data[0]["videos"][0].endswith("good.mp4")
    assert "vs2_rebirth" in json.loads((out / "data" / "dataset_info.json").read_text())
    # 4. trained from the post-alignment checkpoint, not from the DPO model, no adapter stacked
    (train,) = calls["train"]
    assert train["model_name_or_path"] == str((tmp_path / "post-align").resolve())
    assert train["dataset"] == "vs2_rebirth" and train["dataset_dir"] == str(out / "data")
    assert "adapter_name_or_path" not in train and train.get("stage", "sft") == "sft"
    # a rerun finds every step done
    again = rebirth.run_rebirth(
        cfg, str(videos), str(repo_root / "recipes" / "tiny" / "rebirth_sft.yaml"), str(out), progress=False
    )
    assert again["kept"] == 1 and len(calls["train"]) == 1


def test_rebirth_labels_every_local_interval_of_a_video(setup, repo_root):
    cfg, _, tmp_path, calls = setup
    listing = tmp_path / "with_local.jsonl"
    local = [{"start": 0, "end": 2.5, "reference": "a"}, {"start": 2.5, "end": 5, "reference": "b"}]
    listing.write_text(json.dumps({"id": "good", "video": "good.mp4", "local": local}) + "\n")
    out = tmp_path / "rebirth-local"
    result = rebirth.run_rebirth(
        cfg, str(listing), str(repo_root / "recipes" / "tiny" / "rebirth_sft.yaml"), str(out), progress=False
    )
    assert calls["sample"][0]["n"] == 3 and result["kept"] == 3
    prompts = [d["messages"][0]["content"] for d in json.loads((out / "data" / "vs2_rebirth.json").read_text())]
    assert "between 0 and 2.5 seconds" in prompts[1] and "between 2.5 and 5 seconds" in prompts[2]


def test_rebirth_labels_local_intervals_listed_without_references(setup, repo_root):
    """Rebirth writes the captions itself: an interval needs only its times (mrDPO's lists, which
    are judged against references, still need one)."""
    from vs2_plugin.errors import DataError
    from vs2_plugin.pipeline.videos import load_videos

    cfg, _, tmp_path, calls = setup
    listing = tmp_path / "times_only.jsonl"
    listing.write_text(json.dumps({"id": "good", "video": "good.mp4", "local": [{"start": 0, "end": 2.5}]}) + "\n")
    result = rebirth.run_rebirth(
        cfg,
        str(listing),
        str(repo_root / "recipes" / "tiny" / "rebirth_sft.yaml"),
        str(tmp_path / "rb"),
        progress=False,
    )
    assert calls["sample"][0]["n"] == 2 and result["kept"] == 2
    listing.write_text(
        json.dumps({"id": "good", "video": "good.mp4", "reference": "A toddler.", "local": [{"start": 0, "end": 2.5}]})
        + "\n"
    )
    with pytest.raises(DataError, match=r"times_only.jsonl:1: local\[0\] needs a 'reference' or 'events'"):
        load_videos(listing)


def test_rebirth_trains_from_the_post_alignment_checkpoint_it_is_given(setup, repo_root):
    """After full-fine-tuning SFT the mrDPO base is the SFT model, not the post-alignment one:
    the caller names the post-alignment checkpoint and rebirth trains from it."""
    cfg, videos, tmp_path, calls = setup
    aligned = tmp_path / "aligned"
    aligned.mkdir()
    result = rebirth.run_rebirth(
        cfg,
        str(videos),
        str(repo_root / "recipes" / "tiny" / "rebirth_sft.yaml"),
        str(tmp_path / "rebirth-given"),
        progress=False,
        post_alignment=str(aligned),
    )
    (train,) = calls["train"]
    assert train["model_name_or_path"] == str(aligned.resolve()) == result["post_alignment_model"]


def test_rebirth_refuses_a_recipe_that_would_not_start_from_post_alignment(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({"stage": "sft", "adapter_name_or_path": "saves/dpo"}))
    with pytest.raises(ConfigError, match="saves/dpo"):
        rebirth.sft_args(recipe, "post", tmp_path, tmp_path / "o")
    recipe.write_text(yaml.safe_dump({"stage": "dpo"}))
    with pytest.raises(ConfigError, match="'dpo'"):
        rebirth.sft_args(recipe, "post", tmp_path, tmp_path / "o")
    with pytest.raises(ConfigError, match="not found"):
        rebirth.sft_args(tmp_path / "missing.yaml", "post", tmp_path, tmp_path / "o")


def test_rebirth_needs_a_finished_mrdpo_run(tmp_path):
    with pytest.raises(Vs2Error, match="final_model.json"):
        rebirth.final_model(tmp_path)


def test_rebirth_stops_when_every_caption_is_dropped(setup, repo_root):
    cfg, videos, tmp_path, calls = setup
    lines = [json.loads(line) for line in videos.read_text().splitlines() if "good" not in line]
    videos.write_text("".join(json.dumps(row) + "\n" for row in lines))
    with pytest.raises(Vs2Error, match=r"all 4 labels were dropped \((.+: \d+)(, .+: \d+)*;.*give another --out"):
        rebirth.run_rebirth(
            cfg,
            str(videos),
            str(repo_root / "recipes" / "tiny" / "rebirth_sft.yaml"),
            str(tmp_path / "rb"),
            progress=False,
        )
    assert calls["train"] == []


def test_rebirth_checks_its_recipe_before_labelling(setup):
    cfg, videos, tmp_path, calls = setup
    with pytest.raises(ConfigError, match="rebirth recipe not found"):
        rebirth.run_rebirth(cfg, str(videos), str(tmp_path / "nope.yaml"), str(tmp_path / "rb"), progress=False)
    assert not (tmp_path / "rb").exists()  # nothing labelled


@pytest.mark.parametrize("overrides", [{}, {"finetuning_type": "full"}])
def test_rebirth_records_the_model_it_trained(setup, repo_root, overrides):
    """LoRA: the post-alignment model + the trained adapter; full fine-tuning: the trained folder
    alone (what vs2 caption --run and vs2 export --run load)."""
    from vs2_plugin.pipeline.records import finished_model

    cfg, videos, tmp_path, calls = setup
    out = tmp_path / "rebirth"
    recipe = str(repo_root / "recipes" / "tiny" / "rebirth_sft.yaml")
    result = rebirth.run_rebirth(cfg, str(videos), recipe, str(out), progress=False, overrides=overrides)
    aligned = str((tmp_path / "post-align").resolve())
    want = (str(out / "sft"), []) if overrides else (aligned, [str(out / "sft")])
    assert finished_model(out) == want == (result["model"], result["adapters"])


def test_a_rerun_on_labels_of_another_model_or_list_is_refused_a_moved_list_resumes(setup, repo_root):
    """The labels were made by the final mrDPO model from the listed videos with the config's
    sampling settings: a rerun with another of these would tune on a mix, so it is refused."""
    from vs2_plugin.pipeline.caption import run_settings

    cfg, videos, tmp_path, calls = setup
    out = tmp_path / "rebirth"
    recipe = str(repo_root / "recipes" / "tiny" / "rebirth_sft.yaml")
    rebirth.run_rebirth(cfg, str(videos), recipe, str(out), progress=False)
    moved = tmp_path / "moved"
    moved.mkdir()
    for path in tmp_path.glob("*.mp4"):
        path.rename(moved / path.name)
    listing = moved / "videos.jsonl"
    videos.rename(listing)
    rebirth.run_rebirth(cfg, str(listing), recipe, str(out), progress=False)  # the same contents, moved
    assert len(calls["sample"]) == 2 and len(calls["train"]) == 1

    (tmp_path / "mrdpo" / "final_model.json").write_text(
        json.dumps({"model": "/models/post-align", "adapters": ["/r/1"]})
    )
    with pytest.raises(ConfigError, match=r"labels made with other settings: labelling adapters \(its contents"):
        rebirth.run_rebirth(cfg, str(listing), recipe, str(out), progress=False)
    (tmp_path / "mrdpo" / "final_model.json").write_text(
        json.dumps({"model": "/models/post-align", "adapters": ["/r/1", "/r/2"]})
    )
    hotter = dataclasses.replace(cfg, sampling=dataclasses.replace(cfg.sampling, max_new_tokens=7))
    with pytest.raises(ConfigError, match=r"sampling.max_new_tokens \(\d+ -> 7\)"):
        rebirth.run_rebirth(hotter, str(listing), recipe, str(out), progress=False)
    assert len(calls["sample"]) == 2  # nothing labelled by the refused reruns
    # vs2 caption --run on the folder captions with the labelling's prompts and media settings
    settings = run_settings(out)
    assert settings.infer == {"use_audio_in_video": True, **cfg.infer}
    assert (settings.global_prompt, settings.max_new_tokens) == (
        cfg.sampling.global_prompt,
        cfg.sampling.max_new_tokens,
    )


def test_rebirth_keeps_only_natural_whole_captions():
    rows = [
        {"caption": "A red circle appears at the top left."},
        {"caption": "   "},
        {"caption": "Video Description: a tone sounds."},
        {"caption": "A voice says apple and then", "finish_reason": "length"},
        {"caption": "A tone sounds.", "finish_reason": "stop"},
    ]
    from vs2_plugin.pipeline.rebirth import filter_labels

    kept, dropped = filter_labels(rows)
    assert [r["caption"] for r in kept] == ["A red circle appears at the top left.", "A tone sounds."]
    assert [r["reasons"] for r in dropped] == [["empty caption"], ["header"], ["cut off at max_new_tokens"]]
    assert all(r["reasons"] == [] for r in kept)
