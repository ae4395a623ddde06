"""Arguments shared by ``vs2 eval`` and ``vs2 pairs``: which judge and how to run it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from vs2_plugin.errors import ConfigError, DataError
from vs2_plugin.judge.config import JudgeConfig


def add_judge_arguments(parser) -> None:
    g = parser.add_argument_group("judge")
    g.add_argument("--judge", default=None, help="registered judge name: offline (default), openai, ... (see `vs2 plugins`)")
    g.add_argument("--judge-config", type=Path, default=None, help="YAML/JSON file with JudgeConfig keys (a top-level 'judge:' mapping is also accepted)")
    g.add_argument("--judge-model", default=None, help="chat model of a remote judge (e.g. gpt-4.1-mini)")
    g.add_argument("--passes", type=int, default=None, help="judging passes K; the median pass is reported (default 7; the offline judge runs once)")
    g.add_argument("--concurrency", type=int, default=None, help="remote requests in flight at most (default 8)")
    g.add_argument("--base-url", default=None, help="OpenAI-compatible endpoint (default: $OPENAI_BASE_URL)")
    g.add_argument("--api-key-file", default=None, help="file holding the API key (default: $OPENAI_API_KEY)")
    g.add_argument("--cache", default=None, help="SQLite answer cache path (default $VS2_CACHE_DIR/judge_cache.sqlite, else ~/.cache/vs2_plugin/judge_cache.sqlite)")
    g.add_argument("--no-cache", action="store_true", help="do not read or write the answer cache")
    g.add_argument("--quiet", action="store_true", help="no progress bar")


def load_mapping(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    else:
        import yaml

        try:
            data = yaml.safe_load(text)  # safe_load: tags such as !!python/object are refused
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML ({exc})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return data


def config_from_args(args) -> JudgeConfig:
    """JudgeConfig from ``--judge-config`` overridden by explicit flags."""
    data: dict[str, Any] = {}
    if args.judge_config is not None:
        data = load_mapping(args.judge_config)
        if isinstance(data.get("judge"), dict):
            data = data["judge"]
    overrides = {
        "judge": args.judge,
        "model": args.judge_model,
        "passes": args.passes,
        "concurrency": args.concurrency,
        "base_url": args.base_url,
        "api_key_file": args.api_key_file,
        "cache_path": args.cache,
    }
    data.update({k: v for k, v in overrides.items() if v is not None})
    data.setdefault("judge", "offline")
    if args.no_cache:
        data["cache_path"] = None
    if args.quiet:
        data["show_progress"] = False
    return JudgeConfig.from_dict(data)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Rows of a JSONL file; a malformed line is a DataError naming the file and line."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror})") from None
    rows = []
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}:{n}: not valid JSON ({exc.msg})") from None
        if not isinstance(row, dict):
            raise DataError(f"{path}:{n}: each line must be a JSON object")
        rows.append(row)
    if not rows:
        raise DataError(f"{path}: no rows")
    return rows


def usage_totals(judgments) -> dict[str, float]:
    totals: dict[str, float] = {}
    for j in judgments:
        for key, value in (j.usage or {}).items():
            totals[key] = totals.get(key, 0) + value
    return totals
