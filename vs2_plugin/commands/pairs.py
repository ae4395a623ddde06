"""``vs2 pairs``: judge sampled captions and write a LLaMA-Factory pairwise DPO dataset (App. F).

Input JSONL, one sampled caption per line (several lines per video and task)::

    {"video_id": "v1", "media": "videos/v1.mp4", "prompt": "Describe the video ...",
     "task": "global", "caption": "...", "events": ["...", ...]}

* ``media``: a path or list of paths (written as the record's ``videos``); optional
  ``audios`` (path or list) for separate audio files.
* ``task``: ``global`` or ``local`` (a local prompt names its time interval).
* ``events`` or ``reference`` (events are then extracted by the judge); or, to skip judging,
  precomputed ``miss_rate``/``hall_rate`` (or ``total_rate``) and optional ``rep_rate``.
* optional ``sample_id``.

Writes ``<dataset-dir>/<name>.json`` (sharegpt: conversations/chosen/rejected/videos),
the ``<name>`` entry of ``<dataset-dir>/dataset_info.json`` (ranking: true) and
``<dataset-dir>/<name>.scores.jsonl`` (every sample's metrics, failed ones included).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from vs2_plugin.errors import DataError
from vs2_plugin.judge import metrics
from vs2_plugin.commands.judge_args import add_judge_arguments, config_from_args, load_mapping, read_jsonl
from vs2_plugin.judge.pairs import Schedule, select_pairs, write_pairwise_dataset
from vs2_plugin.judge.types import JudgeItem, ScoredSample
from vs2_plugin.secrets import redact


def configure_parser(parser) -> None:
    parser.add_argument("--input", type=Path, required=True, help="JSONL of sampled captions (fields below)")
    parser.add_argument("--dataset-dir", type=Path, required=True, help="LLaMA-Factory dataset_dir to write into")
    parser.add_argument("--name", required=True, help="dataset name (file stem and dataset_info.json key)")
    parser.add_argument("--round", type=int, default=1, help="1-based mrDPO round selecting the Table 3 thresholds")
    parser.add_argument("--schedule", type=Path, default=None, help="YAML/JSON thresholds per round (default: paper Table 3)")
    add_judge_arguments(parser)


def _as_list(value) -> list[str]:
    if value is None:
        return []
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def _precomputed(row: dict) -> tuple[float, float] | None:
    if "total_rate" in row:
        error = float(row["total_rate"])
    elif "miss_rate" in row and "hall_rate" in row:
        error = float(row["miss_rate"]) + float(row["hall_rate"])
    else:
        return None
    rep = float(row["rep_rate"]) if "rep_rate" in row else metrics.repetition_rate(row["caption"])
    return error, rep


def load_samples(path: Path) -> list[dict]:
    rows = read_jsonl(path)
    for n, row in enumerate(rows, start=1):
        missing = [k for k in ("video_id", "prompt", "caption") if k not in row]
        if missing:
            raise DataError(f"{path}: row {n}: missing {missing}")
        if row.get("task", "global") not in ("global", "local"):
            raise DataError(f"{path}: row {n}: task must be 'global' or 'local', got {row.get('task')!r}")
        if _precomputed(row) is None and not row.get("events") and not row.get("reference"):
            raise DataError(f"{path}: row {n} (video {row['video_id']!r}) has no events, reference or precomputed rates")
        row.setdefault("sample_id", f"{row['video_id']}#{row.get('task', 'global')}#{n}")
    return rows


def run(args) -> int:
    from vs2_plugin.judge.runner import judge_items

    rows = load_samples(args.input)
    schedule = Schedule.from_config(load_mapping(args.schedule)) if args.schedule else Schedule()
    config = config_from_args(args)
    to_judge = [r for r in rows if _precomputed(r) is None]
    items = [
        JudgeItem(id=r["sample_id"], caption=r["caption"], events=list(r.get("events") or []), reference=r.get("reference"), task=r.get("task", "global"))
        for r in to_judge
    ]
    judged = {j.id: j for j in judge_items(items, config)} if items else {}
    samples, score_rows = [], []
    for r in rows:
        pre = _precomputed(r)
        entry = {"sample_id": r["sample_id"], "video_id": r["video_id"], "task": r.get("task", "global")}
        if pre is None:
            j = judged[r["sample_id"]]
            if not j.ok:
                entry.update(status="failed", error=redact(j.error))
                score_rows.append(entry)
                continue
            rates = j.rates()
            error, rep = rates["total_rate"], j.rep_rate
            if error is None:  # a judge that leaves a count unmeasured: rank by what it measured
                error = rates["miss_rate"] + sum(rates[k] or 0.0 for k in ("incorrect_rate", "hallucination_rate"))
            entry.update(rates)
        else:
            error, rep = pre
        entry.update(status="ok", error_rate=error, rep_rate=rep)
        score_rows.append(entry)
        samples.append(
            ScoredSample(
                video_id=str(r["video_id"]), task=r.get("task", "global"), prompt=r["prompt"], caption=r["caption"],
                error=error, rep=rep, sample_id=r["sample_id"], media=_as_list(r.get("media")), audios=_as_list(r.get("audios")),
            )
        )
    pairs = select_pairs(samples, args.round, schedule)
    data_path = write_pairwise_dataset(pairs, args.dataset_dir, args.name)
    scores_path = args.dataset_dir / f"{args.name}.scores.jsonl"
    scores_path.write_text("".join(json.dumps(s, ensure_ascii=False) + "\n" for s in score_rows), encoding="utf-8")
    failed = sum(1 for s in score_rows if s["status"] == "failed")
    groups = len({(s.video_id, s.task) for s in samples})
    print(f"round {args.round}: {len(pairs)} pair(s) from {len(samples)} judged sample(s) in {groups} video-task group(s); {failed} failed")
    print(f"wrote {data_path}, {args.dataset_dir / 'dataset_info.json'} and {scores_path}")
    if failed:
        print(f"vs2 pairs: {failed} sample(s) could not be judged and were left out; see {scores_path}", file=sys.stderr)
    return 0
