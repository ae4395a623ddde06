"""The bad-sample pass before a training run (``vs2_bad_samples``; see :mod:`vs2_plugin.data.validate`).

The LLaMA-Factory integration calls :func:`check_training_data` with the run's arguments before
training starts; it reads the datasets through their ``dataset_info.json`` and may point the run
at filtered copies. Nothing here imports LLaMA-Factory but the multimodal plugin, whose rule on
a video's audio track is read for a run that drops that track (``use_audio_in_video: false``).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vs2_plugin.pipeline.run_args import stage_of


def _is_main_rank() -> bool:
    return os.environ.get("RANK", "0") in ("", "0")


def _model_audio_limits(args: dict[str, Any]) -> dict[str, Any]:
    """Audio token settings of the model (its config, as the multimodal plugin reads it), as
    ``vs2 tokens`` settings (:mod:`vs2_plugin.data.token_report`); empty when the model takes no audio."""
    from vs2_plugin.data.model_audio import model_audio_settings

    settings = model_audio_settings(str(args.get("model_name_or_path") or ""))
    if not settings.enabled:
        return {}
    return {
        "window_s": settings.window_s,
        "queries_per_window": settings.queries_per_window,
        "segment_s": settings.segment_s,
    }


def _model_folder(name: str) -> str | None:
    """The local folder of the checkpoint ``name``: the folder itself, or a hub id's snapshot in the
    hub cache (its config is there once the audio settings were read); None when neither."""
    if not name or Path(name).is_dir():
        return name or None
    from huggingface_hub import try_to_load_from_cache

    try:
        found = try_to_load_from_cache(name, "config.json")
    except ValueError:  # not a repository id either
        return None
    return str(Path(found).parent) if isinstance(found, str) else None


def _token_settings(args: dict[str, Any], audio: dict[str, Any], given: Callable[[str], Any]) -> dict[str, Any]:
    """The ``vs2 tokens`` settings (:mod:`vs2_plugin.data.token_report`) the run's media tokens are
    counted under: the model folder's processor, its audio windows and the run's frame settings."""
    from vs2_plugin.data.token_report import model_settings

    folder = _model_folder(str(args.get("model_name_or_path") or ""))
    settings = model_settings(folder) if folder else {}
    settings.update(audio)
    settings.update(
        fps=float(given("video_fps")),
        max_frames=int(given("video_maxlen")),
        video_max_pixels=int(given("video_max_pixels")),
        video_min_pixels=int(given("video_min_pixels")),
    )
    return settings


class TemplateTokens:
    """How many tokens the run's chat template makes of a sample's text: the ``text_lengths`` of
    :func:`vs2_plugin.data.cutoff.dialogue_turns` (LLaMA-Factory's ``encode_multiturn``, which its
    processors cut to ``cutoff_len``)."""

    def __init__(self, tokenizer, template):
        self.tokenizer, self.template = tokenizer, template
        self.efficient_eos = bool(template.efficient_eos)

    def __call__(self, system: str | None, messages: tuple[tuple[str, str], ...]) -> list[tuple[int, int]]:
        encoded = self.template.encode_multiturn(
            self.tokenizer, [{"role": role, "content": text} for role, text in messages], system or None, None
        )
        return [(len(source), len(target)) for source, target in encoded]


def template_tokens(args: dict[str, Any]) -> TemplateTokens | None:
    """The run's :class:`TemplateTokens`: its model's tokenizer (a local folder, or a hub id in the
    cache) and its ``template``; None when either cannot be had offline (the media are then checked
    against ``cutoff_len`` alone)."""
    folder = _model_folder(str(args.get("model_name_or_path") or ""))
    if not folder or not args.get("template"):
        return None
    from transformers import AutoTokenizer

    from vs2_plugin.integrations.llamafactory_api import DataArguments, get_template_and_fix_tokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(folder)
        template = get_template_and_fix_tokenizer(tokenizer, DataArguments(template=str(args["template"])))
    except (OSError, ValueError):  # no tokenizer files, an unknown template: training reports it
        return None
    return TemplateTokens(tokenizer, template)


def check_training_data(
    args: dict[str, Any], lf_defaults: Callable[[str], Any] | None = None, announce: bool = True
) -> dict[str, Any]:
    """The bad-sample pass before training (``vs2_bad_samples``; see :mod:`vs2_plugin.data.validate`).

    Pops the data-check keys from ``args``, reads the run's datasets (``dataset``,
    ``eval_dataset`` and gDPO's ``gt_dataset``) through their ``dataset_info.json``, checks
    every row and media file, and writes ``data_check.json`` (counts) to ``output_dir``.
    ``fail``: any bad sample stops the run (DataError, one line; all are listed in
    ``bad_samples.jsonl``). ``skip``: bad samples are listed in ``skipped_samples.jsonl`` and
    the run is pointed at a filtered copy of its datasets in ``output_dir/vs2_data``.
    Arguments the run leaves out take LLaMA-Factory's defaults: ``lf_defaults(name)``, by default
    :func:`vs2_plugin.integrations.llamafactory.argument_default`.
    ``announce``: say on stderr how many samples ``skip`` left out and where they are listed.
    Returns the (possibly rewritten) args.
    """
    from vs2_plugin.data import dataset_rows, validate
    from vs2_plugin.errors import DataError

    args = dict(args)
    opts = validate.DataCheckArguments.pop_from(args)
    if opts.vs2_bad_samples == "off" or not args.get("output_dir"):
        return args
    if lf_defaults is None:
        from vs2_plugin.integrations.llamafactory import argument_default as lf_defaults

    def given(name: str) -> Any:  # the run's value, else LLaMA-Factory's default (never re-typed here)
        value = args.get(name)
        return lf_defaults(name) if value is None or value == "" else value

    limits = media_limits(args, opts, given)
    dataset_dir = str(given("dataset_dir"))
    media_dir = args.get("media_dir")
    groups = dataset_groups(args, dataset_dir)
    checks: dict[str, list] = {}
    for group, keys, _dir_key, folder in groups:
        names = [n for key in keys for n in dataset_rows.split_names(args.get(key))]
        if names and folder != "ONLINE" and not folder.startswith("REMOTE:"):
            specs = dataset_rows.dataset_specs(list(dict.fromkeys(names)), folder, media_dir)
            checks[group] = [validate.check_dataset(spec, limits) for spec in specs]
    results = [c for group in checks.values() for c in group]
    bad = [b for c in results for b in c.bad]
    total = sum(c.total for c in results)
    out = Path(str(args["output_dir"]))
    skipped_rows = len({(b.dataset, b.index) for b in bad})
    summary = {
        "policy": opts.vs2_bad_samples,
        "samples": total,
        "bad": skipped_rows,
        "datasets": {
            c.spec.name: {"samples": c.total, "bad": len({b.index for b in c.bad}), "checked": c.checked}
            for c in results
        },
    }
    if opts.vs2_bad_samples == "fail":
        listed = out / validate.BAD_FILE if bad else None
        validate.write_json(out / validate.SUMMARY_FILE, summary)
        if bad:
            validate.write_jsonl(listed, [b.to_dict() for b in bad])
            raise DataError(validate.fail_message(bad, listed, total))
        return args
    summary["skipped"] = skipped_rows
    summary["skipped_list"] = str(out / validate.SKIPPED_FILE)
    validate.write_jsonl(out / validate.SKIPPED_FILE, [b.to_dict() for b in bad])
    validate.write_json(out / validate.SUMMARY_FILE, summary)
    if bad and announce and _is_main_rank():
        print(
            f"[vs2_plugin] vs2_bad_samples=skip: left out {skipped_rows} of {total} samples "
            f"(listed in {out / validate.SKIPPED_FILE})",
            file=sys.stderr,
            flush=True,
        )
    if not bad:
        return args
    for c in results:
        if c.checked and not c.good_rows:
            raise DataError(
                f"dataset {c.spec.name!r}: all {c.total} samples are bad (listed in "
                f"{out / validate.SKIPPED_FILE}); nothing left to train on"
            )
    if not media_dir:  # the copies' unchecked datasets still read their media from where they were
        args["media_dir"] = dataset_dir
    for group, _keys, dir_key, folder in groups:
        args[dir_key] = str(write_filtered_copy(out / validate.FILTERED_DIR / group, folder, checks.get(group) or []))
    return args


def media_limits(args: dict[str, Any], opts, given: Callable[[str], Any]):
    """The :class:`~vs2_plugin.data.validate.MediaLimits` a run's media are checked against: the
    data check's ``opts``, the model's audio windows and processor, and the run's frame settings
    and ``cutoff_len`` (``given(name)``: the run's value or LLaMA-Factory's default)."""
    from vs2_plugin.data import validate

    audio = _model_audio_limits(args)
    use_audio_in_video = str(args.get("use_audio_in_video", False)).lower() in ("true", "1")
    refuse_video_audio = False
    if audio and not use_audio_in_video:
        from vs2_plugin.data.mm_plugin import ignore_video_audio  # the plugin's own opt-out

        refuse_video_audio = not ignore_video_audio()
    return validate.MediaLimits(
        min_duration_s=opts.vs2_min_duration_s,
        max_duration_s=opts.vs2_max_duration_s,
        require_video_audio=opts.vs2_require_audio and use_audio_in_video,
        max_media_tokens=int(given("cutoff_len")),
        token_settings=tuple(sorted(_token_settings(args, audio, given).items())),
        video_audio_tokens=bool(audio) and use_audio_in_video,
        refuse_video_audio=refuse_video_audio,
        decode=opts.vs2_check_decode,
        text_tokens=template_tokens(args),
    )


def dataset_groups(args: dict[str, Any], dataset_dir: str) -> list[tuple[str, list[str], str, str]]:
    """(group, dataset keys, folder key, folder) of the datasets a run reads: the training (and
    evaluation) datasets, and a gDPO round's ground-truth captions, which have a folder of their own."""
    groups = [("train", ["dataset", "eval_dataset"], "dataset_dir", dataset_dir)]
    if stage_of(args) == "gdpo" and args.get("gt_dataset"):
        groups.append(("gt", ["gt_dataset"], "gt_dataset_dir", str(args.get("gt_dataset_dir") or dataset_dir)))
    return groups


def write_filtered_copy(target: Path, folder: str, checks: list) -> Path:
    """``folder``'s ``dataset_info.json`` in ``target``, each checked dataset of ``checks`` replaced by
    its good rows (media paths absolute), every other entry pointing back at its file in ``folder``."""
    from vs2_plugin.data import dataset_rows, validate

    info = dataset_rows.load_dataset_info(folder)
    for name, entry in info.items():
        if isinstance(entry, dict) and "file_name" in entry:
            info[name] = {**entry, "file_name": os.path.abspath(os.path.join(folder, entry["file_name"]))}
    for c in checks:
        if c.checked:
            validate.write_json(target / f"{c.spec.name}.json", c.good_rows)
            info[c.spec.name] = {**info[c.spec.name], "file_name": f"{c.spec.name}.json"}
    validate.write_json(target / "dataset_info.json", info)
    return target
