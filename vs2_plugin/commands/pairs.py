"""``vs2 pairs``: judge sampled captions and write a LLaMA-Factory pairwise DPO dataset (App. F).

Input JSONL, one sampled caption per line (several lines per video and task)::

    {"video_id": "v1", "media": "videos/v1.mp4", "prompt": "Describe the video ...",
     "task": "global", "caption": "...", "events": ["...", ...]}

* ``media``: a path or list of paths (written as the record's ``videos``); ``audios`` (path or
  list) for separate audio files; a row needs one of the two.
* ``task``: ``global`` or ``local`` (a local prompt names its time interval).
* ``events`` or ``reference`` (events are then extracted by the judge); or, to skip judging,
  precomputed ``miss_rate``/``hall_rate`` (or ``total_rate``) and optional ``rep_rate``
  (numbers: Miss and repetition in [0, 1], Hall and Total >= 0).
* optional ``sample_id`` (unique; default ``<video_id>#<task>#<line>``).

Every row is checked before any judging; an error names the file, the line and the video.

Writes ``<dataset-dir>/<name>.json`` (sharegpt: conversations/chosen/rejected/videos),
the ``<name>`` entry of ``<dataset-dir>/dataset_info.json`` (ranking: true) and
``<dataset-dir>/<name>.scores.jsonl`` (every sample's metrics, failed ones included).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from vs2_plugin.commands.judge_args import add_judge_arguments, config_from_args
from vs2_plugin.files import load_mapping
from vs2_plugin.judge.pairs import Schedule, select_pairs, write_pairwise_dataset
from vs2_plugin.judge.sample_scoring import items_to_judge, load_samples, scored_samples


def configure_parser(parser) -> None:
    parser.add_argument("--input", type=Path, required=True, help="JSONL of sampled captions (fields below)")
    parser.add_argument("--dataset-dir", type=Path, required=True, help="LLaMA-Factory dataset_dir to write into")
    parser.add_argument("--name", required=True, help="dataset name (file stem and dataset_info.json key)")
    parser.add_argument("--round", type=int, default=1, help="1-based mrDPO round selecting the Table 3 thresholds")
    parser.add_argument(
        "--schedule", type=Path, default=None, help="YAML/JSON thresholds per round (default: paper Table 3)"
    )
    add_judge_arguments(parser)


def run(args) -> int:
    from vs2_plugin.judge.runner import judge_items

    rows = load_samples(args.input)
    schedule = Schedule.from_config(load_mapping(args.schedule)) if args.schedule else Schedule()
    config = config_from_args(args)
    items = items_to_judge(rows)
    judged = {j.id: j for j in judge_items(items, config)} if items else {}
    samples, score_rows = scored_samples(rows, judged)
    pairs = select_pairs(samples, args.round, schedule)
    data_path = write_pairwise_dataset(pairs, args.dataset_dir, args.name)
    scores_path = args.dataset_dir / f"{args.name}.scores.jsonl"
    scores_path.write_text("".join(json.dumps(s, ensure_ascii=False) + "\n" for s in score_rows), encoding="utf-8")
    failed = sum(1 for s in score_rows if s["status"] == "failed")
    groups = len({(s.video_id, s.task) for s in samples})
    print(
        f"round {args.round}: {len(pairs)} pair(s) from {len(samples)} judged sample(s) in {groups} video-task group(s); {failed} failed"
    )
    print(f"wrote {data_path}, {args.dataset_dir / 'dataset_info.json'} and {scores_path}")
    if failed:
        print(
            f"vs2 pairs: {failed} sample(s) could not be judged and were left out; see {scores_path}", file=sys.stderr
        )
    return 0
