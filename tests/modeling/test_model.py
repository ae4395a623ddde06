"""The tiny video-SALMONN 2 model: forward/backward, freezing, generation, save/load, dtypes."""

from __future__ import annotations

import pytest
import torch

from tests.support.freezing import apply_freezing, lora_modules_to_save, lora_target_modules
from vs2_plugin.modeling import register_auto_classes
from vs2_plugin.modeling.freezing import composite_model_spec


@pytest.fixture(scope="module")
def model(tiny_model_dir):
    from transformers import AutoModelForImageTextToText

    register_auto_classes()
    return AutoModelForImageTextToText.from_pretrained(tiny_model_dir).eval()


def video_audio_sample(config, audio_per_group=(3, 2)):
    """<text> <|vision_start|> (4 video + a_g audio) x 2 groups <|vision_end|> <text>."""
    v, a = config.video_token_id, config.audio_token_id
    ids = [5, 6, config.vision_start_token_id]
    for count in audio_per_group:
        ids += [v] * 4 + [a] * count
    return ids + [config.vision_end_token_id, 7, 8]


def batch(config, rows, *, padding_side="left", videos=0, audio_items=(), segments=None, seed=0):
    generator = torch.Generator().manual_seed(seed)
    pad = config.text_config.pad_token_id
    length = max(len(r) for r in rows)
    ids, mask = [], []
    for r in rows:
        fill = [pad] * (length - len(r))
        ids.append(fill + r if padding_side == "left" else r + fill)
        ones, zeros = [1] * len(r), [0] * len(fill)
        mask.append(zeros + ones if padding_side == "left" else ones + zeros)
    out = dict(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask))
    if videos:
        out["video_grid_thw"] = torch.tensor([[2, 4, 4]] * videos)
        out["pixel_values_videos"] = torch.randn(32 * videos, 1176, generator=generator)
        out["second_per_grid_ts"] = torch.tensor([1.0] * videos)
    if audio_items:
        segments = segments or [1] * len(audio_items)
        out["audio_features"] = torch.randn(sum(segments), 80, 3000, generator=generator)
        out["audio_segment_counts"] = torch.tensor(segments)
        out["audio_token_counts"] = torch.tensor(list(audio_items))
    return out


def test_registered_for_llamafactory_loader(model):
    from transformers import AutoModelForImageTextToText

    assert type(model).__name__ == "VideoSalmonn2ForConditionalGeneration"
    assert type(model.config) in AutoModelForImageTextToText._model_mapping.keys()
    register_auto_classes()  # idempotent


def test_composite_model_names_exist(model):
    spec = composite_model_spec()
    names = [name for name, _ in model.named_modules()]
    for key in (
        spec["projector_keys"] + spec["vision_model_keys"] + spec["language_model_keys"] + spec["lora_conflict_keys"]
    ):
        assert any(key in name for name in names), key
    for key in spec["projector_keys"]:  # LLaMA-Factory resolves projectors by attribute walk
        module = model
        for part in key.split("."):
            module = getattr(module, part)
        assert isinstance(module, torch.nn.Module)


def test_save_load_round_trip(model, tmp_path):
    from transformers import AutoModelForImageTextToText

    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").is_file()
    loaded, info = AutoModelForImageTextToText.from_pretrained(tmp_path, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    ours, theirs = model.state_dict(), loaded.state_dict()
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)
    inputs = batch(model.config, [video_audio_sample(model.config)], videos=1, audio_items=[5])
    with torch.no_grad():
        assert torch.equal(model(**inputs).logits, loaded.eval()(**inputs).logits)


def test_audio_tokens_are_first_k_aligner_outputs_with_segment_embedding(model):
    inner = model.model
    per_segment = model.config.audio_tokens_per_segment
    same = torch.randn(1, 80, 3000).expand(2, -1, -1).contiguous()  # two identical segments
    with torch.no_grad():
        tokens = inner.get_audio_features(same, torch.tensor([2]), torch.tensor([per_segment + 7]))
        states = inner.audio_encoder(same)
        full = inner.audio_aligner(states, torch.tensor([0, 1]))
    assert tokens.shape == (per_segment + 7, model.config.text_config.hidden_size)
    assert torch.equal(tokens, full.reshape(-1, full.shape[-1])[: per_segment + 7])
    # eq. (3): the same audio in segment 0 and segment 1 gives different tokens.
    assert not torch.allclose(full[0], full[1])
    # items are independent: segment numbering restarts for each audio item
    with torch.no_grad():
        two_items = inner.get_audio_features(same, torch.tensor([1, 1]), torch.tensor([4, 4]))
    assert torch.allclose(two_items[:4], two_items[4:])


