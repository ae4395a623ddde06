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

Every row, ``--round`` and the dataset dir (its ``dataset_info.json``) are checked before any
judging; an error names the file, the line and the video, and a misspelt key (``Task``) is warned of.

Writes ``<dataset-dir>/<name>.json`` (sharegpt: conversations/chosen/rejected/videos; at most one
pair per video, task, prompt and media; none when a sample could not be judged, unless ``--allow-failed``),
the ``<name>`` entry of ``<dataset-dir>/dataset_info.json`` (ranking: true) and
``<dataset-dir>/<name>.scores.jsonl`` (every sample's metrics, failed ones included).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from vs2_plugin.commands.judge_args import add_judge_arguments, config_from_args
from vs2_plugin.errors import ConfigError
from vs2_plugin.files import load_mapping
from vs2_plugin.judge.pairs import Schedule, check_destination, pair_group, select_pairs, write_pairwise_dataset
from vs2_plugin.judge.sample_scoring import items_to_judge, load_samples, missing_media_warning, scored_samples

#: what an interrupted run leaves (vs2_plugin.cli): the scores and the dataset are written once every sample is judged
INTERRUPTED = (
    "nothing written; a rerun judges every sample again (answers a judge cached, as openai does, are not asked again)"
)


def configure_parser(parser) -> None:
    parser.add_argument("--input", type=Path, required=True, help="JSONL of sampled captions (fields below)")
    parser.add_argument("--dataset-dir", type=Path, required=True, help="LLaMA-Factory dataset_dir to write into")
    parser.add_argument("--name", required=True, help="dataset name (file stem and dataset_info.json key)")
    parser.add_argument("--round", type=int, default=1, help="1-based mrDPO round selecting the Table 3 thresholds")
    parser.add_argument(
        "--schedule", type=Path, default=None, help="YAML/JSON thresholds per round (default: paper Table 3)"
    )
    parser.add_argument(
        "--allow-failed",
        action="store_true",
        help="write the pairs of the judged samples even when some could not be judged (default: write none, exit 1)",
    )
    add_judge_arguments(parser)


def run(args) -> int:
    from vs2_plugin.judge.runner import judge_items

    if args.round < 1:  # said of the option, before the judging rather than after it
        raise ConfigError(f"--round must be >= 1; got {args.round}")
    rows = load_samples(args.input)
    schedule = Schedule.from_config(load_mapping(args.schedule)) if args.schedule else Schedule()
    config = config_from_args(args)
    if warning := missing_media_warning(rows, args.dataset_dir):
        print(f"vs2 pairs: warning: {warning}", file=sys.stderr)
    check_destination(args.dataset_dir, args.name)
    items = items_to_judge(rows)
    judged = {j.id: j for j in judge_items(items, config)} if items else {}
    samples, score_rows = scored_samples(rows, judged)
    args.dataset_dir.mkdir(parents=True, exist_ok=True)
    scores_path = args.dataset_dir / f"{args.name}.scores.jsonl"
    scores_path.write_text("".join(json.dumps(s, ensure_ascii=False) + "\n" for s in score_rows), encoding="utf-8")
    failed = sum(1 for s in score_rows if s["status"] == "failed")
    if failed and not args.allow_failed:  # pairs of a part of the samples would replace the dataset unseen
        print(
            f"vs2 pairs: {failed} of {len(score_rows)} sample(s) could not be judged (see 'error' in {scores_path}); "
            f"no dataset written, {args.dataset_dir / args.name}.json left as it was. Rerun once their cause is mended "
            "(answers a judge cached are not asked again) or give --allow-failed to pair the rest",
            file=sys.stderr,
        )
        return 1
    pairs = select_pairs(samples, args.round, schedule)
    data_path = write_pairwise_dataset(pairs, args.dataset_dir, args.name)
    groups = len({pair_group(s) for s in samples})
    print(
        f"round {args.round}: {len(pairs)} pair(s) from {len(samples)} judged sample(s) in {groups} group(s) "
        f"(video, task, prompt, media); {failed} failed"
    )
    print(f"wrote {data_path}, {args.dataset_dir / 'dataset_info.json'} and {scores_path}")
    if failed:
        print(
            f"vs2 pairs: {failed} sample(s) could not be judged and were left out; see {scores_path}", file=sys.stderr
        )
    return 0
