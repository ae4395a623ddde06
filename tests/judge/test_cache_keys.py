"""Fast paths of a cached judge rerun give exactly what the plain computations give:
cache keys, bulk cache lookups and the caption metrics."""

import random

import pytest

pytest.importorskip("vs2_openai_judge")

from vs2_openai_judge.cache import AnswerCache
from vs2_openai_judge.client import ChatRunner, Job
from vs2_openai_judge.options import OpenAIOptions
from vs2_openai_judge.prompts import extraction_messages, judging_messages
from vs2_plugin.judge import metrics
from vs2_plugin.judge.config import JudgeConfig


def test_bulk_keys_equal_one_by_one_keys(monkeypatch, tmp_path):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-local-test-key")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    runner = ChatRunner(OpenAIOptions(model="m"), JudgeConfig(judge="openai", cache_path=None, show_progress=False))
    shared = judging_messages(["Ein Hund läuft", "猫が寝ている", 'He says "hi"'], "A dog runs.\nA cat sleeps.")
    jobs = [Job("judge", shared, str, temperature=0.7, seed=p) for p in range(4)]
    jobs += [Job("judge", judging_messages(["A man sings"], "A man sings."), str, temperature=0.7, seed=0)]
    jobs += [Job("extract", extraction_messages("A dog runs."), str, temperature=0.0, seed=0)]
    jobs += [Job("judge", [dict(m) for m in shared], str, temperature=0.0, seed=1)]  # equal content, another list
    jobs += [Job("judge", shared, str, temperature=1, seed=1)]  # an int temperature encodes as "1", not "1.0"
    keys = runner._keys(jobs)
    assert keys == [runner._key(job) for job in jobs]
    assert len(set(keys)) == len(keys)
    assert runner._keys([]) == []


def test_bulk_answers_span_several_queries(tmp_path):
    cache = AnswerCache(tmp_path / "c.sqlite")
    keys = [f"k{i}" for i in range(2500)]
    for i, key in enumerate(keys[::2]):
        cache.put(key, f"answer {i}", {"prompt_tokens": i})
    found = cache.answers(keys + ["missing"])
    assert len(found) == 1250 and found["k0"] == "answer 0" and found["k2498"] == "answer 1249"
    assert cache.get_many(["k2"]) == {"k2": ("answer 1", {"prompt_tokens": 1})}
    assert AnswerCache(None).answers(keys) == {}
    cache.close()


def test_repeated_ngram_precheck_never_hides_a_match():
    rng = random.Random(0)
    vocab = ["a", "A", "dog", "Dog", "runs", ",", ".", "the", "cat", "  ", "!", "no", "NO", "x_y", "it's", "\n"]
    matched = 0
    for _ in range(5000):

        def words(n):
            return " ".join(rng.choice(vocab) for _ in range(n))

        group = words(rng.randint(1, 9)) + rng.choice([" ", ", ", "! "])
        text = words(rng.randint(0, 8)) + " " + group * rng.randint(1, 4) + words(rng.randint(0, 8))
        if rng.random() < 0.5:
            text = "".join(c.upper() if rng.random() < 0.3 else c for c in text)
        if metrics._REPEATED_NGRAM.search(text):
            matched += 1
            assert metrics._may_repeat_ngram(text)
    assert matched > 50  # the check was exercised on real matches


@pytest.mark.parametrize(
    "text",
    [
        "and then the man and then the man and then the man waves.",
        "A dog runs. A dog runs. A dog runs. A cat sits.",
        "Between 0:00 and 0罕见的桥, the person points at a bridge.",
        "A man in a red shirt walks along the beach.",
        "",
    ],
)
def test_unnatural_patterns_with_given_rate(text):
    assert metrics.unnatural_patterns(text, rep_rate=metrics.repetition_rate(text)) == metrics.unnatural_patterns(text)