def test_audio_changes_the_output_and_counts_are_checked(model):
    config = model.config
    row = [5, config.audio_start_token_id] + [config.audio_token_id] * 6 + [config.audio_end_token_id, 9]
    with torch.no_grad():
        first = model(**batch(config, [row], audio_items=[6], seed=1)).logits
        second = model(**batch(config, [row], audio_items=[6], seed=2)).logits
    assert torch.equal(first[:, :2], second[:, :2])  # causal: tokens before the audio are unaffected
    assert not torch.allclose(first[:, -1], second[:, -1])
    with pytest.raises(ValueError, match="Audio features and audio tokens do not match"):
        model(**batch(config, [row], audio_items=[5]))
    with pytest.raises(ValueError, match="audio_segment_counts sum to 2"):
        model(**batch(config, [row], audio_items=[6], segments=[1]) | {"audio_segment_counts": torch.tensor([2])})


def test_forward_backward_alignment_stage(model, tiny_model_dir):
    from transformers import AutoModelForImageTextToText

    trainee = AutoModelForImageTextToText.from_pretrained(tiny_model_dir)
    counts = apply_freezing(trainee, "audio_align")
    assert counts["trainable"] == sum(p.numel() for p in trainee.model.audio_aligner.parameters())
    trainee.train()
    config = trainee.config
    rows = [video_audio_sample(config), video_audio_sample(config, (0, 4))]
    inputs = batch(config, rows, videos=2, audio_items=[5, 4], padding_side="right")
    loss = trainee(**inputs, labels=inputs["input_ids"].masked_fill(inputs["attention_mask"] == 0, -100)).loss
    loss.backward()
    aligner = trainee.model.audio_aligner
    for name in (
        "projection.weight",
        "query_tokens",
        "segment_position.embedding.weight",
        "layers.0.cross_attn.key.weight",
    ):
        grad = aligner.get_parameter(name).grad
        assert grad is not None and grad.abs().sum() > 0, name
    frozen = [p for n, p in trainee.named_parameters() if "audio_aligner" not in n]
    assert frozen and all(p.grad is None and not p.requires_grad for p in frozen)


def test_silent_video_batch_trains_with_zero_aligner_gradient(tiny_model_dir):
    from transformers import AutoModelForImageTextToText

    trainee = AutoModelForImageTextToText.from_pretrained(tiny_model_dir)
    apply_freezing(trainee, "audio_align")
    trainee.train()
    inputs = batch(trainee.config, [video_audio_sample(trainee.config, (0, 0))], videos=1)
    loss = trainee(**inputs, labels=inputs["input_ids"]).loss
    assert torch.isfinite(loss)
    loss.backward()
    grads = [p.grad for p in trainee.model.audio_aligner.parameters()]
    assert all(g is not None and g.abs().sum() == 0 for g in grads)  # touched, so DDP sees every parameter


def test_lora_sft_stage_trains_lora_and_aligner_only(tiny_model_dir):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForImageTextToText

    base = AutoModelForImageTextToText.from_pretrained(tiny_model_dir)
    targets = lora_target_modules(base)
    assert targets and all(name.startswith("model.language_model.") for name in targets)
    peft_model = get_peft_model(
        base, LoraConfig(r=4, lora_alpha=8, target_modules=targets, modules_to_save=lora_modules_to_save("sft"))
    )
    apply_freezing(peft_model, "sft")
    trainable = [n for n, p in peft_model.named_parameters() if p.requires_grad]
    assert any("lora_A" in n for n in trainable) and any("audio_aligner.modules_to_save" in n for n in trainable)
    assert all("lora_" in n or "audio_aligner.modules_to_save" in n for n in trainable)
    peft_model.train()
    config = base.config
    inputs = batch(config, [video_audio_sample(config)], videos=1, audio_items=[5])
    peft_model(**inputs, labels=inputs["input_ids"]).loss.backward()
    lora_b = [p.grad for n, p in peft_model.named_parameters() if "lora_B" in n]
    assert lora_b and all(g is not None for g in lora_b)


def test_generate_matches_full_forward_left_padded(model):
    config = model.config
    text_only = [9, 10, 11, 12]
    inputs = batch(config, [video_audio_sample(config), text_only], videos=1, audio_items=[5])
    prompt_len = inputs["input_ids"].shape[1]
    generated = model.generate(**inputs, max_new_tokens=5, do_sample=False)
    full = dict(
        inputs,
        input_ids=generated,
        attention_mask=torch.cat([inputs["attention_mask"], torch.ones(2, 5, dtype=torch.long)], dim=1),
    )
    with torch.no_grad():
        logits = model(**full).logits
    # decoding with the cache and rope_deltas predicts what one full forward predicts
    assert torch.equal(logits[:, prompt_len - 1 : -1].argmax(-1), generated[:, prompt_len:])


