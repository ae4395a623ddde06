"""The OpenAI judge through its own options: `--judge-option` and the `options:` mapping reach it."""

import json

import pytest

pytest.importorskip("vs2_openai_judge")

from tests.support.fake_openai_server import serve_with_env  # noqa: E402
from vs2_plugin.cli import main as vs2_main  # noqa: E402

KEY = "sk-test-options-0123456789abcdef"
ITEMS = [
    {
        "id": "good",
        "caption": "A brown dog runs across the park.",
        "events": ["A brown dog runs", "A cat sleeps on a sofa"],
    }
]


@pytest.fixture()
def server(monkeypatch):
    yield from serve_with_env(monkeypatch, KEY)


def test_judge_option_flags_reach_the_openai_judge(server, tmp_path):
    data = tmp_path / "in.jsonl"
    data.write_text("".join(json.dumps(i) + "\n" for i in ITEMS))
    out = tmp_path / "report.json"
    code = vs2_main(
        [
            "eval",
            "--input",
            str(data),
            "--out",
            str(out),
            "--judge",
            "openai",
            "--quiet",
            "--no-cache",
            "--judge-option",
            "model=options-judge",
            "--judge-option",
            "passes=2",
            "--judge-option",
            "temperature=0.3",
        ]
    )
    assert code == 0
    assert server.count == 2  # K = 2 passes for one item
    assert {body["model"] for body in server.requests} == {"options-judge"}
    assert {body["temperature"] for body in server.requests} == {0.3}
    report = json.loads(out.read_text())
    assert (report["model"], report["passes"]) == ("options-judge", 2)
    assert report["judge_options"]["model"] == "options-judge" and report["judge_options"]["temperature"] == 0.3


def test_judge_config_file_options_mapping(server, tmp_path):
    data = tmp_path / "in.jsonl"
    data.write_text("".join(json.dumps(i) + "\n" for i in ITEMS))
    cfg = tmp_path / "judge.json"
    cfg.write_text(
        json.dumps(
            {
                "judge": {
                    "judge": "openai",
                    "cache_path": None,
                    "show_progress": False,
                    "options": {"model": "file-judge", "passes": 3},
                }
            }
        )
    )
    assert vs2_main(["eval", "--input", str(data), "--out", str(tmp_path / "r.json"), "--judge-config", str(cfg)]) == 0
    assert server.count == 3 and {body["model"] for body in server.requests} == {"file-judge"}


def test_bad_openai_option_value_names_the_option(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    data = tmp_path / "in.jsonl"
    data.write_text("".join(json.dumps(i) + "\n" for i in ITEMS))
    assert (
        vs2_main(
            [
                "eval",
                "--input",
                str(data),
                "--out",
                str(tmp_path / "r.json"),
                "--judge",
                "openai",
                "--judge-option",
                "passes=0",
            ]
        )
        == 2
    )
    assert "openai judge: passes must be an integer >= 1, got 0" in capsys.readouterr().err
