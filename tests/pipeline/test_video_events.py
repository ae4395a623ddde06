"""mrDPO's event extraction: what succeeded is kept for the rerun, and a failure says why."""

from __future__ import annotations

import json

import pytest

from vs2_plugin.errors import Vs2Error
from vs2_plugin.judge import runner
from vs2_plugin.judge.config import JudgeConfig
from vs2_plugin.judge.types import Extraction
from vs2_plugin.pipeline.mrdpo import video_events
from vs2_plugin.pipeline.videos import VideoEntry


def test_a_failed_extraction_names_its_reason_and_keeps_the_others(tmp_path, monkeypatch):
    answers = {"A dog barks.": Extraction(["A dog barks"]), "Rain.": Extraction(None, error="HTTP 401:\nbad key")}
    monkeypatch.setattr(runner, "extractions", lambda refs, config, pm=None: [answers[r] for r in refs])
    videos = [VideoEntry("v1", "v1.mp4", "A dog barks."), VideoEntry("v2", "v2.mp4", "Rain.")]
    cache = tmp_path / "events.json"
    with pytest.raises(
        Vs2Error, match="'v2'; the first: event extraction from the reference failed: HTTP 401: bad key;"
    ):
        video_events(videos, JudgeConfig(judge="offline"), cache)
    assert json.loads(cache.read_text()) == {"v1": ["A dog barks"]}


def test_a_run_whose_judge_lacks_its_api_key_stops_before_sampling(tiny_model_dir, tmp_path, monkeypatch):
    from tests.support.paths import REPO
    from vs2_openai_judge.client import NO_API_KEY
    from vs2_plugin.errors import ConfigError
    from vs2_plugin.pipeline.config import load_mrdpo_config
    from vs2_plugin.pipeline.mrdpo import run_mrdpo

    monkeypatch.chdir(REPO)  # the recipe's video lists are relative
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    overrides = [f"model_name_or_path={tiny_model_dir}", f"run_dir={tmp_path / 'run'}", "judge.judge=openai"]
    with pytest.raises(ConfigError, match="judge 'openai': " + NO_API_KEY):
        run_mrdpo(load_mrdpo_config(REPO / "recipes" / "tiny" / "mrdpo.yaml", overrides), progress=False)
    assert not list((tmp_path / "run").rglob("samples*"))  # nothing sampled for a judge that cannot run
