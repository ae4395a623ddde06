"""API keys never leak; configs, checkpoints and plugins are loaded safely.

Secrets: a planted ``OPENAI_API_KEY`` is used for every judge request of a full tiny
``vs2 mrdpo`` run with the OpenAI-compatible judge (the real HTTP server of
tests/support/fake_openai_server.py, with the openai client's debug logging on) and is then found
nowhere under the run folder (logs, caches, LLaMA-Factory's saved configs and checkpoints,
reports) nor on stdout/stderr. A 401 whose body echoes the key and an unexpected exception
that carries it do not show it either.

Safe loading: every ``torch.load`` in vs2_plugin and hooks/ passes ``weights_only=True``,
YAML is read with safe loaders only (a ``!!python/object`` tag is refused before anything
runs), and judges come only from installed ``vs2`` entry points: a name in a config or in
``VS2_PLUGINS`` never imports a module.
"""

from __future__ import annotations

import ast
import hashlib
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.support.paths import REPO

pytest.importorskip("vs2_openai_judge")

from tests.support.fake_openai_server import Action, FakeOpenAIServer, rule_based_answer, serve_with_env

KEY = "sk-planted-" + "Zq7" * 4 + "-4f9c2e71b8a3d5e6"
KEY_PIECES = [KEY, KEY[len("sk-planted-") :], KEY[-16:]]  # the key, its secret part, its tail


def assert_no_key(text: str, where: str) -> None:
    for piece in KEY_PIECES:
        assert piece not in text, f"the API key ({piece!r}) appears in {where}"


def assert_no_key_under(root: Path) -> list[Path]:
    """Every file under ``root``, text or binary (SQLite, safetensors, pickles), is key-free."""
    files = [p for p in root.rglob("*") if p.is_file()]
    for path in files:
        data = path.read_bytes()
        for piece in KEY_PIECES:
            assert piece.encode() not in data, f"the API key appears in {path}"
    return files


def plausible_judge(body: dict) -> str:
    """Event extraction by sentences; judging by word overlap (a tiny random model misses every
    event), plus 0..n hallucinations picked by a hash of the caption, so that the two samples
    of a video get different errors and pairs are selected as with a real judge."""
    answer = json.loads(rule_based_answer(body))
    user = body["messages"][-1]["content"]
    if "missed" in answer:
        events_part, _, caption = user.partition("\n\nCaption to evaluate:\n")
        n_events = len([ln for ln in events_part.splitlines()[1:] if ln.strip()])
        words = caption.split()
        count = int(hashlib.sha256(caption.encode()).hexdigest(), 16) % (n_events + 1)
        answer["hallucinated"] = [" ".join(words[i : i + 3]) or "noise" for i in range(count)]
    return json.dumps(answer)


# ------------------------------------------------------------------------------ full tiny pipeline


