"""Fault matrix of the OpenAI-compatible judge against a real HTTP server on 127.0.0.1.

Every fault is injected on the requests of one caption (the "target") while the other
captions of the same run are answered normally, in two modes:

* transient: the fault happens twice, then the server answers -> the target is judged
  exactly as in a clean run; every retry waited (the server's ``Retry-After`` or the
  exponential backoff, read from the judge's own retry log and the server's arrival times);
* persistent: the fault never stops -> after ``max_retries`` retries the target is recorded
  as ``status: failed`` with the fault named in ``error``: no rates, left out of the means,
  not cached (a rerun asks again, and only for it), and it never yields a preference pair.

Out-of-range event numbers are not a failure: they are clamped (tested at the end).
"""

from __future__ import annotations

import itertools
import json
import logging
import re
import threading

import pytest

pytest.importorskip("vs2_openai_judge")

from tests.support.fake_openai_server import Action, FakeOpenAIServer, serve_with_env
from vs2_plugin.judge.config import JudgeConfig
from vs2_plugin.judge.pairs import RoundThresholds, choose_pairs
from vs2_plugin.judge.report import summarize_by_task
from vs2_plugin.judge.runner import judge_items
from vs2_plugin.pipeline.mrdpo import scored_samples, summarize_judged

KEY = "sk-planted-faults-0123456789abcdef"
EVENTS = ["A brown dog runs across the park", "A man sings loudly", "Rain falls on the street"]
GOOD = "A brown dog runs across the park while a man sings loudly and rain falls on the street."
BAD = "A cat sleeps on a sofa."
# Two videos, two samples each; the fault hits the worse sample of v1 and the better one of v2.
ROWS = [
    {"key": "v1-good", "video_id": "v1", "caption": GOOD},
    {"key": "v1-bad", "video_id": "v1", "caption": BAD + " Outside it is windy."},
    {"key": "v2-good", "video_id": "v2", "caption": GOOD + " Everyone smiles."},
    {"key": "v2-bad", "video_id": "v2", "caption": BAD},
]
TARGETS = {ROWS[1]["caption"], ROWS[2]["caption"]}
ANY_PAIR = RoundThresholds(0.001, -1.0, 0.001, -1.0)  # any strictly lower error wins

RETRY_AFTER_S = 0.3
BACKOFF_BASE_S, BACKOFF_MAX_S = 0.02, 0.08
MAX_RETRIES = 3
PASSES = 2
TIMEOUT_S = 1.0  # generous: only the "timeout" fault may time out, even on a busy machine

#: fault -> (server action, words the failed judgment's error must contain, wait before a retry)
FAULTS = {
    "timeout": (lambda: Action.hang(4 * TIMEOUT_S), f"timed out after {TIMEOUT_S:g}s", "backoff"),
    "429 Retry-After seconds": (lambda: Action.error(429, retry_after=str(RETRY_AFTER_S)), "HTTP 429", RETRY_AFTER_S),
    "429 retry-after-ms": (
        lambda: Action.error(429, headers={"retry-after-ms": str(int(RETRY_AFTER_S * 1000))}),
        "HTTP 429",
        RETRY_AFTER_S,
    ),
    "429 without Retry-After": (lambda: Action.error(429), "HTTP 429", "backoff"),
    "500": (lambda: Action.error(500), "HTTP 500", "backoff"),
    "503 Retry-After": (lambda: Action.error(503, retry_after=str(RETRY_AFTER_S)), "HTTP 503", RETRY_AFTER_S),
    "502 HTML page": (
        lambda: Action.raw("<html><body>502 Bad Gateway</body></html>", status=502, content_type="text/html"),
        "HTTP 502",
        "backoff",
    ),
    "connection reset before the answer": (lambda: Action.reset(), "connection error", "backoff"),
    "socket closed mid-answer": (lambda: Action.cut(), "connection error", "backoff"),
    "HTTP body not JSON": (
        lambda: Action.raw("<html>upstream error</html>", content_type="text/html"),
        "not a chat completion",
        "backoff",
    ),
    "HTTP body truncated JSON": (
        lambda: Action.raw('{"id": "chatcmpl-x", "choices": [{"index": 0, "mess'),
        "not a chat completion",
        "backoff",
    ),
    "answer not JSON": (lambda: Action.malformed(), "answer is not JSON", "backoff"),
    "answer truncated JSON": (
        lambda: Action.ok('{"missed": [1], "incorrect": [], "hallucin'),
        "answer is not JSON",
        "backoff",
    ),
    "answer wrong schema": (
        lambda: Action.ok('{"missed": "two", "incorrect": [], "hallucinated": []}'),
        "list of event numbers",
        "backoff",
    ),
    "answer empty": (lambda: Action.ok(""), "empty answer", "backoff"),
    "refusal as text": (lambda: Action.ok("I can't help with that."), "I can't help with that", "backoff"),
    "refusal field": (lambda: Action.refusal("I can't help with that."), "refused", "backoff"),
}

