"""Fixtures of the gDPO tests: the argument dicts of a tiny gDPO round and the pieces parsed from
them, as functions (a test builds several, with its own overrides). The code is in
``tests.support.gdpo``; other folders that need one of them import it from there."""

from __future__ import annotations

import pytest

from tests.support import gdpo


@pytest.fixture(scope="session")
def text_args():
    """``text_args(model_dir, output_dir, **overrides)``: a round on the tiny text model with the demo pairs."""
    return gdpo.text_args


@pytest.fixture(scope="session")
def av_args():
    """``av_args(model_dir, output_dir, **overrides)``: the same on the tiny audio-visual model and demo videos."""
    return gdpo.av_args


@pytest.fixture(scope="session")
def load_pieces():
    """``load_pieces(args)``: parse like the stage does; tokenizer, template, pairs (+ gt) and the LoRA model."""
    return gdpo.load_pieces


@pytest.fixture(scope="session")
def collator():
    """``collator(pieces, pack)``: the gDPO data collator for ``pieces``, packed or not."""
    return gdpo.collator


@pytest.fixture(scope="session")
def perturb_lora():
    """``perturb_lora(model, seed=0, scale=0.05)``: make the LoRA non-zero so policy and reference differ."""
    return gdpo.perturb_lora
