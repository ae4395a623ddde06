"""SIGKILL during judging and during the export of a merged reference model, then rerun.

* ``vs2 eval --judge openai`` against a slow local chat-completions server is killed while
  answers are arriving; the rerun takes every answer that reached the SQLite cache from it
  (the server never sees those requests again) and ends with the report of a clean run.
* A gDPO round in ``export`` mode is killed while LLaMA-Factory writes the merged reference
  checkpoint (after ``config.json``, in the middle of the weights); no ``reference`` folder
  appears that a later stage would load, and the rerun writes the same weights as an
  uninterrupted export.

Kills of the mrDPO driver during sampling and training are in tests/pipeline/test_mrdpo.py.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.support.paths import REPO

KEY = "sk-planted-kill-0123456789abcdef"


# ------------------------------------------------------------------------------ judging

pytest.importorskip("vs2_openai_judge")
from tests.support.fake_openai_server import FakeOpenAIServer, rule_based_answer  # noqa: E402

N_ITEMS, PASSES = 10, 2
ITEMS = [
    {
        "id": f"clip{i}",
        "caption": f"A brown dog number {i} runs across the park while a man sings.",
        "events": [f"A brown dog number {i} runs", "A man sings", f"A red car {i} drives past"],
    }
    for i in range(N_ITEMS)
]
CAPTION_TO_ID = {item["caption"]: item["id"] for item in ITEMS}


def tagged_answer(body: dict) -> str:
    """The rule-based verdict plus a ``request`` tag (ignored by the judge, kept in its cache)."""
    caption = body["messages"][-1]["content"].split("Caption to evaluate:\n", 1)[1]
    verdict = json.loads(rule_based_answer(body))
    verdict["request"] = f"{CAPTION_TO_ID[caption]}#{body['seed']}"
    return json.dumps(verdict)


def request_tag(body: dict) -> str:
    caption = body["messages"][-1]["content"].split("Caption to evaluate:\n", 1)[1]
    return f"{CAPTION_TO_ID[caption]}#{body['seed']}"


def cached_tags(cache: Path) -> set[str]:
    if not cache.exists():
        return set()
    try:
        with sqlite3.connect(f"file:{cache}?mode=ro", uri=True, timeout=5) as conn:
            return {json.loads(answer)["request"] for (answer,) in conn.execute("SELECT answer FROM answers")}
    except sqlite3.OperationalError:  # the table is not created yet
        return set()


def _eval(tmp_path: Path, server: FakeOpenAIServer, name: str, cache: Path) -> subprocess.Popen:
    data = tmp_path / "captions.jsonl"
    data.write_text("".join(json.dumps(i) + "\n" for i in ITEMS))
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENAI_API_KEY=KEY, OPENAI_BASE_URL=server.base_url)
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "vs2_plugin.cli",
            "eval",
            "--input",
            str(data),
            "--out",
            str(tmp_path / name / "report.json"),
            "--judge",
            "openai",
            "--judge-model",
            "fake-judge",
            "--passes",
            str(PASSES),
            "--concurrency",
            "2",
            "--cache",
            str(cache),
            "--quiet",
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(proc: subprocess.Popen) -> None:
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    assert KEY not in out + err


def test_eval_killed_mid_judging_reruns_from_the_cache(tmp_path, kill_when):
    total = N_ITEMS * PASSES
    with FakeOpenAIServer(responder=tagged_answer, latency_s=0.25) as server:
        _finish(_eval(tmp_path, server, "clean", tmp_path / "clean.sqlite"))
        clean = json.loads((tmp_path / "clean" / "report.json").read_text())
        assert server.count == total

        server.reset_counts()
        cache = tmp_path / "cache.sqlite"
        proc = _eval(tmp_path, server, "killed", cache)
        kill_when(proc, lambda: 4 <= len(cached_tags(cache)) <= total - 6, "judging")
        assert proc.returncode == -signal.SIGKILL
        assert not (tmp_path / "killed" / "report.json").exists()  # the report is written at the end only
        kept = cached_tags(cache)
        # a request the kill cut off mid-send reaches the server without its body: not an ask
        asked_before = [request_tag(b) for b in server.requests if "messages" in b]
        assert kept <= set(asked_before) and len(kept) < total

        server.reset_counts()
        _finish(_eval(tmp_path, server, "killed", cache))
        asked_again = [request_tag(b) for b in server.requests]
    assert not kept & set(asked_again), "an answer in the cache was requested again"
    assert len(asked_again) == len(set(asked_again)) == total - len(kept)
    assert kept | set(asked_again) == {f"{i['id']}#{p}" for i in ITEMS for p in range(PASSES)}
    report = json.loads((tmp_path / "killed" / "report.json").read_text())
    strip = lambda r: [{k: v for k, v in item.items() if k != "usage"} for item in r["items"]]
    assert strip(report) == strip(clean)
    assert report["summary"] == clean["summary"]
    assert sum(item["usage"]["requests_cached"] for item in report["items"]) == len(kept)


# ------------------------------------------------------------------------------ export of the merged reference

KILL_DURING_EXPORT = textwrap.dedent(
    """
    import json, os, signal, sys
    import transformers.modeling_utils as modeling_utils

    real_save = modeling_utils.safe_save_file

    def save_half_then_die(tensors, filename, metadata=None):
        real_save(tensors, filename, metadata=metadata)
        if "reference" in filename:  # the merged reference checkpoint of the round
            with open(filename, "r+b") as handle:
                handle.truncate(os.path.getsize(filename) // 2)
            os.kill(os.getpid(), signal.SIGKILL)

    modeling_utils.safe_save_file = save_half_then_die
    from vs2_plugin.gdpo.workflow import run_gdpo_from_dict

    run_gdpo_from_dict(json.loads(sys.argv[1]))
    """
)


@pytest.fixture(scope="module")
def text_model_dir(tmp_path_factory):
    from vs2_plugin.modeling.tiny import build_tiny_text_model

    return build_tiny_text_model(tmp_path_factory.mktemp("text-model"), seed=0)


@pytest.mark.slow
def test_kill_while_exporting_the_merged_reference_leaves_no_loadable_half(text_model_dir, tmp_path):
    from safetensors.torch import load_file

    from tests.support.gdpo import text_args
    from vs2_plugin.gdpo.rounds import export_merged
    from vs2_plugin.gdpo.workflow import run_gdpo_from_dict

    out = tmp_path / "rounds"
    args = text_args(text_model_dir, out, gdpo_rounds=True, gdpo_round_hook="export", max_steps=2)
    run_gdpo_from_dict(dict(args))  # round 1: trained on the base model, nothing to merge yet
    round2 = out / "round-002"

    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    proc = subprocess.run(
        [sys.executable, "-c", KILL_DURING_EXPORT, json.dumps(args)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    # killed after config.json and half of the weights were written ...
    partial = list(round2.glob(".reference.tmp-*"))
    assert len(partial) == 1 and (partial[0] / "config.json").is_file()
    # ... and still nothing a later stage would take for the merged reference
    assert not (round2 / "reference").exists()
    state = json.loads((out / "rounds.json").read_text())
    assert [r["status"] for r in state["rounds"]] == ["done", "preparing"]
    assert state["rounds"][1]["reference_model"] == ""

    result = run_gdpo_from_dict(dict(args))
    assert result.round == 2 and not result.skipped
    state = json.loads((out / "rounds.json").read_text())
    assert [r["status"] for r in state["rounds"]] == ["done", "done"]
    assert state["rounds"][1]["reference_model"] == str(round2 / "reference")
    assert not list(round2.glob(".reference.tmp-*"))  # the stale half was removed

    fresh = export_merged(str(text_model_dir), [str(out / "round-001")], tmp_path / "uninterrupted", "qwen", "float32")
    resumed, expected = (
        load_file(str(round2 / "reference" / "model.safetensors")),
        load_file(str(fresh / "model.safetensors")),
    )
    assert resumed.keys() == expected.keys()
    for name in expected:
        assert (resumed[name] == expected[name]).all(), name


ATOMIC_WRITER = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    from vs2_plugin.gdpo.rounds import atomic_directory

    final, version, die = Path(sys.argv[1]), sys.argv[2], sys.argv[3] == "die"
    with atomic_directory(final) as tmp:
        (tmp / "config.json").write_text(version)
        with open(tmp / "model.safetensors", "w") as handle:
            handle.write(version * 1000)
            handle.flush()
            if die:
                os.kill(os.getpid(), signal.SIGKILL)
            handle.write(version * 1000)
    """
)


def test_atomic_directory_replacement_survives_sigkill(tmp_path):
    """Replacing an existing merged folder: a kill mid-write keeps the old one whole."""
    final = tmp_path / "merged"
    env = dict(os.environ, PYTHONPATH=str(REPO))

    def write(version: str, die: bool) -> int:
        return subprocess.run(
            [sys.executable, "-c", ATOMIC_WRITER, str(final), version, "die" if die else "live"],
            env=env,
            capture_output=True,
            timeout=120,
            check=False,
        ).returncode

    assert write("1", die=False) == 0
    assert write("2", die=True) == -signal.SIGKILL
    assert (final / "config.json").read_text() == "1" and (final / "model.safetensors").read_text() == "1" * 2000
    assert len(list(tmp_path.glob(".merged.tmp-*"))) == 1  # the killed writer's half
    assert write("3", die=False) == 0
    assert (final / "config.json").read_text() == "3" and (final / "model.safetensors").read_text() == "3" * 2000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["merged"]
