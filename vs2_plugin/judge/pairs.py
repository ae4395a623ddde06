"""Preference-pair selection for mrDPO (paper App. F, Table 3) and the pairwise dataset writer.

A pair (a, b) of samples of the same video and task is kept, with a chosen and b rejected,
when a is better than b on every metric by the round's thresholds:

    e_b - e_a >= delta_e   and   r_b - r_a >= delta_r

where e is the total error rate (Miss + Hall) and r the repetition rate, and (delta_e,
delta_r) are (delta_e_g, delta_r_g) for global captions and (delta_e_t, delta_r_t) for local
ones. A negative threshold lets the chosen sample be worse by up to that much on that metric.
With more than two samples per video and task, the qualifying pair with the largest error
margin is kept (then the largest repetition margin, then the earliest samples), so each
video-task gives at most one pair, as with the paper's two samples per video.

A blank caption (no text, e.g. a model that ends at once) is never offered for a pair, by
:func:`select_pairs`, whichever rule answers the hook: LLaMA-Factory cannot train on an empty
reply, and by the error rates alone silence (Miss 100 %, Hall 0) would be *chosen* over any
caption that tells more wrong events than right ones, teaching the model to say nothing.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from vs2_plugin import hookimpl
from vs2_plugin.errors import ConfigError, DataError, did_you_mean
from vs2_plugin.files import check_folder_can_be_made
from vs2_plugin.judge.types import PreferencePair, ScoredSample

#: Tolerance for threshold comparisons of rates (0.25 - 0.20 must pass a 0.05 threshold).
EPS = 1e-9


@dataclass(frozen=True)
class RoundThresholds:
    """Table 3 thresholds of one round, as fractions (0.05 = 5 %)."""

    delta_e_global: float
    delta_r_global: float
    delta_e_local: float
    delta_r_local: float

    def __post_init__(self) -> None:
        for name in ("delta_e_global", "delta_r_global", "delta_e_local", "delta_r_local"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not -1.0 <= value <= 2.0:
                raise ConfigError(f"{name} must be a fraction in [-1, 2] (0.05 = 5 %), got {value!r}")

    def for_task(self, task: str) -> tuple[float, float]:
        if task == "global":
            return self.delta_e_global, self.delta_r_global
        if task == "local":
            return self.delta_e_local, self.delta_r_local
        raise DataError(f"unknown task {task!r}; expected 'global' or 'local'")


def _t3(e_g: float, r_g: float, e_t: float, r_t: float) -> RoundThresholds:
    return RoundThresholds(e_g / 100, r_g / 100, e_t / 100, r_t / 100)


#: Paper Table 3 (percentages converted to fractions); rounds after 7 reuse round 7.
TABLE3: dict[int, RoundThresholds] = {
    1: _t3(5, 1, 20, 1),
    2: _t3(20, -1, 45, 0),
    3: _t3(20, -1, 45, 0),
    4: _t3(20, -1, 45, 0),
    5: _t3(20, -1, 45, 0),
    6: _t3(25, -1, 45, 0),
    7: _t3(30, -1, 45, 0),
}


class Schedule:
    """Thresholds per round; rounds past the last listed one reuse the last one."""

    def __init__(self, rounds: Mapping[int, RoundThresholds] | None = None):
        rounds = dict(TABLE3 if rounds is None else rounds)
        if not rounds:
            raise ConfigError("a selection schedule needs at least one round")
        for r in rounds:
            if not isinstance(r, int) or r < 1:
                raise ConfigError(f"schedule round numbers must be integers >= 1, got {r!r}")
        self.rounds = dict(sorted(rounds.items()))

    def for_round(self, round_index: int) -> RoundThresholds:
        if not isinstance(round_index, int) or round_index < 1:
            raise ConfigError(f"round_index must be an integer >= 1, got {round_index!r}")
        eligible = [r for r in self.rounds if r <= round_index]
        return self.rounds[eligible[-1]] if eligible else self.rounds[min(self.rounds)]

    @classmethod
    def from_config(cls, data: Mapping | list | None) -> "Schedule":
        """From YAML-style data: ``{1: {delta_e_global: 0.05, ...}, 2: ...}`` or a list of such
        mappings (round 1 first). Values are fractions; keys ``e_g r_g e_t r_t`` are accepted too."""
        if data is None:
            return cls()
        if not isinstance(data, (list, Mapping)):
            raise ConfigError(f"a threshold schedule is a list or a mapping of rounds, got {data!r}")
        items = enumerate(data, start=1) if isinstance(data, list) else data.items()
        aliases = {"e_g": "delta_e_global", "r_g": "delta_r_global", "e_t": "delta_e_local", "r_t": "delta_r_local"}
        rounds = {}
        for key, value in items:
            if not isinstance(value, Mapping):
                raise ConfigError(f"schedule round {key!r} must be a mapping of thresholds, got {value!r}")
            fields = {aliases.get(k, k): v for k, v in value.items()}
            known = {f.name for f in dataclasses.fields(RoundThresholds)}
            unknown = [f"{k}{did_you_mean(str(k), known | set(aliases))}" for k in fields if k not in known]
            missing = sorted(known - set(fields))
            if unknown or missing:
                what = [f"unknown threshold(s) {', '.join(unknown)}"] if unknown else []
                what += [f"missing threshold(s) {', '.join(missing)}"] if missing else []
                raise ConfigError(
                    f"schedule round {key!r}: {'; '.join(what)}; a round sets {', '.join(sorted(known))} "
                    f"(or {', '.join(aliases)})"
                )
            if isinstance(key, bool) or not str(key).strip().isdigit() or int(key) < 1:
                raise ConfigError(f"schedule round {key!r}: a round is a number from 1 (1: {{...}}, 2: {{...}})")
            try:
                rounds[int(key)] = RoundThresholds(**fields)
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"schedule round {key!r}: {exc}") from None
        return cls(rounds)


def is_blank(caption: str) -> bool:
    """A caption with no text: never paired (module doc)."""
    return not caption.strip()


def _qualifies(chosen: ScoredSample, rejected: ScoredSample, delta_e: float, delta_r: float) -> bool:
    return (rejected.error - chosen.error) >= delta_e - EPS and (rejected.rep - chosen.rep) >= delta_r - EPS


def pair_group(sample: ScoredSample) -> tuple:
    """The samples one pair is chosen among: one video, task, prompt and media. App. F pairs per
    video and task; captions of two local intervals (two prompts) answer different questions, so
    one of them cannot be the other's preferred answer."""
    return sample.video_id, sample.task, sample.prompt, tuple(sample.media), tuple(sample.audios)