@pytest.mark.slow
def test_planted_key_is_nowhere_after_a_full_mrdpo_run(tmp_path, tiny_model_dir):
    cfg = yaml.safe_load((REPO / "recipes" / "tiny" / "mrdpo.yaml").read_text())
    run = tmp_path / "run"
    cfg.update(
        run_dir=str(run),
        model_name_or_path=str(tiny_model_dir),
        rounds=1,
        train_videos=str(REPO / "vs2_plugin/assets/demo_data/vs2_demo_rl.jsonl"),
        heldout_videos=str(REPO / "vs2_plugin/assets/demo_data/vs2_demo_heldout.jsonl"),
    )
    cfg["sampling"]["max_new_tokens"] = 16
    cfg["judge"] = {
        "judge": "openai",
        "show_progress": False,
        "options": {
            "model": "fake-judge",
            "passes": 3,
            "timeout_s": 30.0,
            "backoff_base_s": 0.05,
            "backoff_max_s": 0.2,
        },
    }
    cfg["max_judge_failure_rate"] = 1.0  # the one refused (401) judgment below must not stop this small run
    path = tmp_path / "mrdpo-openai.yaml"
    path.write_text(yaml.safe_dump(cfg))

    with FakeOpenAIServer(responder=plausible_judge) as server:
        # a few faults on the way, so the retry and failure paths log too
        server.script.extend([Action.error(429, retry_after="0"), Action.error(500), Action.malformed()])
        refused = []

        def one_401(body):  # one judging request is refused with a body that quotes the key
            if not refused and body["messages"][-1]["content"].startswith("Reference events:"):
                refused.append(body)
                return Action.error(401, echo_auth=True)
            return None

        server.rule = one_401
        env = dict(
            os.environ,
            OMP_NUM_THREADS="1",
            OPENAI_API_KEY=KEY,
            OPENAI_BASE_URL=server.base_url,
            OPENAI_LOG="debug",
            HTTPX_LOG_LEVEL="trace",
        )
        proc = subprocess.run(
            [sys.executable, "-m", "vs2_plugin.cli", "mrdpo", str(path), "--no-progress"],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        requests, auth = list(server.requests), list(server.auth_headers)
    assert proc.returncode == 0, proc.stderr[-3000:]

    # the key was really used, for both kinds of prompt, and pairs were selected and trained on
    assert auth and all(h == f"Bearer {KEY}" for h in auth)
    prompts = {body["messages"][-1]["content"].split("\n", 1)[0] for body in requests}
    assert {"Caption:", "Reference events:"} <= prompts
    state = json.loads((run / "pipeline_state.json").read_text())
    steps = state["rounds"]["1"]["results"]
    assert steps["pairs"]["count"] >= 1
    assert steps["train"].get("adapter")
    judged = [json.loads(line) for p in run.rglob("*judged.jsonl") for line in p.read_text().splitlines()]
    failed = [r["judgment"]["error"] for r in judged if r["judgment"]["status"] == "failed"]
    assert len(failed) == 1 and "HTTP 401" in failed[0] and "[REDACTED]" in failed[0]

    assert_no_key(proc.stdout, "stdout")
    assert_no_key(proc.stderr, "stderr")
    # the openai client's debug log was on; the quiet console keeps it in the run's log (checked below)
    assert "Sending HTTP Request" in (run / "logs" / "mrdpo.log").read_text()
    files = {p.relative_to(run).as_posix() for p in assert_no_key_under(run)}
    # among them the configs LLaMA-Factory and the driver saved, the cache and the logs
    for expected in (
        "config.json",
        "judge_cache.sqlite",
        "round-001/train.yaml",
        "round-001/train.log",
        "round-001/judged.jsonl",
        "gdpo/round-001/adapter_config.json",
        "gdpo/round-001/training_args.bin",
        "gdpo/round-001/trainer_state.json",
        "gdpo/rounds.json",
        "round-001/pairs/pairs.json",
        "final_model.json",
        "report.md",
        "report.html",
        "logs/mrdpo.log",
    ):
        assert expected in files, f"{expected} missing from the run folder: {sorted(files)}"


# ------------------------------------------------------------------------------ errors that echo the key


@pytest.fixture()
def server(monkeypatch):
    yield from serve_with_env(monkeypatch, KEY)


ITEMS = [
    {"id": "a", "caption": "A dog runs.", "events": ["A dog runs", "A man sings"]},
    {"id": "b", "caption": "Rain falls.", "events": ["Rain falls", "It is night"]},
]


def _eval_args(tmp_path: Path, *extra: str) -> list[str]:
    data = tmp_path / "in.jsonl"
    data.write_text("".join(json.dumps(i) + "\n" for i in ITEMS))
    return [
        "eval",
        "--input",
        str(data),
        "--out",
        str(tmp_path / "out" / "report.json"),
        "--judge",
        "openai",
        "--judge-model",
        "fake-judge",
        "--passes",
        "1",
        "--cache",
        str(tmp_path / "out" / "cache.sqlite"),
        "--quiet",
        *extra,
    ]


def test_401_that_echoes_the_key_does_not_show_it(server, tmp_path, caplog, capsys):
    from vs2_plugin.cli import main as vs2_main

    caplog.set_level(logging.DEBUG)
    server.rule = lambda body: Action.error(401, echo_auth=True)
    assert vs2_main(_eval_args(tmp_path)) == 1
    assert server.count == 2 and all(h == f"Bearer {KEY}" for h in server.auth_headers)  # not retried
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert [i["status"] for i in report["items"]] == ["failed", "failed"]
    assert all("HTTP 401" in i["error"] and "[REDACTED]" in i["error"] for i in report["items"])
    out = capsys.readouterr()
    for text, where in ((caplog.text, "logs"), (out.out, "stdout"), (out.err, "stderr")):
        assert_no_key(text, where)
    assert_no_key_under(tmp_path / "out")


def test_unexpected_exception_carrying_the_key_is_redacted(server, tmp_path, capsys, monkeypatch):
    """A bug deep in the judge whose message holds the key: traceback shown, key not."""
    from vs2_openai_judge import client
    from vs2_plugin.cli import main as vs2_main

    def broken(response):
        raise RuntimeError(f"cannot read answer for api_key={KEY} (Authorization: Bearer {KEY})")

    monkeypatch.setattr(client, "answer_text", broken)
    assert vs2_main(_eval_args(tmp_path)) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "RuntimeError: cannot read answer for api_key=[REDACTED]" in err
    assert_no_key(err, "the traceback")


def test_key_from_api_key_file_is_redacted_too(server, tmp_path, monkeypatch, capsys):
    """The key may come from a file rather than the environment: it is redacted all the same."""
    from vs2_plugin.cli import main as vs2_main

    monkeypatch.delenv("OPENAI_API_KEY")
    key_file = tmp_path / "key.txt"
    key_file.write_text(KEY + "\n")
    server.rule = lambda body: Action.error(401, echo_auth=True)
    assert vs2_main(_eval_args(tmp_path, "--api-key-file", str(key_file))) == 1
    assert all(h == f"Bearer {KEY}" for h in server.auth_headers)
    out = capsys.readouterr()
    assert_no_key(out.out + out.err, "output")
    assert_no_key_under(tmp_path / "out")


def test_training_child_gets_no_judge_key(tmp_path, monkeypatch):
    """``llamafactory-cli train`` runs without OPENAI_API_KEY in its environment."""
    from vs2_plugin.pipeline import train

    seen = {}

    def fake_call(cmd, stdout=None, stderr=None, env=None):
        seen.update(env)
        return 0

    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setattr(train.subprocess, "call", fake_call)
    train.run_training({"stage": "gdpo"}, tmp_path / "train.yaml", tmp_path / "train.log")
    assert "OPENAI_API_KEY" not in seen and seen.get("PATH")
    assert_no_key("\n".join(f"{k}={v}" for k, v in seen.items()), "the training environment")


# ------------------------------------------------------------------------------ safe loading


def _python_files() -> list[Path]:
    files = sorted((REPO / "vs2_plugin").rglob("*.py")) + sorted((REPO / "hooks").rglob("*.py"))
    assert len(files) > 20
    return files


def _calls(tree: ast.AST, module: str, names: set[str]):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            if (
                isinstance(f, ast.Attribute)
                and f.attr in names
                and isinstance(f.value, ast.Name)
                and f.value.id == module
            ):
                yield node


def test_every_torch_load_is_weights_only():
    found = 0
    for path in _python_files():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in _calls(tree, "torch", {"load"}):
            found += 1
            kw = {k.arg: k.value for k in node.keywords}
            where = f"{path.relative_to(REPO)}:{node.lineno}"
            assert "weights_only" in kw, f"torch.load without weights_only at {where}"
            assert isinstance(kw["weights_only"], ast.Constant) and kw["weights_only"].value is True, where
        for node in ast.walk(tree):  # `from torch import load` would dodge the check above
            if isinstance(node, ast.ImportFrom) and node.module == "torch":
                assert "load" not in {a.name for a in node.names}, f"{path.relative_to(REPO)}:{node.lineno}"
    assert found >= 2  # the Whisper checkpoint and the reference log-prob cache


def test_no_unsafe_deserializer_is_used():
    import yaml

    from vs2_plugin.files import _recipe_loader, recipe_yaml

    assert issubclass(_recipe_loader(), yaml.SafeLoader)
    with pytest.raises(yaml.YAMLError):
        recipe_yaml("x: !!python/object/apply:os.system ['true']")
    for path in _python_files():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        rel = path.relative_to(REPO)
        for node in _calls(
            tree, "yaml", {"load", "load_all", "unsafe_load", "unsafe_load_all", "full_load", "full_load_all"}
        ):
            loader = {k.arg: k.value for k in node.keywords}.get("Loader") or (
                node.args[1] if len(node.args) > 1 else None
            )
            # PyYAML's safe loaders, or the recipe loader (a SafeLoader subclass, checked below)
            recipe_loader = isinstance(loader, ast.Call) and getattr(loader.func, "id", None) == "_recipe_loader"
            assert node.func.attr in ("load", "load_all") and (
                recipe_loader or (isinstance(loader, ast.Attribute) and loader.attr in ("SafeLoader", "CSafeLoader"))
            ), f"unsafe YAML loading at {rel}:{node.lineno}"
        for node in _calls(tree, "pickle", {"load", "loads", "Unpickler"}):
            pytest.fail(f"pickle deserialisation at {rel}:{node.lineno}")
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Name)
                and node.id in ("eval", "exec")
                and isinstance(getattr(node, "ctx", None), ast.Load)
            ):
                pytest.fail(f"{node.id} at {rel}:{node.lineno}")


