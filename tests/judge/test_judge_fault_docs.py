"""docs/reliability.md's judge-fault table quotes what the openai judge really does and says
(fake endpoint on 127.0.0.1)."""

import json
import logging
import re

import pytest

pytest.importorskip("vs2_openai_judge")

from tests.support.fake_openai_server import Action, serve_with_env  # noqa: E402
from tests.support.paths import REPO  # noqa: E402
from vs2_openai_judge import client  # noqa: E402
from vs2_plugin.judge.config import JudgeConfig  # noqa: E402
from vs2_plugin.judge.runner import judge_items  # noqa: E402

DOC = (REPO / "docs" / "reliability.md").read_text(encoding="utf-8")
ITEM = {"id": "v", "caption": "A dog runs. A man sings.", "events": ["A dog runs", "A cat sleeps", "A man sings"]}


@pytest.fixture()
def server(monkeypatch):
    yield from serve_with_env(monkeypatch, "sk-test-docs-0123456789abcdef")


def judge_error(tmp_path, **kw) -> str:
    options = dict(model="fake-judge", passes=1, max_retries=1, backoff_base_s=0.01, backoff_max_s=0.01, **kw)
    config = JudgeConfig(judge="openai", cache_path=str(tmp_path / "c.sqlite"), show_progress=False, options=options)
    [judgment] = judge_items([ITEM], config)
    assert judgment.status == "failed"
    # "1 of 1 judging passes failed: malformed answer: ... (after 2 attempt(s))" -> "malformed answer: ..."
    return re.sub(r"^\d+ of \d+ judging passes failed: | \(after \d+ attempt\(s\)\)$", "", judgment.error)


def fault_rows(first_cell_word: str) -> list[str]:
    rows = [ln for ln in DOC.splitlines() if ln.startswith("|") and first_cell_word in ln.split("|")[1].lower()]
    assert rows, f"docs/reliability.md has no fault row about {first_cell_word!r}"
    return rows


@pytest.mark.parametrize("action", [Action.ok("I can't help with that."), Action.refusal()], ids=["text", "field"])
def test_refusal_rows_quote_the_real_message(server, tmp_path, action):
    server.rule = lambda body: action
    message = judge_error(tmp_path)
    assert any(f"`{message}`" in row for row in fault_rows("refusal")), message


def test_event_numbers_outside_the_list_are_documented_as_retried_then_failed(server, tmp_path):
    server.rule = lambda body: Action.ok(json.dumps({"missed": [0, 1, 99], "incorrect": [], "hallucinated": []}))
    message = judge_error(tmp_path)
    assert server.count == 2  # asked again, not read with the 0 dropped
    rows = fault_rows("event number")
    [row] = [r for r in rows if f"`{message}`" in r]
    assert "retried" in row
    assert not any("outside 1..n dropped" in r for r in rows)


def test_retry_logging_is_documented_by_level(server, tmp_path, caplog):
    server.script.append(Action.error(500))  # then answered: one retry after a short backoff
    options = dict(model="fake-judge", passes=1, backoff_base_s=0.01, backoff_max_s=0.01)
    config = JudgeConfig(judge="openai", cache_path=str(tmp_path / "c.sqlite"), show_progress=False, options=options)
    with caplog.at_level(logging.INFO, logger="vs2_openai_judge"):
        assert judge_items([ITEM], config)[0].ok
    [retry] = [r for r in caplog.records if "retry" in r.getMessage()]
    assert retry.levelno == logging.INFO and retry.getMessage().startswith("judge request retry 1/6 in 0.0")
    limit = f"{client.NOTICEABLE_WAIT_S:g} s"
    said = " ".join(DOC.split())
    assert "judge request retry 1/6 in " in said and "each retry logged" not in said
    assert f"at INFO when the wait is shorter than {limit}" in said
    assert f"at WARNING when it is {limit} or longer" in said
