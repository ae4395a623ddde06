"""The LLaMA-Factory functions and classes the rest of the package uses, re-exported from here.

Outside :mod:`vs2_plugin.integrations` nothing imports ``llamafactory``: a module that needs,
say, ``load_model`` writes ``from vs2_plugin.integrations.llamafactory_api import load_model``.
Names are resolved on first use (PEP 562 module ``__getattr__``), so importing this module is
cheap and each LLaMA-Factory module is imported only when something of it is needed; the first
use checks the installed version (:func:`vs2_plugin.integrations.llamafactory.check_version`).
A LLaMA-Factory upgrade that moves one of these names changes :data:`EXPORTS` only.
"""

from __future__ import annotations

import importlib
from typing import Any

#: re-exported name -> the LLaMA-Factory module that defines it
EXPORTS: dict[str, str] = {
    # arguments
    "get_train_args": "llamafactory.hparams",
    "get_infer_args": "llamafactory.hparams",
    "DataArguments": "llamafactory.hparams",
    # data
    "get_dataset": "llamafactory.data",
    "get_template_and_fix_tokenizer": "llamafactory.data",
    "MultiModalDataCollatorForSeq2Seq": "llamafactory.data.collator",
    "PairwiseDataCollatorWithPadding": "llamafactory.data.collator",
    "Qwen2VLPlugin": "llamafactory.data.mm_plugin",
    "IGNORE_INDEX": "llamafactory.extras.constants",
    # model
    "load_model": "llamafactory.model",
    "load_tokenizer": "llamafactory.model",
    # training
    "CustomDPOTrainer": "llamafactory.train.dpo.trainer",
    "LogCallback": "llamafactory.train.callbacks",
    "create_modelcard_and_push": "llamafactory.train.trainer_utils",
    "create_ref_model": "llamafactory.train.trainer_utils",
    "export_model": "llamafactory.train.tuner",
    "plot_loss": "llamafactory.extras.ploting",
}

__all__ = sorted(EXPORTS)

_checked = False


def __getattr__(name: str) -> Any:
    global _checked
    module = EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if not _checked:
        from vs2_plugin.integrations.llamafactory import check_version

        check_version()
        _checked = True
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(EXPORTS))