def test_generate_audio_only_and_sampling_expansion(model):
    config = model.config
    row = [5, config.audio_start_token_id] + [config.audio_token_id] * 6 + [config.audio_end_token_id, 9]
    rows = [row, [5, 6, 7] + row]
    inputs = batch(config, rows, audio_items=[6, 6], segments=[1, 2])
    out = model.generate(**inputs, max_new_tokens=3, do_sample=True, top_p=0.9, num_return_sequences=2)
    assert out.shape == (4, inputs["input_ids"].shape[1] + 3)


@pytest.mark.parametrize("padding_side", ["left", "right"])
def test_bf16_forward_with_fp32_audio(tiny_model_dir, padding_side):
    from transformers import AutoModelForImageTextToText

    half = AutoModelForImageTextToText.from_pretrained(tiny_model_dir, dtype=torch.bfloat16).eval()
    config = half.config
    rows = [video_audio_sample(config), [1, 2, 3]]
    inputs = batch(config, rows, videos=1, audio_items=[5], padding_side=padding_side)
    with torch.no_grad():
        logits = half(**inputs).logits
    assert logits.dtype == torch.bfloat16 and torch.isfinite(logits.float()).all()


def test_audio_linear_layers_have_descriptive_names(model):
    # LLaMA-Factory matches LoRA targets by substring; a Linear named "0" would match "layers.0".
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) and ("audio_encoder" in name or "audio_aligner" in name):
            assert not name.rsplit(".", 1)[-1].isdigit(), name


def test_real_audio_through_the_model(model, shared_media):
    """A real clip: 16 kHz mono -> Whisper log-mel of one 30 s segment -> audio-only item."""
    import math

    import whisper

    clip = shared_media / "3.flac"
    if not clip.is_file():
        pytest.skip(f"{clip} not available")
    audio = whisper.load_audio(str(clip))  # 16 kHz mono float32
    duration = len(audio) / whisper.audio.SAMPLE_RATE
    mel = whisper.log_mel_spectrogram(whisper.pad_or_trim(audio), n_mels=80)[None]
    assert mel.shape == (1, 80, 3000)
    kept = math.ceil(duration / model.config.audio_window_s)  # windows that cover real audio
    config = model.config
    row = [5, config.audio_start_token_id] + [config.audio_token_id] * kept + [config.audio_end_token_id, 9]
    inputs = dict(
        input_ids=torch.tensor([row]),
        attention_mask=torch.ones(1, len(row), dtype=torch.long),
        audio_features=mel,
        audio_segment_counts=torch.tensor([1]),
        audio_token_counts=torch.tensor([kept]),
    )
    out = model.generate(**inputs, max_new_tokens=2, do_sample=False)
    assert out.shape == (1, len(row) + 2)


def test_split_audio_items_by_sample():
    from vs2_plugin.modeling.model import _split_items_by_tokens

    assert _split_items_by_tokens([5, 4, 6], [9, 6]) == [[0, 1], [2]]
    assert _split_items_by_tokens([0, 5, 0, 6], [5, 0, 6]) == [[0, 1, 2], [], [3]]
    with pytest.raises(ValueError, match="span two samples"):
        _split_items_by_tokens([5, 4], [3, 6])
    with pytest.raises(ValueError, match="more audio items"):
        _split_items_by_tokens([5, 4], [5])


def test_expand_for_multiple_return_sequences_keeps_audio_with_its_sample(model):
    config = model.config
    a = [5, config.audio_start_token_id] + [config.audio_token_id] * 6 + [config.audio_end_token_id]
    b = [5, config.audio_start_token_id] + [config.audio_token_id] * 3 + [config.audio_end_token_id] + [6, 7, 8]
    inputs = batch(config, [a, b], audio_items=[6, 3], segments=[1, 2])
    ids, expanded = model._expand_inputs_for_generation(
        expand_size=2,
        input_ids=inputs["input_ids"],
        attention_mask=inputs["attention_mask"],
        **{k: inputs[k] for k in ("audio_features", "audio_segment_counts", "audio_token_counts")},
    )
    assert ids.shape[0] == 4 and torch.equal(ids[0], ids[1]) and torch.equal(ids[2], inputs["input_ids"][1])
    assert expanded["audio_segment_counts"].tolist() == [1, 1, 2, 2]
    assert expanded["audio_token_counts"].tolist() == [6, 6, 3, 3]
    feats = inputs["audio_features"]
    assert torch.equal(expanded["audio_features"], torch.cat([feats[:1], feats[:1], feats[1:], feats[1:]]))