def choose_pairs(samples: Iterable[ScoredSample], thresholds: RoundThresholds) -> list[PreferencePair]:
    """Pure App. F selection: at most one (chosen, rejected) pair per :func:`pair_group`."""
    groups: dict[tuple, list[ScoredSample]] = {}
    for s in samples:
        groups.setdefault(pair_group(s), []).append(s)
    pairs = []
    for (video_id, task, *_), group in groups.items():
        delta_e, delta_r = thresholds.for_task(task)
        best = None
        for i, a in enumerate(group):
            for j, b in enumerate(group):
                if i == j or not _qualifies(a, b, delta_e, delta_r):
                    continue
                key = (b.error - a.error, b.rep - a.rep, -min(i, j), -i)
                if best is None or key > best[0]:
                    best = (key, a, b)
        if best is not None:
            _, a, b = best
            pairs.append(
                PreferencePair(video_id, task, a.prompt, a, b, error_margin=b.error - a.error, rep_margin=b.rep - a.rep)
            )
    return pairs


def select_pairs(
    samples: list[ScoredSample], round_index: int, schedule: Schedule | None = None, pm=None
) -> list[PreferencePair]:
    """Pairs for ``round_index`` through the ``vs2_select_pairs`` hook (the built-in answers last)."""
    from vs2_plugin.plugins import PluginFailure, answering_plugins, call_hook

    thresholds = (schedule or Schedule()).for_round(round_index)
    samples = [s for s in samples if not is_blank(s.caption)]
    result = call_hook("vs2_select_pairs", pm, samples=samples, thresholds=thresholds, round_index=round_index)
    if result is None:
        raise ConfigError("no vs2_select_pairs implementation answered (is vs2_plugin.judge.pairs registered?)")
    pairs = list(result) if isinstance(result, (list, tuple)) else None
    if pairs is None or not all(isinstance(p, PreferencePair) for p in pairs):
        wrong = type(result) if pairs is None else next(type(p) for p in pairs if not isinstance(p, PreferencePair))
        raise PluginFailure(
            f"a vs2_select_pairs plugin ({', '.join(answering_plugins('vs2_select_pairs', pm))}) answered with "
            f"{wrong.__name__}: expected a list of vs2_plugin.judge.pairs.PreferencePair"
        )
    return pairs


