"""``sampling.backend: openai`` never samples a later round from a stale server: the driver
refuses it without a ``vs2_reload_sampling_server`` implementation, and sampling asks that hook
for the server of exactly the adapters it samples from. The same fake server also stands in for a
model that has fallen silent (every caption blank), which the driver must not pair."""

from __future__ import annotations

import pytest

from tests.support.fake_openai_server import FakeOpenAIServer
from tests.support.paths import REPO
from vs2_plugin import hookimpl
from vs2_plugin.errors import Vs2Error
from vs2_plugin.pipeline.config import MrDPOConfig, SamplingConfig
from vs2_plugin.pipeline.sampling import SampleTask, require_reload_hook, sample
from vs2_plugin.plugins import build_plugin_manager, get_plugin_manager

DEMO = REPO / "vs2_plugin" / "assets" / "demo_data"


def _openai_cfg(url: str) -> SamplingConfig:
    return SamplingConfig(backend="openai", base_url=url, max_new_tokens=8, concurrency=1)


def test_driver_refuses_openai_backend_without_a_reload_hook(tmp_path):
    from vs2_plugin.pipeline.mrdpo import run_mrdpo

    cfg = MrDPOConfig(
        run_dir=str(tmp_path / "run"),
        model_name_or_path="unused",
        train_videos=str(DEMO / "vs2_demo_rl.jsonl"),
        rounds=2,
        sampling={"backend": "openai", "base_url": "http://127.0.0.1:9/v1"},
    )
    with pytest.raises(Vs2Error, match="vs2_reload_sampling_server"):
        run_mrdpo(cfg, progress=False)
    assert not (tmp_path / "run").exists()  # refused before anything ran
    require_reload_hook(SamplingConfig(), build_plugin_manager(entry_points=[]))  # local backend needs none


def test_sampling_asks_the_hook_for_a_server_of_its_adapters(tmp_path):
    calls = []
    with (
        FakeOpenAIServer(responder=lambda body: "a caption") as stale,
        FakeOpenAIServer(responder=lambda body: "fresh") as fresh,
    ):

        class Reloader:
            @hookimpl
            def vs2_reload_sampling_server(self, base_url, model, adapters):
                calls.append((base_url, model, adapters))
                return fresh.base_url

        pm = get_plugin_manager()
        plugin = Reloader()
        pm.register(plugin, name="test-reloader")
        try:
            cfg = _openai_cfg(stale.base_url)
            require_reload_hook(cfg)  # implemented now: no error
            video = str(DEMO / "media" / "drawing.mp4")
            tasks = [SampleTask(f"t/{i}", "drawing", "global", "Describe.", video, i) for i in range(2)]
            rows = sample(
                tasks,
                tmp_path / "s.jsonl",
                model="base",
                adapters=["r1", "r2"],
                infer={},
                cfg=cfg,
                seed=1,
                progress=False,
            )
            # nothing left to sample: the server is not reloaded again
            sample(
                tasks,
                tmp_path / "s.jsonl",
                model="base",
                adapters=["r1", "r2"],
                infer={},
                cfg=cfg,
                seed=1,
                progress=False,
            )
        finally:
            pm.unregister(plugin)
        assert calls == [(stale.base_url, "base", ["r1", "r2"])]
        assert [r["caption"] for r in rows] == ["fresh", "fresh"]
        assert fresh.count == 2 and stale.count == 0
    with pytest.raises(Vs2Error, match="vs2_reload_sampling_server"):
        require_reload_hook(cfg, build_plugin_manager(entry_points=[]))


def test_a_round_whose_samples_are_blank_pairs_none_and_says_so(tmp_path, tiny_model_dir):
    """A model that has fallen silent: every sampled caption blank -> no pair, the count recorded
    and warned about, the round's training skipped (nothing for LLaMA-Factory to refuse)."""
    import json

    from vs2_plugin.pipeline.mrdpo import run_mrdpo

    with FakeOpenAIServer(responder=lambda body: "") as server:

        class SameServer:
            @hookimpl
            def vs2_reload_sampling_server(self, base_url, model, adapters):
                return server.base_url

        pm = get_plugin_manager()
        plugin = SameServer()
        pm.register(plugin, name="test-same-server")
        try:
            cfg = MrDPOConfig(
                run_dir=str(tmp_path / "run"),
                model_name_or_path=str(tiny_model_dir),  # the rounds train it; sampling asks the server
                train_videos=str(DEMO / "vs2_demo_rl.jsonl"),
                rounds=1,
                sampling={"backend": "openai", "base_url": server.base_url, "max_new_tokens": 8, "concurrency": 1},
                thresholds=[
                    {"delta_e_global": -1.0, "delta_r_global": -1.0, "delta_e_local": -1.0, "delta_r_local": -1.0}
                ],
            )
            with pytest.warns(
                UserWarning, match=r"round 1: (\d+) of \1 sampled captions are blank and were not paired"
            ):
                run_mrdpo(cfg, progress=False)
        finally:
            pm.unregister(plugin)
    state = json.loads((tmp_path / "run" / "pipeline_state.json").read_text())["rounds"]["1"]["results"]
    n = sum(1 for _ in open(tmp_path / "run" / "round-001" / "judged.jsonl"))
    assert n > 0 and state["pairs"] == {"count": 0, "blank_samples": n}
    assert state["train"] == {"skipped": "no sample pair passed this round's thresholds"}
