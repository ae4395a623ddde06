"""Batched caption generation on the tiny model and the bundled clips (with and without audio,
of different lengths, so left padding and per-sample audio features are exercised)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.paths import REPO
from vs2_plugin.pipeline.generation import (
    CaptionGenerator,
    Decoding,
    PromptGroup,
    batches,
)

MEDIA = REPO / "vs2_plugin" / "assets" / "demo_data" / "media"
VIDEOS = [str(MEDIA / name) for name in ("drawing.mp4", "baby_book.mp4", "bigbuckbunny.mp4", "living_room.mp4")]
INFER = {"video_fps": 1.0, "video_maxlen": 30, "video_max_pixels": 12544, "use_audio_in_video": True}
PROMPTS = ["Describe the video.", "Describe in detail what happens in the video between 1 and 3 seconds."]


@pytest.fixture(scope="module")
def generator(tiny_model_dir) -> CaptionGenerator:
    return CaptionGenerator(str(tiny_model_dir), [], INFER, max_new_tokens=12)


def _groups(samples: int) -> list[PromptGroup]:
    return [
        PromptGroup(v, p, [f"{Path(v).stem}/{k}/{i}" for i in range(samples)])
        for v in VIDEOS
        for k, p in enumerate(PROMPTS)
    ]


def test_greedy_batched_equals_unbatched_and_the_chat_engine(generator, tiny_model_dir):
    groups = _groups(1)
    batched = generator.generate(groups, Decoding(greedy=True), batch_size=5)  # batches of 5 and 3, mixed lengths
    single = generator.generate(groups, Decoding(greedy=True), batch_size=1)
    assert [c.key for c in batched] == [g.keys[0] for g in groups]
    assert [c.text for c in batched] == [c.text for c in single]
    assert all(c.text and c.finish_reason in ("stop", "length") for c in batched)
    assert len({c.text for c in batched}) > 1  # different videos / prompts give different captions
    # same input construction as LLaMA-Factory's chat engine: its greedy answer is the same text
    from llamafactory.chat import ChatModel

    chat = ChatModel(
        {
            "model_name_or_path": str(tiny_model_dir),
            "template": "video_salmonn2",
            "infer_backend": "huggingface",
            "max_new_tokens": 12,
            **INFER,
        }
    )
    for group, caption in list(zip(groups, batched))[:3]:
        reply = chat.chat(
            [{"role": "user", "content": "<video>" + group.prompt}], videos=[group.video], do_sample=False
        )
        assert reply[0].response_text == caption.text, group


def test_samples_are_seeded_per_caption_not_per_batch(generator):
    groups = _groups(2)
    dec = Decoding(greedy=False, temperature=0.8, top_p=0.9, seed=7)
    batched = {c.key: c.text for c in generator.generate(groups, dec, batch_size=4)}
    alone = {c.key: c.text for c in generator.generate(groups[3:5], dec, batch_size=1)}
    assert all(batched[k] == text for k, text in alone.items())
    # the two samples of a prompt differ, and another run seed gives other captions
    assert all(batched[g.keys[0]] != batched[g.keys[1]] for g in groups)
    other = {
        c.key: c.text
        for c in generator.generate(groups[:2], Decoding(greedy=False, temperature=0.8, top_p=0.9, seed=8))
    }
    assert any(other[k] != batched[k] for k in other)


def test_an_unreadable_video_fails_alone(generator, tmp_path):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 100)
    groups = [
        PromptGroup(VIDEOS[0], PROMPTS[0], ["a"]),
        PromptGroup(str(bad), PROMPTS[0], ["bad"]),
        PromptGroup(VIDEOS[2], PROMPTS[0], ["c"]),
    ]
    got = {c.key: c for c in generator.generate(groups, Decoding(greedy=True), batch_size=3)}
    assert (
        got["bad"].finish_reason == "error"
        and got["bad"].text is None
        and "not a readable media file" in got["bad"].error
    )
    ref = {c.key: c.text for c in generator.generate([groups[0], groups[2]], Decoding(greedy=True), batch_size=1)}
    assert got["a"].text == ref["a"] and got["c"].text == ref["c"]


def test_batches_keep_order_and_equal_sample_counts():
    def g(n: int) -> PromptGroup:
        return PromptGroup("v", "p", [str(i) for i in range(n)])

    out = batches([g(2), g(2), g(2), g(1), g(2)], 2)
    assert [[len(x.keys) for x in b] for b in out] == [[2, 2], [2], [1], [2]]
    with pytest.raises(ValueError, match="batch_size"):
        batches([g(1)], 0)


def test_driver_sampling_writes_one_row_per_task_and_resumes(tiny_model_dir, tmp_path):
    from vs2_plugin.pipeline.config import SamplingConfig
    from vs2_plugin.pipeline.sampling import build_tasks, sample
    from vs2_plugin.pipeline.videos import load_videos

    videos = load_videos(REPO / "vs2_plugin/assets/demo_data/vs2_demo_heldout.jsonl")
    cfg = SamplingConfig(max_new_tokens=8, batch_size=3, temperature=0.7)
    tasks = build_tasks(videos, cfg, 1)
    out = tmp_path / "samples.jsonl"
    rows = sample(tasks, out, model=str(tiny_model_dir), adapters=[], infer=INFER, cfg=cfg, seed=3, progress=False)
    assert [r["key"] for r in rows] == [t.key for t in tasks]
    assert all(isinstance(r["caption"], str) and r["finish_reason"] in ("stop", "length") for r in rows)
    # drop the last half and resume: the missing ones come back identical, the kept ones untouched
    lines = out.read_text().splitlines(keepends=True)
    out.write_text("".join(lines[: len(lines) // 2]))
    again = sample(tasks, out, model=str(tiny_model_dir), adapters=[], infer=INFER, cfg=cfg, seed=3, progress=False)
    assert [r["caption"] for r in again] == [r["caption"] for r in rows]
    assert [json.loads(x)["time"] for x in lines[: len(lines) // 2]] == [r["time"] for r in again[: len(lines) // 2]]


def test_shared_prefill_gives_the_captions_of_copied_prompts(generator):
    """n rows continuing from one prefill's repeated cache = n copies of the prompt prefilled
    apart (num_return_sequences); the per-row seeds make the sampled texts comparable."""
    groups = _groups(2)[:5]
    dec = Decoding(greedy=False, temperature=0.9, top_p=0.95, seed=11)
    try:
        generator.share_prefill = False
        copied = [c.text for c in generator.generate(groups, dec, batch_size=5)]
        generator.share_prefill = True
        shared = [c.text for c in generator.generate(groups, dec, batch_size=5)]
    finally:
        generator.share_prefill = True
    assert shared == copied and len(set(shared)) > 5


@pytest.mark.slow
def test_parallel_workers_sample_what_one_process_samples(tiny_model_dir, tmp_path):
    """Shards are whole videos (their samples share a prefill); per-caption seeds make the
    captions independent of sharding and batching."""
    from vs2_plugin.pipeline.config import SamplingConfig
    from vs2_plugin.pipeline.sampling import build_tasks, sample
    from vs2_plugin.pipeline.videos import load_videos

    videos = load_videos(REPO / "vs2_plugin/assets/demo_data/vs2_demo_rl.jsonl")
    one = SamplingConfig(max_new_tokens=6, batch_size=2, temperature=0.7)
    two = SamplingConfig(max_new_tokens=6, batch_size=3, temperature=0.7, workers=2)
    tasks = build_tasks(videos, one, 2)
    a = sample(
        tasks,
        tmp_path / "one.jsonl",
        model=str(tiny_model_dir),
        adapters=[],
        infer=INFER,
        cfg=one,
        seed=5,
        progress=False,
    )
    b = sample(
        tasks,
        tmp_path / "two.jsonl",
        model=str(tiny_model_dir),
        adapters=[],
        infer=INFER,
        cfg=two,
        seed=5,
        progress=False,
    )
    assert [r["key"] for r in b] == [t.key for t in tasks]
    assert [r["caption"] for r in b] == [r["caption"] for r in a]
    shards = [{r["video"] for r in _rows(tmp_path / f"two.shard{k}.jsonl")} for k in range(2)]
    assert shards[0] and shards[1] and not shards[0] & shards[1]


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_frames_default_to_the_papers_sampling_not_llamafactorys(tiny_model_dir):
    """No video_fps / video_maxlen given: 1 frame/s, at most 30 (LLaMA-Factory's own are 2 and 128)."""
    plain = CaptionGenerator(str(tiny_model_dir), [], {"video_max_pixels": 12544}, max_new_tokens=4)
    assert (plain.processor.video_fps, plain.processor.video_maxlen) == (1.0, 30)
    given = CaptionGenerator(str(tiny_model_dir), [], {"video_fps": 2.0, "video_maxlen": 8}, max_new_tokens=4)
    assert (given.processor.video_fps, given.processor.video_maxlen) == (2.0, 8)


def test_a_hub_id_is_left_to_the_hub_unless_it_is_offline(tmp_path, monkeypatch):
    from vs2_plugin.errors import ConfigError
    from vs2_plugin.pipeline.generation import check_model_files

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    check_model_files("Qwen/Qwen2.5-VL-7B-Instruct", ["someone/a-lora"])  # the hub answers for these
    for path in (str(tmp_path / "nope"), "./nope/model", "a/b/c"):
        with pytest.raises(ConfigError, match="not found"):
            check_model_files(path, [])
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ConfigError, match="model Qwen/Qwen2.5-VL-7B-Instruct: not found"):
        check_model_files("Qwen/Qwen2.5-VL-7B-Instruct", [])


def test_an_unknown_template_is_refused_before_anything_loads(tmp_path, monkeypatch):
    """A --run's recorded infer settings reach the generator unchecked: its template is looked up
    first, not by LLaMA-Factory once the tokenizer has loaded (a ValueError with a traceback)."""
    import vs2_plugin.integrations.llamafactory_api as lf
    from vs2_plugin.errors import ConfigError

    def no_loading(*args, **kwargs):
        raise AssertionError("loaded before the template was checked")

    monkeypatch.setattr(lf, "get_infer_args", no_loading)
    monkeypatch.setattr(lf, "load_tokenizer", no_loading)
    with pytest.raises(ConfigError, match=r"infer\.template: 'video_salmon2' is not registered.*video_salmonn2"):
        CaptionGenerator(str(tmp_path), [], {"template": "video_salmon2"})