@hookimpl(trylast=True)
def vs2_select_pairs(samples, thresholds, round_index):
    return choose_pairs(samples, thresholds)


# ------------------------------------------------------------------ LLaMA-Factory dataset


def _prompt_with_placeholders(prompt: str, n_videos: int, n_audios: int) -> str:
    """Prefix ``<video>``/``<audio>`` placeholders the prompt lacks (one per media file)."""
    prefix = "<video>" * max(n_videos - prompt.count("<video>"), 0) + "<audio>" * max(
        n_audios - prompt.count("<audio>"), 0
    )
    return prefix + prompt


def pair_record(pair: PreferencePair) -> dict:
    """One sharegpt pairwise record (``conversations`` + ``chosen`` + ``rejected`` + media)."""
    videos = list(pair.chosen.media)
    audios = list(pair.chosen.audios)
    record = {
        "conversations": [{"from": "human", "value": _prompt_with_placeholders(pair.prompt, len(videos), len(audios))}],
        "chosen": {"from": "gpt", "value": pair.chosen.caption},
        "rejected": {"from": "gpt", "value": pair.rejected.caption},
        "videos": videos,
    }
    if audios:
        record["audios"] = audios
    return record


def dataset_info_entry(file_name: str, with_audios: bool = False) -> dict:
    """The ``dataset_info.json`` entry LLaMA-Factory needs for a sharegpt ranking dataset."""
    columns = {"messages": "conversations", "chosen": "chosen", "rejected": "rejected", "videos": "videos"}
    if with_audios:
        columns["audios"] = "audios"
    return {
        "file_name": file_name,
        "formatting": "sharegpt",
        "ranking": True,
        "columns": columns,
        "tags": {"role_tag": "from", "content_tag": "value", "user_tag": "human", "assistant_tag": "gpt"},
    }


def check_dataset_name(name: str) -> None:
    """A dataset name is a plain file stem (it names ``<name>.json`` inside the dataset_dir), and
    not ``dataset_info``: the pairs would be written as the index that names them, then over it."""
    if not name or "/" in name or name.startswith("."):
        raise ConfigError(f"dataset name must be a plain file stem, got {name!r}")
    if name == "dataset_info":
        raise ConfigError("dataset name 'dataset_info' would write the pairs over dataset_info.json; choose another")


def check_destination(dataset_dir: str | os.PathLike, name: str) -> None:
    """Refuse, before any judging, a dataset that could not be written: a bad name, a file where
    the dataset_dir (or a folder above it) should be, a ``dataset_info.json`` that is not a JSON
    object. Found when the pairs are written, it would throw away the judging."""
    check_dataset_name(name)
    dataset_dir = Path(dataset_dir).absolute()
    check_folder_can_be_made(dataset_dir, f"dataset dir {dataset_dir}")
    _dataset_info(dataset_dir / "dataset_info.json")


def write_pairwise_dataset(pairs: list[PreferencePair], dataset_dir: str | os.PathLike, name: str) -> Path:
    """Write ``<dataset_dir>/<name>.json`` and add/replace ``name`` in ``dataset_info.json``.

    Returns the dataset file path. Other entries of an existing dataset_info.json are kept.
    Files are written to a temporary name and renamed, so a crash never leaves half a file.
    """
    check_dataset_name(name)
    dataset_dir = Path(dataset_dir)
    dataset_dir.mkdir(parents=True, exist_ok=True)
    info_path = dataset_dir / "dataset_info.json"
    info = _dataset_info(info_path)  # read first: a broken one stops the run before anything is replaced
    records = [pair_record(p) for p in pairs]
    data_path = dataset_dir / f"{name}.json"
    _atomic_write(data_path, json.dumps(records, ensure_ascii=False, indent=1))
    info[name] = dataset_info_entry(data_path.name, with_audios=any("audios" in r for r in records))
    _atomic_write(info_path, json.dumps(info, ensure_ascii=False, indent=2))
    return data_path


def _dataset_info(path: Path) -> dict:
    """An existing ``dataset_info.json`` (``{}`` if none); one that is not a JSON object is a DataError."""
    if not path.exists():
        return {}
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise DataError(f"{path}: not valid JSON ({exc}); mend or remove it") from None
    if not isinstance(info, dict):
        raise DataError(f"{path}: a JSON object of dataset name -> entry is needed, got a {type(info).__name__}")
    return info


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text + "\n", encoding="utf-8")
    os.replace(tmp, path)
