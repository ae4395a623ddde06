"""`vs2 eval --judge openai` on rows with only a reference: the reason an extraction failed and
the tokens extraction spent reach report.json / report.md (fake endpoint on 127.0.0.1)."""

import json

import pytest

pytest.importorskip("vs2_openai_judge")

from tests.support.fake_openai_server import Action, rule_based_answer, serve_with_env  # noqa: E402
from vs2_plugin.cli import main as vs2_main  # noqa: E402

PLANTED_KEY = "sk-test-PLANTED-7d1e9a03c5b2f846"
REFUSAL = "I can't help with that."
HTML_502 = "<html>\n<head><title>502 Bad Gateway</title></head>\n<body>\n<h1>502 Bad Gateway</h1>\n</body>\n</html>"

MULTILINE_502 = json.dumps({"error": {"message": "upstream connect error\n  or reset"}})


@pytest.fixture()
def server(monkeypatch):
    yield from serve_with_env(monkeypatch, PLANTED_KEY)


def is_extraction(body: dict) -> bool:
    return not body["messages"][-1]["content"].startswith("Reference events:")


def run_eval(tmp_path, rows, *options: str) -> tuple[int, dict, str]:
    data = tmp_path / "in.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "report.json"
    args = ["eval", "--input", str(data), "--judge", "openai", "--out", str(out), "--quiet"]
    args += ["--cache", str(tmp_path / "cache.sqlite")]
    for option in ("model=fake-judge", "timeout_s=2", "backoff_base_s=0.01", "backoff_max_s=0.02", *options):
        args += ["--judge-option", option]
    code = vs2_main(args)
    return code, json.loads(out.read_text()), out.with_suffix(".md").read_text()


@pytest.mark.parametrize(
    "action, reason",
    [
        (Action.error(401, echo_auth=True), "HTTP 401: Error code: 401 - Incorrect API key provided"),
        (Action.raw(HTML_502, status=502, content_type="text/html"), "HTTP 502"),
        (Action.raw(MULTILINE_502, status=502), "HTTP 502: Error code: 502 - upstream connect error or reset"),
        (Action.ok(REFUSAL), f'malformed answer: answer is not JSON (Expecting value at char 0): "{REFUSAL}"'),
    ],
    ids=["401", "html-502", "multiline-502", "prose"],
)
def test_the_reason_extraction_failed_is_the_items_error(server, tmp_path, action, reason):
    server.rule = lambda body: action
    rows = [{"id": "ref", "caption": "A dog runs.", "reference": "A brown dog runs. A man sings."}]
    code, report, markdown = run_eval(tmp_path, rows, "max_retries=1", "passes=1")
    assert code == 1
    [item] = report["items"]
    error = item["error"]
    assert item["status"] == "failed"
    assert error.startswith(f"event extraction from the reference failed: {reason}"), error
    assert "\n" not in error and f"- `ref`: {error}\n" in markdown
    assert PLANTED_KEY not in error and PLANTED_KEY not in markdown
    if action.echo_auth:
        assert "Bearer [REDACTED]" in error  # the gateway echoed the key: the reason stays, the key does not


def test_usage_counts_extraction_requests_failed_ones_included(server, tmp_path):
    def rule(body):
        if is_extraction(body) and "FORBIDDEN" in body["messages"][-1]["content"]:
            return Action.ok(REFUSAL)
        return None

    server.rule = rule
    rows = [
        {"id": "ref", "caption": "A brown dog runs. A man sings.", "reference": "A brown dog runs. A cat sleeps."},
        {"id": "refused", "caption": "A dog.", "reference": "FORBIDDEN words here. Another sentence."},
        {"id": "events", "caption": "Rain falls at night.", "events": ["Rain falls", "It is night"]},
    ]
    code, report, _ = run_eval(
        tmp_path, rows, "passes=2", "max_retries=1", "price_in_per_mtok=2.5", "price_out_per_mtok=10"
    )
    assert code == 1 and [i["status"] for i in report["items"]] == ["ok", "failed", "ok"]

    # the fake server bills the words of the request's messages and of its answer
    def billed(body):
        answer = REFUSAL if rule(body) else rule_based_answer(body)
        return sum(len(m["content"].split()) for m in body["messages"]), len(answer.split())

    bills = [billed(b) for b in server.requests]
    assert sum(is_extraction(b) for b in server.requests) == 1 + 2  # "refused" was asked twice
    prompt, completion = sum(p for p, _ in bills), sum(c for _, c in bills)
    usage = report["usage"]
    assert (usage["prompt_tokens"], usage["completion_tokens"]) == (prompt, completion)
    assert usage["cost_usd"] == pytest.approx((prompt * 2.5 + completion * 10) / 1e6)
    refused = [billed(b) for b in server.requests if rule(b)]
    by_id = {i["id"]: i for i in report["items"]}
    assert by_id["refused"]["usage"]["prompt_tokens"] == sum(p for p, _ in refused)
    assert by_id["refused"]["usage"]["completion_tokens"] == 2 * len(REFUSAL.split())
    assert "answer is not JSON" in by_id["refused"]["error"]
