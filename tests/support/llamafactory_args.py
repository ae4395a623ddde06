"""Parse a recipe's arguments with LLaMA-Factory's own parser (as `llamafactory-cli train` does)."""

from __future__ import annotations

import json

from tests.support.paths import REPO


def parse_llamafactory(args: dict) -> None:
    from llamafactory.hparams.parser import _TRAIN_ARGS, HfArgumentParser

    from vs2_plugin.gdpo.config import GDPOArguments
    from vs2_plugin.integrations.llamafactory import STAGES, _apply_forced

    args = dict(args)
    stage = args.get("stage")
    if stage in STAGES:
        _apply_forced(STAGES[stage], args)
        if stage == "gdpo":
            GDPOArguments.pop_from(args)
        args["stage"] = STAGES[stage].base
    deepspeed = args.pop("deepspeed", None)  # parsing it would import deepspeed (an extra)
    if deepspeed:
        assert (REPO / deepspeed).is_file(), f"deepspeed config {deepspeed} not found"
        json.loads((REPO / deepspeed).read_text())
    import torch

    if not torch.cuda.is_available():  # bf16 needs a GPU to validate; the keys and types are what we check
        args.update({"bf16": False, "use_cpu": True})
    HfArgumentParser(_TRAIN_ARGS).parse_dict(args, allow_extra_keys=False)
