"""How sampling tasks share a prefill: samples of one prompt together, greedy captions alone."""

from __future__ import annotations

import json

from vs2_plugin.pipeline.sampling import SampleTask, prompt_groups


def test_greedy_tasks_of_one_video_listed_under_two_ids_are_two_groups():
    # the same file as 'drawing' and 'drawing_copy' had made one greedy group with two keys, which
    # generation refuses (greedy decoding gives one caption per prompt): the run crashed
    tasks = [
        SampleTask("drawing/global/0", "drawing", "global", "Describe.", "d.mp4", 0, greedy=True),
        SampleTask("drawing_copy/global/0", "drawing_copy", "global", "Describe.", "d.mp4", 0, greedy=True),
    ]
    groups = prompt_groups(tasks)
    assert [(greedy, g.keys) for greedy, g in groups] == [
        (True, ["drawing/global/0"]),
        (True, ["drawing_copy/global/0"]),
    ]


def test_sampled_tasks_of_one_prompt_share_one_group_in_first_task_order():
    tasks = [SampleTask(f"v/global/{i}", "v", "global", "Describe.", "v.mp4", i) for i in range(2)]
    tasks.insert(1, SampleTask("w/global/0", "w", "global", "Describe.", "w.mp4", 0))
    groups = prompt_groups(tasks)
    assert [(greedy, g.video, g.keys) for greedy, g in groups] == [
        (False, "v.mp4", ["v/global/0", "v/global/1"]),
        (False, "w.mp4", ["w/global/0"]),
    ]


def test_a_rerun_with_fewer_workers_keeps_what_every_shard_sampled(tmp_path):
    from vs2_plugin.pipeline.config import SamplingConfig
    from vs2_plugin.pipeline.sampling import sample

    tasks = [SampleTask(f"v{i}/global/0", f"v{i}", "global", "Describe.", f"v{i}.mp4", 0) for i in range(4)]
    out = tmp_path / "samples.jsonl"
    # a 4-worker run stopped after each worker's caption: one log per shard, nothing merged yet
    for shard, task in enumerate(tasks):
        (tmp_path / f"samples.shard{shard}.jsonl").write_text(
            json.dumps({"key": task.key, "caption": f"c{shard}"}) + "\n"
        )
    # resumed with one worker: every task is done, so no model is loaded (model="absent")
    rows = sample(
        tasks, out, model="absent", adapters=[], infer={}, cfg=SamplingConfig(workers=1), seed=0, progress=False
    )
    assert [r["caption"] for r in rows] == ["c0", "c1", "c2", "c3"]
    assert not list(tmp_path.glob("samples.shard*.jsonl"))  # folded into samples.jsonl
