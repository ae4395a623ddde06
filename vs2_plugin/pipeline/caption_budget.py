"""How many new tokens the pipeline's captions get: room for the longest reference caption.

Every caption the pipeline samples or evaluates stops at ``sampling.max_new_tokens``. A plan's
``auto`` budget is the longest reference caption of its clips plus its EOS, rounded up
(:func:`auto_budget`), recorded once in the run folder (:data:`CAPTION_BUDGET`); an explicit
budget is checked against that reference before any training (:func:`check_caption_budget`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from vs2_plugin.errors import ConfigError, Vs2Error
from vs2_plugin.pipeline.videos import load_videos

if TYPE_CHECKING:
    from vs2_plugin.pipeline.plan import PipelinePlan

#: ``sampling.max_new_tokens`` of a plan: room for the longest reference caption of its clips
AUTO_BUDGET = "auto"
#: where :func:`vs2_plugin.pipeline.demo.run_pipeline` records that budget (a run folder's file)
CAPTION_BUDGET = "caption_budget.json"


def longest_reference(tokenizer_dir: Path, listings: list[Path]) -> tuple[int, str, Path]:
    """(token count, clip id, its listing) of the longest reference caption in ``listings``;
    ConfigError when no clip has one (the pipeline's stages train and judge on references)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    longest, clip, where = 0, "", None
    for listing in listings:
        for video in load_videos(listing):
            n = len(tokenizer(video.reference or "", add_special_tokens=False)["input_ids"])
            if n > longest:
                longest, clip, where = n, video.id, listing
    if where is None:
        raise ConfigError(
            f"no clip of {', '.join(map(str, listings))} has a reference caption: the pipeline trains and "
            "judges on references, and sets its caption budget from the longest"
        )
    return longest, clip, where


def budget_is_auto(plan: "PipelinePlan") -> bool:
    """Whether the plan's rounds caption with the :data:`AUTO_BUDGET`."""
    return plan.mrdpo.get("sampling", {}).get("max_new_tokens") == AUTO_BUDGET


def auto_budget(longest: int, step: int = 32) -> int:
    """``max_new_tokens`` for references of at most ``longest`` tokens: room for the longest and
    its EOS, rounded up to a multiple of ``step`` (a caption a little longer than every reference
    is not cut off). 243 -> 256 (seed 0 of the learning benchmark), 257 -> 288."""
    return -(-(longest + 1) // step) * step


def caption_budget(out: Path) -> int:
    """The ``auto`` caption budget of the run folder ``out`` (written by :func:`vs2_plugin.pipeline.demo.run_pipeline`)."""
    path = out / CAPTION_BUDGET
    if not path.exists():
        raise Vs2Error(
            f"{path} is missing: run_pipeline writes the caption budget (sampling.max_new_tokens: "
            f"{AUTO_BUDGET!r}) once the clips and the tokenizer exist"
        )
    return int(json.loads(path.read_text(encoding="utf-8"))["max_new_tokens"])


def check_caption_budget(tokenizer_dir: Path, listings: list[Path], max_new_tokens: int) -> int:
    """The token count of the longest reference caption in ``listings`` (video lists); raises
    ConfigError, naming the clip, when it does not fit in ``max_new_tokens`` (its EOS included).

    Every caption the pipeline samples or evaluates stops at ``sampling.max_new_tokens``: a budget
    shorter than the clips' captions cuts every long caption off (its last events counted missed,
    rebirth dropping it as cut off), and the preference rounds then learn from truncated captions.
    """
    longest, clip, listing = longest_reference(tokenizer_dir, listings)
    where = f"{clip} of {listing}"
    if longest + 1 > max_new_tokens:
        raise ConfigError(
            f"sampling.max_new_tokens={max_new_tokens} cannot hold the longest reference caption "
            f"({longest} tokens + EOS, clip {where}): captions would be cut off; raise it to at least {longest + 1}"
        )
    return longest
