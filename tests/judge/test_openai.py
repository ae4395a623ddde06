"""The OpenAI-compatible judge against a real HTTP server on 127.0.0.1 (tests/support/fake_openai_server.py)."""

import dataclasses
import json
import logging

import pytest

pytest.importorskip("vs2_openai_judge")

from tests.support.fake_openai_server import Action, serve_with_env  # noqa: E402
from vs2_openai_judge import parsing  # noqa: E402
from vs2_openai_judge.client import retry_after_seconds  # noqa: E402
from vs2_plugin.cli import main as vs2_main  # noqa: E402
from vs2_plugin.errors import ConfigError  # noqa: E402
from vs2_plugin.judge.config import JudgeConfig  # noqa: E402
from vs2_plugin.judge.runner import judge_items  # noqa: E402

PLANTED_KEY = "sk-test-PLANTED-4f9c2e71b8a3d5e6"

ITEMS = [
    {
        "id": "good",
        "caption": "A brown dog runs across the park. A man sings loudly.",
        "events": ["A brown dog runs", "A cat sleeps on a sofa", "A man sings"],
    },
    {
        "id": "second",
        "caption": "Rain falls on a city street at night.",
        "events": ["Rain falls on a street", "It is night"],
    },
]


@pytest.fixture()
def server(monkeypatch):
    yield from serve_with_env(monkeypatch, PLANTED_KEY)


def make_config(tmp_path, **kw):
    options = dict(
        model="fake-judge",
        passes=3,
        timeout_s=0.5,
        backoff_base_s=0.01,
        backoff_max_s=0.05,
        max_retries=4,
        concurrency=4,
    )
    options.update(kw)
    return JudgeConfig(judge="openai", cache_path=str(tmp_path / "cache.sqlite"), show_progress=False, options=options)


def test_k_passes_median_and_rates(server, tmp_path):
    judgments = judge_items(ITEMS, make_config(tmp_path))
    assert server.count == 2 * 3
    good = judgments[0]
    assert good.ok and good.missed == ["A cat sleeps on a sofa"]
    assert good.rates()["miss_rate"] == pytest.approx(1 / 3)
    assert good.event_scores == [1.0, 0.0, 1.0] and len(good.passes) == 3
    assert all(body["model"] == "fake-judge" for body in server.requests)
    assert sorted(body["seed"] for body in server.requests) == [0, 0, 1, 1, 2, 2]


def test_median_pass_is_reported(server, tmp_path):
    answers = iter([{"missed": [1, 2, 3]}, {"missed": []}, {"missed": [2]}])
    server.responder = lambda body: json.dumps({"incorrect": [], "hallucinated": [], **next(answers)})
    j = judge_items(ITEMS[:1], make_config(tmp_path, concurrency=1))[0]
    assert j.missed == ["A cat sleeps on a sofa"]  # totals 1.0, 0.0, 0.33 -> median 0.33
    assert j.event_scores == pytest.approx([2 / 3, 1 / 3, 2 / 3])


def test_retries_429_500_timeout_reset_and_malformed(server, tmp_path):
    server.script.extend(
        [Action.error(429, retry_after="0.05"), Action.error(500), Action.hang(1.5), Action.reset(), Action.malformed()]
    )
    judgments = judge_items(ITEMS[:1], make_config(tmp_path, passes=1, concurrency=1, max_retries=5))
    assert judgments[0].ok and judgments[0].missed == ["A cat sleeps on a sofa"]
    assert server.count == 6  # five scripted failures, then the answer


def test_retry_after_header_is_honoured_and_a_noticeable_wait_is_said(server, tmp_path, caplog, monkeypatch):
    import time

    from vs2_openai_judge import client

    monkeypatch.setattr(client, "NOTICEABLE_WAIT_S", 0.5)  # the test's wait stands for a long one
    server.script.append(Action.error(429, retry_after="0.6"))
    start = time.perf_counter()
    with caplog.at_level(logging.INFO, logger="vs2_openai_judge"):
        assert judge_items(ITEMS[:1], make_config(tmp_path, passes=1, concurrency=1, backoff_max_s=0.01))[0].ok
    assert time.perf_counter() - start >= 0.6
    [retry] = [r for r in caplog.records if "retry" in r.getMessage()]
    assert retry.levelno == logging.WARNING and "in 0.60s: HTTP 429" in retry.getMessage()


