"""Mechanics of the offline judge: whole words, kept negations/numbers, bounded chunks, one
encoding per text, determinism across fresh processes, weights pinned to the benchmark."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from vs2_plugin.judge import alignment, offline
from vs2_plugin.judge.encoders import get_encoder
from vs2_plugin.judge.types import JudgeItem

ITEMS = [
    JudgeItem(
        id="a",
        caption="A xylophone player in a red shirt does not smile. Two dogs run; a cat sleeps on a sofa.",
        events=["A xylophone player wears a red shirt", "Two dogs run", "A parrot sings"],
        reference="A xylophone player in a red shirt does not smile. Two dogs run.",
    ),
    JudgeItem(
        id="b",
        caption="Two dogs run. A woman waves.",
        events=["Two dogs run", "A man waves"],
        reference="A xylophone player in a red shirt does not smile. Two dogs run.",
    ),
    JudgeItem(id="c", caption="A pianist plays at night.", events=["A pianist plays", "It is daytime"]),
]


@pytest.mark.parametrize("encoder", ["wordllama", "minilm"])
def test_words_are_rebuilt_from_pieces_before_rarity(encoder):
    enc = get_encoder(encoder).encode(["A xylophone player doesn't sit."])[0]
    assert enc.tokens == ["a", "xylophone", "player", "doesn't", "sit"]
    assert enc.vecs.shape == (5, get_encoder(encoder).dim)
    assert np.allclose(np.linalg.norm(enc.vecs, axis=1), 1.0, atol=1e-4)
    assert alignment.rarity("xylophone") > alignment.rarity("player") > alignment.rarity("a")


def test_negations_and_numbers_are_content_words():
    for word in ("not", "no", "never", "one", "two", "three"):
        assert word not in alignment.STOPWORDS
    words = ["the", "man", "does", "not", "hold", "two", "cups"]
    assert [words[i] for i in alignment.content_positions(words)] == ["man", "not", "hold", "two", "cups"]


@pytest.mark.parametrize("encoder", ["wordllama", "minilm"])
def test_chunks_give_the_same_judgments(monkeypatch, encoder):
    # an item's judgment does not depend on the items judged beside it (MiniLM's int8 activations
    # have a scale per token, not one per batch)
    whole = [j.to_dict() for j in offline.judge(ITEMS, encoder_name=encoder)]
    monkeypatch.setattr(offline, "CHUNK", 1)
    assert [j.to_dict() for j in offline.judge(ITEMS, encoder_name=encoder)] == whole


def test_each_text_is_encoded_once(monkeypatch):
    encoder = get_encoder("wordllama")
    seen = []
    original = encoder._encode_sentences

    def counting(sentences):
        seen.extend(sentences)
        return original(sentences)

    monkeypatch.setattr(encoder, "_encode_sentences", counting)
    offline.judge(ITEMS[:2], encoder_name="wordllama")
    assert len(seen) == len(set(seen))  # no sentence twice: clauses reuse the caption's vectors
    assert "A xylophone player in a red shirt does not smile." in seen and "Two dogs run." in seen


_SCRIPT = """
import json, sys
from vs2_plugin.judge import offline
from vs2_plugin.judge.types import JudgeItem
items = [JudgeItem(**d) for d in json.loads(sys.argv[1])]
print(json.dumps([j.to_dict() for j in offline.judge(items, encoder_name=sys.argv[2])]))
"""


@pytest.mark.parametrize("encoder", ["wordllama", "minilm"])
def test_judgments_are_identical_in_fresh_processes(encoder, repo_root):
    payload = json.dumps(
        [{"id": i.id, "caption": i.caption, "events": i.events, "reference": i.reference} for i in ITEMS]
    )
    env = {**os.environ, "PYTHONPATH": str(repo_root), "OMP_NUM_THREADS": "1"}
    runs = [
        subprocess.run(
            [sys.executable, "-c", _SCRIPT, payload, encoder], capture_output=True, text=True, env=env, check=True
        ).stdout
        for _ in range(2)
    ]
    assert runs[0] == runs[1]
    here = [j.to_dict() for j in offline.judge(ITEMS, encoder_name=encoder)]
    assert json.loads(runs[0]) == json.loads(json.dumps(here))
    assert json.loads(runs[0])[1]["incorrect"] == ["A man waves"]


def test_shipped_weights_are_the_ones_the_benchmark_fitted(repo_root):
    shipped = json.loads((alignment.DATA_DIR / "offline_weights.json").read_text())
    bench = json.loads((repo_root / "benchmarks" / "results" / "offline_judge_auc.json").read_text())["encoders"]
    assert set(shipped) == set(bench) == {"minilm", "wordllama"}
    for name, entry in shipped.items():
        assert entry == bench[name]["weights"], name
        assert tuple(entry["features"]) == alignment.FEATURES
        assert min(entry["coef"]) >= 0.0  # the fit keeps coefficients non-negative (monotone Miss)
        assert (
            bench[name]["auc_leave_one_captioner_out_mean"]
            > bench["wordllama"]["auc_leave_one_captioner_out_mean"] - 0.1
        )


def test_batched_features_equal_one_claim_at_a_time():
    enc = get_encoder("wordllama")
    text = enc.encode([ITEMS[0].caption + " " + ITEMS[1].caption])[0]
    claims = enc.encode(ITEMS[0].events + ITEMS[1].events + [""], split=False)
    batched = alignment.batch_features(claims, text)
    single = np.stack([alignment.alignment_features(c, text) for c in claims])
    assert np.allclose(batched, single, atol=1e-5)
    assert (batched[-1] == 0).all() and (batched[0] > 0).all()