RETRY_LOG = re.compile(r"judge request retry (\d+)/(\d+) in ([0-9.]+)s: (.*)")


@pytest.fixture()
def server(monkeypatch):
    yield from serve_with_env(monkeypatch, KEY)


def config(tmp_path, **kw) -> JudgeConfig:
    options = {
        "model": "fake-judge",
        "passes": PASSES,
        "timeout_s": TIMEOUT_S,
        "backoff_base_s": BACKOFF_BASE_S,
        "backoff_max_s": BACKOFF_MAX_S,
        "max_retries": MAX_RETRIES,
        "concurrency": 4,
    }
    options.update(kw)
    return JudgeConfig(judge="openai", cache_path=str(tmp_path / "cache.sqlite"), show_progress=False, options=options)


def caption_of(body: dict) -> str:
    return body["messages"][-1]["content"].split("Caption to evaluate:\n", 1)[-1]


def inject(server: FakeOpenAIServer, make_action, times: int | None) -> None:
    """Answer the target captions' requests with the fault (``times`` times each, or always)."""
    served: dict[str, int] = {}
    lock = threading.Lock()

    def rule(body):
        caption = caption_of(body)
        if caption not in TARGETS:
            return None
        with lock:
            served[caption] = served.get(caption, 0) + 1
            if times is not None and served[caption] > times:
                return None
        return make_action()

    server.rule = rule


def judge_rows(tmp_path, **kw) -> list[dict]:
    """Judge ROWS like the mrDPO driver does: rows with the judgment's dict."""
    items = [{"id": r["key"], "caption": r["caption"], "events": EVENTS} for r in ROWS]
    judgments = judge_items(items, config(tmp_path, **kw))
    return [
        {
            **r,
            "task": "global",
            "prompt": "Describe the video.",
            "video": f"{r['video_id']}.mp4",
            "judgment": j.to_dict(),
        }
        for r, j in zip(ROWS, judgments)
    ]


def pairs_of(judged: list[dict]) -> list[tuple[str, str]]:
    return [(p.chosen.sample_id, p.rejected.sample_id) for p in choose_pairs(scored_samples(judged), ANY_PAIR)]


@pytest.fixture(scope="module")
def clean(tmp_path_factory, request):
    """The fault-free run every faulted run is compared to."""
    mp = pytest.MonkeyPatch()
    with FakeOpenAIServer() as srv:
        mp.setenv("OPENAI_BASE_URL", srv.base_url)
        mp.setenv("OPENAI_API_KEY", KEY)
        judged = judge_rows(tmp_path_factory.mktemp("clean"))
    mp.undo()
    return judged


def strip_usage(judgment: dict) -> dict:
    return {k: v for k, v in judgment.items() if k != "usage"}


def test_clean_run_selects_a_pair_per_video(clean):
    assert [r["judgment"]["status"] for r in clean] == ["ok"] * 4
    assert [r["judgment"]["total_rate"] == 0 for r in clean] == [True, False, True, False]
    assert pairs_of(clean) == [("v1-good", "v1-bad"), ("v2-good", "v2-bad")]


