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