def test_retry_after_parsing():
    assert retry_after_seconds({"retry-after": "2"}) == 2.0
    assert retry_after_seconds({"retry-after-ms": "250"}) == 0.25
    assert retry_after_seconds({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0  # in the past
    assert retry_after_seconds({}) is None


def test_failed_items_are_reported_not_scored(server, tmp_path):
    server.rule = lambda body: Action.error(500) if "Rain falls" in body["messages"][-1]["content"] else None
    judgments = judge_items(ITEMS, make_config(tmp_path, max_retries=2))
    good, bad = judgments
    assert good.ok
    assert bad.status == "failed" and "HTTP 500" in bad.error and bad.rates() is None
    assert "miss_rate" not in bad.to_dict()


def test_bad_key_is_not_retried(server, tmp_path):
    server.rule = lambda body: Action.error(401)
    j = judge_items(ITEMS[:1], make_config(tmp_path, passes=1, max_retries=5))[0]
    assert j.status == "failed" and server.count == 1


def test_out_of_range_numbers_and_garbage_are_retried(server, tmp_path):
    server.script.append(Action.ok(json.dumps({"missed": "two", "incorrect": [], "hallucinated": []})))
    # 0-based numbers: dropping the 0 and keeping the others would read every event one off
    server.script.append(Action.ok(json.dumps({"missed": [0, 1], "incorrect": [], "hallucinated": []})))
    server.script.append(Action.ok(json.dumps({"missed": [2, 9], "incorrect": [], "hallucinated": []})))
    server.responder = lambda body: json.dumps({"missed": [2, 2], "incorrect": [2, 3], "hallucinated": ["a"] * 10})
    j = judge_items(ITEMS[:1], make_config(tmp_path, passes=1, concurrency=1))[0]
    assert server.count == 4
    assert j.missed == ["A cat sleeps on a sofa"] and j.incorrect == ["A man sings"]
    assert len(j.hallucinated) == 3 and j.rates()["hall_rate"] <= 1.0


def test_cache_makes_rerun_request_free(server, tmp_path):
    config = make_config(tmp_path)
    first = [j.to_dict() for j in judge_items(ITEMS, config)]
    n = server.count
    second = judge_items(ITEMS, config)
    assert server.count == n
    assert [j.to_dict()["missed"] for j in second] == [r["missed"] for r in first]
    assert all(j.usage["requests_cached"] == 3 for j in second)


def test_resume_asks_only_for_missing_passes(server, tmp_path):
    server.rule = lambda body: Action.error(503) if body["seed"] == 2 else None
    assert judge_items(ITEMS[:1], make_config(tmp_path, max_retries=0))[0].status == "failed"
    server.rule, before = None, server.count
    assert judge_items(ITEMS[:1], make_config(tmp_path))[0].ok
    assert server.count - before == 1


def test_events_extracted_from_reference(server, tmp_path):
    item = {
        "id": "ref",
        "caption": "A brown dog runs. A man sings.",
        "reference": "A brown dog runs. A cat sleeps. A man sings.",
    }
    j = judge_items([item], make_config(tmp_path, passes=1))[0]
    assert j.ok and j.n_events == 3 and j.missed == ["A cat sleeps."]


def test_planted_key_never_logged_or_written(server, tmp_path, caplog, capsys):
    caplog.set_level(logging.DEBUG)
    server.script.extend([Action.error(429, retry_after="0"), Action.error(500), Action.malformed()])
    server.rule = lambda body: Action.error(401) if "Rain" in body["messages"][-1]["content"] else None
    data = tmp_path / "in.jsonl"
    data.write_text("".join(json.dumps(i) + "\n" for i in ITEMS))
    out = tmp_path / "report.json"
    code = vs2_main(
        [
            "eval",
            "--input",
            str(data),
            "--judge",
            "openai",
            "--judge-model",
            "fake-judge",
            "--out",
            str(out),
            "--passes",
            "2",
            "--cache",
            str(tmp_path / "cache.sqlite"),
            "--quiet",
        ]
    )
    assert code == 1  # one item failed
    report = json.loads(out.read_text())
    assert [i["status"] for i in report["items"]] == ["ok", "failed"]
    assert report["summary"]["all"]["n_failed"] == 1
    assert all(h == f"Bearer {PLANTED_KEY}" for h in server.auth_headers)  # the key was really used
    captured = capsys.readouterr()
    texts = [caplog.text, captured.out, captured.err] + [
        p.read_bytes().decode("utf-8", "replace") for p in tmp_path.rglob("*") if p.is_file()
    ]
    for text in texts:
        assert PLANTED_KEY not in text
        assert PLANTED_KEY[8:] not in text


def test_strict_parsing():
    with pytest.raises(parsing.MalformedAnswer):
        parsing.parse_verdict("not json", 3)
    with pytest.raises(parsing.MalformedAnswer):
        parsing.parse_verdict('{"missed": [1]}', 3)
    with pytest.raises(parsing.MalformedAnswer):
        parsing.parse_verdict('{"missed": [true], "incorrect": [], "hallucinated": []}', 3)
    with pytest.raises(parsing.MalformedAnswer, match="holds 0, outside the event numbers 1..3"):
        parsing.parse_verdict('{"missed": [0], "incorrect": [], "hallucinated": []}', 3)
    v = parsing.parse_verdict('```json\n{"missed": ["1"], "incorrect": [1], "hallucinated": [{"text": "x"}]}\n```', 3)
    assert v.missed == (0,) and v.incorrect == () and v.hallucinated == ("x",)
    with pytest.raises(parsing.MalformedAnswer):
        parsing.parse_events('{"events": []}')


def test_a_cache_path_that_is_no_answer_cache_is_named(server, tmp_path):
    not_a_cache = tmp_path / "notes.sqlite"
    not_a_cache.write_text("these are notes, not a database\n" * 10)
    for path in (tmp_path, not_a_cache):  # a folder, another file
        config = dataclasses.replace(make_config(tmp_path), cache_path=str(path))
        with pytest.raises(ConfigError, match=f"judge cache {path}: cannot be used as the answer cache"):
            judge_items(ITEMS[:1], config)
    assert server.count == 0