def retry_waits(caplog) -> list[tuple[int, float, str]]:
    out = []
    for record in caplog.records:
        match = RETRY_LOG.match(record.getMessage())
        if match:
            out.append((int(match.group(1)), float(match.group(3)), match.group(4)))
    return out


def assert_waits(waits, wait, expected_error):
    assert waits, "no retry was logged"
    for attempt, delay, message in waits:
        assert expected_error in message
        if wait == "backoff":  # exponential with jitter: [1/2, 1] x min(max, base * 2^(attempt-1))
            ceiling = min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2 ** (attempt - 1))
            assert ceiling / 2 - 0.005 <= delay <= ceiling + 0.005, (attempt, delay)
        else:
            assert delay == pytest.approx(wait, abs=0.005)


def target_arrivals(server) -> dict[tuple[str, int], list[float]]:
    """Arrival times of the target captions' requests, per (caption, pass)."""
    out: dict[tuple[str, int], list[float]] = {}
    for body, when in zip(server.requests, server.arrivals):
        if caption_of(body) in TARGETS:
            out.setdefault((caption_of(body), body["seed"]), []).append(when)
    return out


@pytest.mark.parametrize("fault", list(FAULTS))
def test_transient_fault_is_retried_and_the_result_is_unchanged(fault, server, tmp_path, caplog, clean):
    make_action, expected_error, wait = FAULTS[fault]
    caplog.set_level(logging.INFO, logger="vs2_openai_judge")
    inject(server, make_action, times=2)
    judged = judge_rows(tmp_path)

    assert [strip_usage(r["judgment"]) for r in judged] == [strip_usage(r["judgment"]) for r in clean]
    assert pairs_of(judged) == pairs_of(clean)
    per_target = [body for body in server.requests if caption_of(body) in TARGETS]
    assert len(per_target) == len(TARGETS) * (PASSES + 2)  # two faulted answers each, then one per pass
    assert len(server.requests) - len(per_target) == 2 * PASSES  # the other captions: no retry
    waits = retry_waits(caplog)
    assert len(waits) == 2 * len(TARGETS)
    assert_waits(waits, wait, expected_error)
    if wait != "backoff":  # the server saw the retry no earlier than it asked
        for times in target_arrivals(server).values():
            assert all(b - a >= wait for a, b in itertools.pairwise(times))


@pytest.mark.parametrize("fault", list(FAULTS))
def test_persistent_fault_is_recorded_as_failed_and_never_paired(fault, server, tmp_path, caplog, clean):
    make_action, expected_error, wait = FAULTS[fault]
    caplog.set_level(logging.INFO, logger="vs2_openai_judge")
    inject(server, make_action, times=None)
    judged = judge_rows(tmp_path)

    by_key = {r["key"]: r["judgment"] for r in judged}
    for key in ("v1-bad", "v2-good"):
        failed = by_key[key]
        assert failed["status"] == "failed"
        assert expected_error in failed["error"]
        assert f"after {MAX_RETRIES + 1} attempt(s)" in failed["error"]
        assert not {"miss_rate", "hall_rate", "total_rate", "rep_rate"} & failed.keys()  # never "zero errors"
    for key in ("v1-good", "v2-bad"):  # the other captions of the run are unaffected
        assert strip_usage(by_key[key]) == strip_usage(next(r["judgment"] for r in clean if r["key"] == key))
    # every pass of a target was tried max_retries + 1 times, with a wait before each retry
    assert sorted(len(t) for t in target_arrivals(server).values()) == [MAX_RETRIES + 1] * (len(TARGETS) * PASSES)
    assert_waits(retry_waits(caplog), wait, expected_error)

    # failed samples never become ScoredSamples, so never a chosen or a rejected caption
    assert {s.sample_id for s in scored_samples(judged)} == {"v1-good", "v2-bad"}
    assert pairs_of(judged) == []
    # and are counted apart, not averaged in as zero
    summary = summarize_judged(judged)["global"]
    assert summary["failed"] == 2 and summary["total"] == pytest.approx((0 + by_key["v2-bad"]["total_rate"]) / 2)
    report = summarize_by_task([{**j, "task": "global"} for j in by_key.values()])["all"]
    assert report["n_failed"] == 2 and report["n_ok"] == 2

    # nothing was cached for a failure: once the fault is gone a rerun asks only for the targets
    server.rule, before = None, server.count
    rerun = judge_rows(tmp_path)
    asked = server.requests[before:]
    assert len(asked) == len(TARGETS) * PASSES and all(caption_of(b) in TARGETS for b in asked)
    assert [strip_usage(r["judgment"]) for r in rerun] == [strip_usage(r["judgment"]) for r in clean]
    assert pairs_of(rerun) == pairs_of(clean)