EVIL_YAML = "!!python/object/apply:os.system ['touch {marker}']"


def _cli(args: list[str], cwd: Path, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", **(env_extra or {}))
    return subprocess.run(
        [sys.executable, "-m", "vs2_plugin.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_python_tags_in_yaml_are_refused(tmp_path):
    from vs2_plugin.errors import ConfigError
    from vs2_plugin.files import load_mapping
    from vs2_plugin.pipeline.config import load_mrdpo_config

    marker = tmp_path / "pwned"
    driver = tmp_path / "mrdpo.yaml"
    driver.write_text(f"run_dir: {tmp_path / 'run'}\nmodel: " + EVIL_YAML.format(marker=marker) + "\n")
    judge = tmp_path / "judge.yaml"
    judge.write_text("judge:\n  judge: openai\n  model: " + EVIL_YAML.format(marker=marker) + "\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_mrdpo_config(driver)
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_mapping(judge)
    proc = _cli(["mrdpo", str(driver)], tmp_path)
    assert (
        proc.returncode == 2 and "could not determine a constructor" in proc.stderr and "Traceback" not in proc.stderr
    )
    data = tmp_path / "in.jsonl"
    data.write_text(json.dumps(ITEMS[0]) + "\n")
    proc = _cli(
        ["eval", "--input", str(data), "--out", str(tmp_path / "r.json"), "--judge-config", str(judge)], tmp_path
    )
    assert proc.returncode == 2 and "not valid YAML" in proc.stderr and "Traceback" not in proc.stderr
    assert not marker.exists()


def test_judges_load_only_from_installed_entry_points(tmp_path):
    """A module named as a judge, in a config or in VS2_PLUGINS, is never imported."""
    marker = tmp_path / "imported"
    plugins = tmp_path / "site"
    plugins.mkdir()
    (plugins / "evil_judge.py").write_text(f"open({str(marker)!r}, 'w').write('imported')\n")
    env = {
        "PYTHONPATH": os.pathsep.join([str(plugins), str(REPO), str(REPO / "hooks" / "vs2_openai_judge")]),
        "VS2_PLUGINS": "openai,evil_judge",
        "OPENAI_API_KEY": KEY,
        "OPENAI_BASE_URL": "http://127.0.0.1:9/v1",
    }
    data = tmp_path / "in.jsonl"
    data.write_text(json.dumps(ITEMS[0]) + "\n")

    proc = _cli(
        ["eval", "--input", str(data), "--out", str(tmp_path / "r.json"), "--judge", "evil_judge"], tmp_path, env
    )
    assert proc.returncode == 2 and "no judge named 'evil_judge' is registered" in proc.stderr

    (tmp_path / "judge.yaml").write_text(
        yaml.safe_dump({"judge": {"judge": "evil_judge.plugin", "options": {"plugin": "evil_judge"}}})
    )
    proc = _cli(
        [
            "eval",
            "--input",
            str(data),
            "--out",
            str(tmp_path / "r.json"),
            "--judge-config",
            str(tmp_path / "judge.yaml"),
        ],
        tmp_path,
        env,
    )
    assert proc.returncode == 2 and "no judge named 'evil_judge.plugin'" in proc.stderr

    cfg = yaml.safe_load((REPO / "recipes" / "tiny" / "mrdpo.yaml").read_text())
    cfg.update(
        run_dir=str(tmp_path / "run"),
        model_name_or_path=str(tmp_path / "no-model"),
        judge={"judge": "evil_judge"},
        train_videos=str(REPO / "vs2_plugin/assets/demo_data/vs2_demo_rl.jsonl"),
        heldout_videos=str(REPO / "vs2_plugin/assets/demo_data/vs2_demo_heldout.jsonl"),
    )
    (tmp_path / "mrdpo.yaml").write_text(yaml.safe_dump(cfg))
    proc = _cli(["mrdpo", str(tmp_path / "mrdpo.yaml")], tmp_path, env)
    assert proc.returncode == 2 and "no judge named 'evil_judge' is registered" in proc.stderr

    proc = _cli(["plugins"], tmp_path, env)
    assert proc.returncode == 0 and "judges: offline, openai" in proc.stdout and "evil_judge" not in proc.stdout
    assert not marker.exists(), "a module named in a config or VS2_PLUGINS was imported"
    for text in (proc.stdout, proc.stderr):
        assert_no_key(text, "output")


def test_entry_point_is_the_only_way_in(monkeypatch):
    """The plugin manager imports exactly the built-ins and the ``vs2`` entry points."""
    from importlib import metadata

    from vs2_plugin.plugins import ENTRY_POINT_GROUP, build_plugin_manager

    imported = []
    real = metadata.EntryPoint.load

    def spy(self):
        imported.append(self.value)
        return real(self)

    monkeypatch.setattr(metadata.EntryPoint, "load", spy)
    monkeypatch.setenv("VS2_PLUGINS", "openai,os,subprocess,evil_judge")
    build_plugin_manager()
    installed = {ep.value for ep in metadata.entry_points(group=ENTRY_POINT_GROUP) if ep.name == "openai"}
    assert set(imported) == installed == {"vs2_openai_judge.plugin"}
    assert "evil_judge" not in sys.modules
