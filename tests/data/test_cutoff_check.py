"""The data check's cutoff verdict against LLaMA-Factory's own processors: a sample is bad exactly
when LLaMA-Factory would cut a prompt that holds media, text and replies counted with the template."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from tests.support.paths import REPO
from vs2_plugin.data import dataset_rows, validate
from vs2_plugin.data.train_check import check_training_data, media_limits, template_tokens
from vs2_plugin.errors import DataError

MEDIA = REPO / "vs2_plugin" / "assets" / "demo_data" / "media"
SETTINGS = {"video_fps": 1.0, "video_maxlen": 30, "video_max_pixels": 12544, "use_audio_in_video": True}
TAGS = {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant"}


def _args(model_dir, **extra) -> dict:
    return {"stage": "sft", "template": "video_salmonn2", "model_name_or_path": str(model_dir), **SETTINGS, **extra}


def _limits(args: dict):
    from vs2_plugin.integrations.llamafactory import argument_default

    return media_limits(args, validate.DataCheckArguments(), lambda n: args.get(n, argument_default(n)))


@pytest.fixture(scope="module")
def lf(tiny_model_dir):
    """LLaMA-Factory's supervised and pairwise processors for the tiny model, cutoff set per call."""
    from llamafactory.data import get_template_and_fix_tokenizer
    from llamafactory.data.processor import PairwiseDatasetProcessor, SupervisedDatasetProcessor
    from llamafactory.hparams import get_infer_args
    from llamafactory.model import load_tokenizer

    model_args, data_args, _, _ = get_infer_args(
        {
            "model_name_or_path": str(tiny_model_dir),
            "template": "video_salmonn2",
            "infer_backend": "huggingface",
            **SETTINGS,
        }
    )
    tok = load_tokenizer(model_args)
    template = get_template_and_fix_tokenizer(tok["tokenizer"], data_args)

    def processor(cls, cutoff_len):
        data_args.cutoff_len = cutoff_len
        return cls(template=template, tokenizer=tok["tokenizer"], processor=tok["processor"], data_args=data_args)

    return processor, SupervisedDatasetProcessor, PairwiseDatasetProcessor


def _prompt_kept_whole(lf, kind: str, messages, replies, videos, cutoff_len: int) -> bool:
    """Whether LLaMA-Factory keeps the prompt of the (one-turn) sample whole at ``cutoff_len``."""
    from llamafactory.extras.constants import IGNORE_INDEX

    processor, supervised, pairwise = lf
    prompt = [{"role": "user", "content": messages}]

    def prompt_tokens(cutoff: int) -> int:
        if kind == "sft":
            response = [{"role": "assistant", "content": replies[0]}]
            _, labels = processor(supervised, cutoff)._encode_data_example(prompt, response, None, None, [], videos, [])
            return labels.count(IGNORE_INDEX)
        response = [{"role": "assistant", "content": r} for r in replies]
        _, chosen_labels, _, _ = processor(pairwise, cutoff)._encode_data_example(
            prompt, response, None, None, [], videos, []
        )
        return chosen_labels.count(IGNORE_INDEX)

    return prompt_tokens(cutoff_len) == prompt_tokens(10**6)


def _dataset(folder: Path, rows: list[dict], ranking: bool) -> str:
    folder.mkdir(parents=True)
    (folder / "rows.json").write_text(json.dumps(rows))
    columns = {"messages": "messages", "videos": "videos"}
    if ranking:
        columns |= {"chosen": "chosen", "rejected": "rejected"}
    entry = {"file_name": "rows.json", "formatting": "sharegpt", "columns": columns, "tags": TAGS, "ranking": ranking}
    (folder / "dataset_info.json").write_text(json.dumps({"rows": entry}))
    return str(folder)


@pytest.mark.parametrize("kind", ["sft", "dpo"])
def test_a_sample_is_bad_exactly_when_llamafactory_would_cut_its_prompt(tiny_model_dir, lf, tmp_path, kind):
    video = str(MEDIA / "drawing.mp4")
    limits = _limits(_args(tiny_model_dir))
    assert limits.text_tokens is not None
    prompt = "<video>Describe the video in detail."
    replies = {"short": "A hand draws.", "long": "A hand draws a line across the page, slowly. " * 4}
    seen = set()
    for (a, b), cutoff_len in itertools.product(
        [("short", "short"), ("long", "short"), ("short", "long"), ("long", "long")], range(140, 330, 7)
    ):
        if kind == "sft" and b != "short":
            continue
        pair = (replies[a], replies[b])
        whole = _prompt_kept_whole(lf, kind, prompt, pair, [video], cutoff_len)
        row = {"messages": [{"role": "user", "content": prompt}], "videos": [video]}
        if kind == "sft":
            row["messages"].append({"role": "assistant", "content": pair[0]})
        else:
            row |= {
                "chosen": {"role": "assistant", "content": pair[0]},
                "rejected": {"role": "assistant", "content": pair[1]},
            }
        folder = _dataset(tmp_path / f"{kind}-{a}-{b}-{cutoff_len}", [row], ranking=kind == "dpo")
        spec = dataset_rows.dataset_specs(["rows"], folder)[0]
        limits = _limits(_args(tiny_model_dir, cutoff_len=cutoff_len))
        bad = validate.check_dataset(spec, limits).bad
        assert (not bad) == whole, (a, b, cutoff_len, bad)
        seen.add(whole)
    assert seen == {True, False}  # the cutoffs reach both sides


def test_a_training_run_names_a_sample_whose_caption_would_cut_its_media(tiny_model_dir, tmp_path):
    video = str(MEDIA / "drawing.mp4")
    long_caption = "A hand draws a line across the page, slowly. " * 3  # about 80 tokens: with the prompt over 150
    rows = [
        {
            "messages": [
                {"role": "user", "content": "<video>Describe."},
                {"role": "assistant", "content": "A hand draws."},
            ],
            "videos": [video],
        },
        {
            "messages": [
                {"role": "user", "content": "<video>Describe."},
                {"role": "assistant", "content": long_caption},
            ],
            "videos": [video],
        },
    ]
    folder = _dataset(tmp_path / "data", rows, ranking=False)
    out = tmp_path / "run"
    with pytest.raises(
        DataError, match=r"too long for cutoff_len=150 with its text: the prompt holds \d+ media tokens"
    ):
        check_training_data(
            _args(tiny_model_dir, dataset="rows", dataset_dir=folder, output_dir=str(out), cutoff_len=150)
        )
    listed = [json.loads(line) for line in (out / validate.BAD_FILE).read_text().splitlines()]
    assert [r["index"] for r in listed] == [1]
    assert "so LLaMA-Factory would keep" in listed[0]["reason"]


def test_without_the_tokenizer_offline_only_the_media_are_counted(tmp_path):
    assert template_tokens({"model_name_or_path": str(tmp_path / "nowhere"), "template": "video_salmonn2"}) is None
    assert template_tokens({"model_name_or_path": "", "template": "video_salmonn2"}) is None