def test_fault_count_at_the_retry_limit_still_succeeds(server, tmp_path):
    inject(server, lambda: Action.error(500), times=MAX_RETRIES)
    judged = judge_rows(tmp_path, passes=1, concurrency=1)
    assert all(r["judgment"]["status"] == "ok" for r in judged)
    inject(server, lambda: Action.error(500), times=MAX_RETRIES + 1)
    judged = judge_rows(tmp_path / "again", passes=1, concurrency=1)
    assert [r["judgment"]["status"] for r in judged] == ["ok", "failed", "failed", "ok"]


def test_one_failed_pass_fails_the_item(server, tmp_path):
    """K passes: a single pass that keeps failing fails the item (no median of the rest)."""
    server.rule = lambda body: Action.error(500) if caption_of(body) in TARGETS and body["seed"] == 1 else None
    judged = judge_rows(tmp_path, passes=3)
    failed = [r["judgment"] for r in judged if r["judgment"]["status"] == "failed"]
    assert len(failed) == 2 and all(j["error"].startswith("1 of 3 judging passes failed") for j in failed)


@pytest.mark.parametrize(
    "answer, missed, incorrect, n_hallucinated",
    [
        ({"missed": [2, 2, "3"], "incorrect": [3, 1], "hallucinated": []}, [1, 2], [0], 0),
        ({"missed": [], "incorrect": [], "hallucinated": [f"invented {i}" for i in range(40)]}, [], [], 3),
        ({"missed": [1, 2, 3, 3], "incorrect": [1, 2, 3], "hallucinated": ["x"] * 9}, [0, 1, 2], [], 3),
    ],
    ids=["repeats and overlap", "too many hallucinations", "everything at once"],
)
def test_repeats_and_excess_are_clamped(server, tmp_path, answer, missed, incorrect, n_hallucinated):
    server.responder = lambda body: json.dumps(answer)
    j = judge_items([{"id": "x", "caption": GOOD, "events": EVENTS}], config(tmp_path, passes=1))[0]
    assert j.ok and server.count == 1  # clamping is not a failure: no retry
    assert j.missed == [EVENTS[i] for i in missed] and j.incorrect == [EVENTS[i] for i in incorrect]
    assert len(j.hallucinated) == n_hallucinated
    rates = j.rates()
    assert 0.0 <= rates["miss_rate"] <= 1.0 and 0.0 <= rates["hall_rate"] <= 1.0
    assert rates["total_rate"] == pytest.approx(rates["miss_rate"] + rates["hall_rate"])  # Total = Miss + Hall <= 2


@pytest.mark.parametrize("missed", [[0, 2], [1, 99], [-1]], ids=["0-based", "past the last", "negative"])
def test_event_numbers_outside_the_list_are_asked_again_then_fail(server, tmp_path, missed):
    """A misread numbering shifts every number: no answer of it is scored, however many retries."""
    server.responder = lambda body: json.dumps({"missed": missed, "incorrect": [], "hallucinated": []})
    j = judge_items([{"id": "x", "caption": GOOD, "events": EVENTS}], config(tmp_path, passes=1))[0]
    assert j.status == "failed" and "outside the event numbers 1..3" in j.error
    assert server.count == MAX_RETRIES + 1


