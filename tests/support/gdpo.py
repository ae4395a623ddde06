"""Helpers shared by the gDPO tests: tiny models, argument dicts, parsed LLaMA-Factory pieces."""

from __future__ import annotations

from types import SimpleNamespace

from tests.support.paths import REPO

DEMO = REPO / "vs2_plugin" / "assets" / "demo_data" / "gdpo"


def text_args(model_dir, output_dir, **overrides) -> dict:
    """A gDPO round on the tiny text model with the bundled text demo pairs."""
    args = dict(
        stage="gdpo",
        model_name_or_path=str(model_dir),
        do_train=True,
        finetuning_type="lora",
        lora_rank=4,
        lora_alpha=8,
        lora_target="q_proj,k_proj,v_proj",
        pref_beta=0.1,
        dataset="vs2_demo_gdpo_pairs_text",
        gt_dataset="vs2_demo_gdpo_gt_text",
        gdpo_lambda=0.1,
        dataset_dir=str(DEMO),
        template="qwen",
        cutoff_len=512,
        output_dir=str(output_dir),
        per_device_train_batch_size=2,
        per_device_eval_batch_size=2,
        max_steps=3,
        learning_rate=1e-3,
        lr_scheduler_type="constant",
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        bf16=False,
        preprocessing_num_workers=1,
        dataloader_num_workers=0,
        disable_tqdm=True,
        seed=42,
    )
    args.update(overrides)
    return args


def av_args(model_dir, output_dir, **overrides) -> dict:
    """The same on the tiny audio-visual model with the bundled demo videos."""
    args = text_args(
        model_dir,
        output_dir,
        dataset="vs2_demo_gdpo_pairs",
        gt_dataset="vs2_demo_gdpo_gt",
        template="video_salmonn2",
        cutoff_len=2048,
        freeze_vision_tower=True,
        video_fps=1.0,
        video_maxlen=30,
        video_max_pixels=12544,
        use_audio_in_video=True,
        per_device_train_batch_size=1,
    )
    args.update(overrides)
    return args


def load_pieces(args: dict) -> SimpleNamespace:
    """Parse like the stage does and load tokenizer, template, pairs (+ gt), and the LoRA model."""
    from llamafactory.data import get_dataset, get_template_and_fix_tokenizer
    from llamafactory.hparams import get_train_args
    from llamafactory.model import load_model, load_tokenizer

    from vs2_plugin.gdpo.config import GDPOArguments
    from vs2_plugin.gdpo.gtdata import attach_gt
    from vs2_plugin.gdpo.workflow import load_gt_dataset

    args = dict(args)
    gdpo_args = GDPOArguments.pop_from(args)
    args["stage"] = "dpo"
    model_args, data_args, training_args, finetuning_args, _ = get_train_args(args)
    tokenizer_module = load_tokenizer(model_args)
    template = get_template_and_fix_tokenizer(tokenizer_module["tokenizer"], data_args)
    pairs = get_dataset(template, model_args, data_args, training_args, stage="rm", **tokenizer_module)["train_dataset"]
    gt = load_gt_dataset(template, model_args, data_args, training_args, gdpo_args, tokenizer_module)
    pairs = attach_gt(pairs, gt, gdpo_args.gt_sampling, seed=0)
    model = load_model(tokenizer_module["tokenizer"], model_args, finetuning_args, is_trainable=True)
    return SimpleNamespace(
        model_args=model_args,
        data_args=data_args,
        training_args=training_args,
        finetuning_args=finetuning_args,
        gdpo_args=gdpo_args,
        tokenizer_module=tokenizer_module,
        template=template,
        pairs=pairs,
        model=model,
    )


def collator(pieces, pack: bool):
    from vs2_plugin.gdpo.packing import GDPODataCollator

    return GDPODataCollator(
        template=pieces.template,
        model=pieces.model,
        pad_to_multiple_of=8,
        label_pad_token_id=-100,
        pack_prompt=pack,
        **pieces.tokenizer_module,
    )


def perturb_lora(model, seed: int = 0, scale: float = 0.05) -> None:
    """Make the LoRA non-zero so policy and reference differ."""
    import torch

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.add_(torch.randn(param.shape, generator=g) * scale)
