"""The video_salmonn2 template and multimodal plugin inside LLaMA-Factory's data pipeline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from vs2_plugin.data import media
from vs2_plugin.errors import DataError, MediaError
from vs2_plugin.modeling import interleave


def _train_args(model_dir, dataset_dir, out_dir, **extra):
    from llamafactory.hparams import get_train_args

    args = {
        "model_name_or_path": str(model_dir),
        "stage": "sft",
        "do_train": True,
        "finetuning_type": "lora",
        "lora_target": "q_proj,v_proj",
        "additional_target": "audio_aligner",
        "dataset": "av",
        "dataset_dir": str(dataset_dir),
        "template": "video_salmonn2",
        "cutoff_len": 4096,
        "output_dir": str(out_dir),
        "video_fps": 1.0,
        "video_maxlen": 30,
        "video_max_pixels": 12544,
        "use_audio_in_video": True,
        "report_to": "none",
        "use_cpu": True,
        "overwrite_output_dir": True,
        "preprocessing_num_workers": None,
        "per_device_train_batch_size": 2,
    }
    args.update(extra)
    return get_train_args(args)


def _write_dataset(tmp_path: Path, rows: list[dict], ranking: bool = False) -> Path:
    d = tmp_path / "data"
    d.mkdir(exist_ok=True)
    (d / "av.json").write_text(json.dumps(rows))
    cols = {k: k for k in ("messages", "videos", "audios") if k in rows[0]}
    if ranking:
        cols.update({"chosen": "chosen", "rejected": "rejected"})
    info = {
        "av": {
            "file_name": "av.json",
            "formatting": "sharegpt",
            "columns": cols,
            "ranking": ranking,
            "tags": {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant"},
        }
    }
    (d / "dataset_info.json").write_text(json.dumps(info))
    return d


def _row(video=None, audio=None, answer="A caption."):
    prompt = ("<video>" if video else "") + ("<audio>" if audio else "") + "Describe it."
    row = {
        "messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}],
        "videos": [str(video)] if video else [],
        "audios": [str(audio)] if audio else [],
    }
    return row


@pytest.fixture(scope="module")
def pipeline(tiny_model_dir):
    from llamafactory.data import get_template_and_fix_tokenizer
    from llamafactory.model import load_tokenizer

    model_args, data_args, training_args, finetuning_args, _ = _train_args(tiny_model_dir, "/tmp", "/tmp/vs2-unused")
    tok_module = load_tokenizer(model_args)
    template = get_template_and_fix_tokenizer(tok_module["tokenizer"], data_args)
    return {
        "tokenizer": tok_module["tokenizer"],
        "processor": tok_module["processor"],
        "template": template,
        "model_args": model_args,
    }


def _runs(ids, tokenizer):
    names = {
        tokenizer.convert_tokens_to_ids("<|video_pad|>"): "video",
        tokenizer.convert_tokens_to_ids("<|audio_pad|>"): "audio",
    }
    runs = []
    for t in ids:
        kind = names.get(t)
        if kind is None:
            continue
        if runs and runs[-1][0] == kind:
            runs[-1][1] += 1
        else:
            runs.append([kind, 1])
    return [tuple(r) for r in runs]


def test_video_expands_to_time_interleaved_tokens(pipeline, shared_media):
    plugin, processor, tok = pipeline["template"].mm_plugin, pipeline["processor"], pipeline["tokenizer"]
    path = str(shared_media / "4_av.mp4")
    msgs = plugin.process_messages([{"role": "user", "content": "<video>Describe."}], [], [path], [], processor)
    ids = tok.encode(msgs[0]["content"], add_special_tokens=False)
    info = media.probe(path)
    n = media.frame_count(info.duration_s, 1.0, 30, 2)
    plan = interleave.interleave_plan(info.duration_s, n, window_s=0.2, audio_duration_s=info.audio_duration_s)
    vp = plugin.video_plan(path, processor)
    expected = interleave.placeholder_layout(vp.visual_tokens_per_group, plan.audio_tokens_per_group)
    assert _runs(ids, tok) == expected
    assert sum(c for k, c in expected if k == "audio") == interleave.audio_token_count(info.audio_duration_s, 0.2)
    assert expected[0][0] == "video" and len(expected) >= 4  # frames first, audio after each group


def test_silent_video_and_flag_off_with_opt_out_give_plain_visual_layout(pipeline, shared_media, monkeypatch):
    plugin, processor, tok = pipeline["template"].mm_plugin, pipeline["processor"], pipeline["tokenizer"]
    silent = plugin.process_messages(
        [{"role": "user", "content": "<video>x"}], [], [str(shared_media / "1.mp4")], [], processor
    )
    assert [k for k, _ in _runs(tok.encode(silent[0]["content"]), tok)] == ["video"]
    processor.use_audio_in_video = False
    try:  # the audio is never dropped in silence: refused, unless explicitly opted out
        with pytest.raises(DataError, match=r"4_av.mp4: the video has an audio track .* use_audio_in_video is false"):
            plugin.process_messages(
                [{"role": "user", "content": "<video>x"}], [], [str(shared_media / "4_av.mp4")], [], processor
            )
        monkeypatch.setenv("VS2_IGNORE_VIDEO_AUDIO", "1")
        off = plugin.process_messages(
            [{"role": "user", "content": "<video>x"}], [], [str(shared_media / "4_av.mp4")], [], processor
        )
    finally:
        processor.use_audio_in_video = True
    assert [k for k, _ in _runs(tok.encode(off[0]["content"]), tok)] == ["video"]


def test_audio_only_item_is_a_block_of_kept_tokens(pipeline, shared_media):
    plugin, processor, tok = pipeline["template"].mm_plugin, pipeline["processor"], pipeline["tokenizer"]
    path = shared_media / "3.flac"
    msgs = plugin.process_messages([{"role": "user", "content": "<audio>Transcribe."}], [], [], [str(path)], processor)
    ids = tok.encode(msgs[0]["content"])
    info = media.probe(path)
    assert _runs(ids, tok) == [("audio", interleave.audio_token_count(info.duration_s, 0.2))]
    assert ids[0] == tok.convert_tokens_to_ids("<|audio_start|>")


def test_placeholder_mismatch_names_the_sample(pipeline, shared_media):
    plugin, processor = pipeline["template"].mm_plugin, pipeline["processor"]
    with pytest.raises(DataError, match=r"2 <video> placeholder\(s\) but 1 videos given .*4_av.mp4"):
        plugin.process_messages(
            [{"role": "user", "content": "<video><video>x"}], [], [str(shared_media / "4_av.mp4")], [], processor
        )
    with pytest.raises(MediaError, match="no_such_clip.mp4"):
        plugin.process_messages(
            [{"role": "user", "content": "<video>x"}], [], ["/nonexistent/no_such_clip.mp4"], [], processor
        )
    with pytest.raises(MediaError, match=r"3.flac: no video stream"):
        plugin.process_messages(
            [{"role": "user", "content": "<video>x"}], [], [str(shared_media / "3.flac")], [], processor
        )


@pytest.mark.slow
def test_forward_backward_through_llamafactory_pipeline(tiny_model_dir, shared_media, tmp_path):
    """Real clips (one with 6-channel 48 kHz audio) -> get_dataset -> collator -> model."""
    from llamafactory.data import SFTDataCollatorWith4DAttentionMask, get_dataset, get_template_and_fix_tokenizer
    from llamafactory.model import load_model, load_tokenizer

    rows = [
        _row(shared_media / "4_av.mp4"),
        _row(shared_media / "bigbuckbunny.mp4"),
        _row(audio=shared_media / "2.wav"),
    ]
    data_dir = _write_dataset(tmp_path, rows)
    model_args, data_args, training_args, finetuning_args, _ = _train_args(tiny_model_dir, data_dir, tmp_path / "out")
    tok_module = load_tokenizer(model_args)
    template = get_template_and_fix_tokenizer(tok_module["tokenizer"], data_args)
    dataset = get_dataset(template, model_args, data_args, training_args, stage="sft", **tok_module)["train_dataset"]
    model = load_model(tok_module["tokenizer"], model_args, finetuning_args, is_trainable=True)
    collator = SFTDataCollatorWith4DAttentionMask(template=template, model=model, label_pad_token_id=-100, **tok_module)
    media.reset_decode_counts()
    batch = collator([dataset[i] for i in range(3)])
    assert media.decode_count() == 3  # each file decoded once
    assert batch["audio_features"].shape[0] == 3 and batch["audio_segment_counts"].tolist() == [1, 1, 1]
    assert batch["position_ids"].dim() == 3
    out = model(**batch)
    assert torch.isfinite(out.loss)
    out.loss.backward()
    aligner_grads = [p.grad for n, p in model.named_parameters() if "audio_aligner" in n and p.requires_grad]
    assert aligner_grads and any(g is not None and g.abs().sum() > 0 for g in aligner_grads)
    frozen_with_grad = [n for n, p in model.named_parameters() if not p.requires_grad and p.grad is not None]
    assert not frozen_with_grad


@pytest.mark.slow
def test_pairwise_collation_decodes_each_video_once(tiny_model_dir, shared_media, tmp_path):
    from llamafactory.data import PairwiseDataCollatorWithPadding, get_dataset, get_template_and_fix_tokenizer
    from llamafactory.model import load_model, load_tokenizer

    video = str(shared_media / "4_av.mp4")
    row = {
        "messages": [{"role": "user", "content": "<video>Describe."}],
        "videos": [video],
        "chosen": {"role": "assistant", "content": "A drawing of a guitar."},
        "rejected": {"role": "assistant", "content": "A cat."},
    }
    data_dir = _write_dataset(tmp_path, [row, dict(row)], ranking=True)
    model_args, data_args, training_args, finetuning_args, _ = _train_args(
        tiny_model_dir, data_dir, tmp_path / "out", stage="dpo"
    )
    tok_module = load_tokenizer(model_args)
    template = get_template_and_fix_tokenizer(tok_module["tokenizer"], data_args)
    media.reset_decode_counts()
    dataset = get_dataset(template, model_args, data_args, training_args, stage="rm", **tok_module)["train_dataset"]
    assert media.decode_count() == 0  # preprocessing counts tokens from metadata only
    model = load_model(tok_module["tokenizer"], model_args, finetuning_args, is_trainable=False)
    collator = PairwiseDataCollatorWithPadding(template=template, model=model, label_pad_token_id=-100, **tok_module)
    batch = collator([dataset[0], dataset[1]])
    assert media.decode_count(video) == 1  # 2 pairs x (chosen, rejected) share one decode
    assert batch["input_ids"].shape[0] == 4 and batch["audio_features"].shape[0] == 4
