"""MiniLM's int8 Linear layers: a sentence's vectors depend on that sentence alone, and stay close to fp32."""

import numpy as np
import pytest
import torch

from vs2_plugin.judge.encoders import MiniLMEncoder
from vs2_plugin.judge.int8 import Int8Linear, int8_supported

pytestmark = pytest.mark.skipif(not int8_supported(), reason="this torch build has no int8 matrix product")

SENTENCES = [
    "A man in a red shirt plays the guitar on a small stage.",
    "THE CROWD CHEERS LOUDLY AS FIREWORKS BURST OVER THE HARBOUR AT MIDNIGHT!!!",
    "She whispers.",
]


def test_a_token_is_quantised_on_its_own():
    torch.manual_seed(0)
    linear = torch.nn.Linear(16, 8)
    layer = Int8Linear(linear)
    x = torch.randn(3, 16)
    loud = torch.cat([x, 100 * torch.randn(1, 16)])  # a token of another scale in the same batch
    assert torch.equal(layer(loud)[:3], layer(x))
    assert torch.allclose(layer(x), linear(x), atol=0.05)


@pytest.fixture(scope="module")
def encoders():
    return MiniLMEncoder(quantize=True), MiniLMEncoder(quantize=False)


def test_a_sentence_is_encoded_the_same_alone_or_batched(encoders):
    int8, _ = encoders
    batched = int8._encode_sentences(SENTENCES)
    for sentence, (words, vecs, sentence_vec) in zip(SENTENCES, batched):
        alone_words, alone_vecs, alone_sentence_vec = int8._encode_sentences([sentence])[0]
        assert words == alone_words
        assert np.allclose(vecs, alone_vecs, atol=1e-5) and np.allclose(sentence_vec, alone_sentence_vec, atol=1e-5)


def test_int8_word_vectors_are_close_to_fp32(encoders):
    int8, fp32 = encoders
    for (_, a, _), (_, b, _) in zip(int8._encode_sentences(SENTENCES), fp32._encode_sentences(SENTENCES)):
        cosine = (a * b).sum(axis=1)
        assert cosine.min() > 0.98, cosine