# ------------------------------------------------------------------------------ the driver's judging step


def test_driver_keeps_judged_captions_and_retries_only_failed_ones_after_an_outage(server, tmp_path):
    """Half the captions fail (more than max_judge_failure_rate): the step stops, keeps the judged
    half, and the rerun after the outage asks the judge only about the failed half."""
    from vs2_plugin.errors import Vs2Error
    from vs2_plugin.pipeline.mrdpo import judge_samples

    rows = [{**r, "task": "global", "prompt": "Describe the video.", "video": f"{r['video_id']}.mp4"} for r in ROWS]
    events = {"v1": EVENTS, "v2": EVENTS}
    out = tmp_path / "judged.jsonl"
    inject(server, lambda: Action.error(500), times=None)
    with pytest.raises(Vs2Error, match=r"2 of 4 captions could not be judged .*HTTP 500.*rerun"):
        judge_samples(rows, events, config(tmp_path), out, max_failure_rate=0.25)
    kept = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(r["key"] for r in kept) == ["v1-good", "v2-bad"]
    assert all(r["judgment"]["status"] == "ok" for r in kept)

    server.rule = None  # the outage is over
    server.requests.clear()
    judged = judge_samples(rows, events, config(tmp_path), out, max_failure_rate=0.25)
    assert [r["judgment"]["status"] for r in judged] == ["ok"] * 4
    assert {caption_of(body) for body in server.requests} == TARGETS  # only the failed captions again
    assert pairs_of(judged) == [("v1-good", "v1-bad"), ("v2-good", "v2-bad")]


def test_driver_tolerates_failures_within_the_limit(server, tmp_path):
    """Within max_judge_failure_rate the failed captions are kept as failed and yield no pair."""
    from vs2_plugin.pipeline.mrdpo import judge_samples

    rows = [{**r, "task": "global", "prompt": "Describe the video.", "video": f"{r['video_id']}.mp4"} for r in ROWS]
    inject(server, lambda: Action.error(500), times=None)
    judged = judge_samples(
        rows, {"v1": EVENTS, "v2": EVENTS}, config(tmp_path), tmp_path / "j.jsonl", max_failure_rate=0.5
    )
    assert [r["judgment"]["status"] for r in judged] == ["ok", "failed", "failed", "ok"]
    assert pairs_of(judged) == []


def test_an_interrupted_judging_step_keeps_the_chunks_already_judged(tmp_path, monkeypatch):
    """Stopped while the second chunk is judged (Ctrl-C, a crash): the first chunk's judgments are
    on disk, and the rerun judges only the captions after them."""
    from vs2_plugin.judge import runner
    from vs2_plugin.judge.types import Judgment
    from vs2_plugin.pipeline import mrdpo

    monkeypatch.setattr(mrdpo, "JUDGE_CHUNK", 2)
    rows = [
        {
            "key": f"v1-{k}",
            "video_id": "v1",
            "task": "global",
            "prompt": "Describe.",
            "video": "v1.mp4",
            "caption": "A dog.",
        }
        for k in range(5)
    ]
    asked, stop_at = [], [2]

    def judge(items, jcfg):
        asked.append([i.id for i in items])
        if len(asked) in stop_at:
            raise RuntimeError("stopped")
        return [Judgment(id=i.id, judge="fake", n_events=1, event_scores=[1.0]) for i in items]

    monkeypatch.setattr(runner, "judge_items", judge)
    out = tmp_path / "judged.jsonl"
    with pytest.raises(RuntimeError, match="stopped"):
        mrdpo.judge_samples(rows, {"v1": ["A dog runs"]}, None, out)
    assert [json.loads(line)["key"] for line in out.read_text().splitlines()] == ["v1-0", "v1-1"]
    asked.clear()
    stop_at.clear()
    judged = mrdpo.judge_samples(rows, {"v1": ["A dog runs"]}, None, out)
    assert asked == [["v1-2", "v1-3"], ["v1-4"]]
    assert [r["key"] for r in judged] == [r["key"] for r in rows]
