"""The short README and the docs/ manual stay navigable and true.

README.md is at most 200 lines and links every docs/ page; every relative link of the README
and docs/ resolves; every `vs2 <subcommand>` they name is a real subcommand; every recipe path
they name exists and every recipe under recipes/ has its row in the README's recipe table; the
benchmark figures quoted in docs/benchmarks.md are those of benchmarks/results/*.json.
"""

from __future__ import annotations

import json
import re
import subprocess
from typing import Any

from tests.support.paths import REPO, VENV_BIN

README_PATH = REPO / "README.md"
DOCS = sorted((REPO / "docs").glob("*.md"))
PAGES = [README_PATH, *DOCS]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def _text(path):
    return path.read_text(encoding="utf-8")


def test_readme_is_short():
    n = len(_text(README_PATH).splitlines())
    assert n <= 200, f"README.md has {n} lines (at most 200); move the detail into a docs/ page"


def test_every_docs_page_is_linked_from_the_readme():
    assert DOCS, "docs/ holds no page"
    linked = {(README_PATH.parent / t.split("#")[0]).resolve() for t in LINK.findall(_text(README_PATH))}
    unlinked = [p.name for p in DOCS if p.resolve() not in linked]
    assert not unlinked, f"docs/ pages the README does not link: {unlinked}"


def test_relative_links_resolve():
    broken = []
    for page in PAGES:
        for target in LINK.findall(_text(page)):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue  # web address or an anchor on the same page
            if not (page.parent / target.split("#")[0]).exists():
                broken.append(f"{page.relative_to(REPO)} -> {target}")
    assert not broken, f"links that lead nowhere: {broken}"


def _subcommands() -> set[str]:
    out = subprocess.run([str(VENV_BIN / "vs2"), "--help"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    listing = out.stdout.split("positional arguments:")[1].split("options:")[0]
    return set(re.findall(r"^ {4}([a-z][\w-]*)", listing, re.M))


def test_named_subcommands_exist():
    real = _subcommands()
    assert {"demo", "mrdpo", "rebirth"} <= real
    named = set()
    for page in PAGES:
        named |= set(re.findall(r"\bvs2 ([a-z][\w-]*)", _text(page)))
    assert named, "the manual names no vs2 subcommand"
    unknown = sorted(named - real)
    assert not unknown, f"README/docs name vs2 subcommands that `vs2 --help` does not list: {unknown}"


def test_named_recipe_paths_exist():
    named = set()
    for page in PAGES:
        named |= {p.rstrip(".") for p in re.findall(r"\brecipes/[\w./-]*", _text(page))}
    assert named
    missing = sorted(p for p in named if not (REPO / p).exists())
    assert not missing, f"README/docs name recipe paths that do not exist: {missing}"


def test_every_recipe_has_a_row_in_the_readme_table():
    readme = _text(README_PATH)
    rows = set(re.findall(r"^\| `(recipes/[^`]+)` \|", readme, re.M))
    files = {str(p.relative_to(REPO)) for p in (REPO / "recipes").rglob("*") if p.suffix in {".yaml", ".json"}}
    assert files, "recipes/ holds no recipe"
    assert files == rows, f"recipes without a row: {sorted(files - rows)}; rows without a file: {sorted(rows - files)}"


def _result(name: str, *keys: str) -> Any:
    value = json.loads((REPO / "benchmarks" / "results" / f"{name}.json").read_text())
    for key in keys:
        value = value[key]
    return value


ROBUST = ("encoders", "minilm")


def test_benchmark_figures_are_those_of_the_results():
    page = _text(REPO / "docs" / "benchmarks.md")
    quoted = {
        f"**{_result('data_path', 'reader_speedup'):.2f}×**",
        f"**{_result('data_path', 'pipeline_speedup'):.2f}×**",
        f"**{_result('gdpo_step', 'gdpo_vs_dpo_epoch_ratio'):.2f}**",
        f"**{_result('gdpo_step', 'peak_mem_ratio'):.2f}**",
        f"**{_result('judge_throughput', 'wall_vs_limit_ratio'):.2f}**",
        f"**{_result('judge_throughput', 'cached_speedup'):.0f}×**",
        f"**{_result('offline_judge_auc', 'encoders', 'minilm', 'auc_in_sample'):.3f}**",
        f"**{_result('offline_judge_auc', 'encoders', 'minilm', 'auc_leave_one_captioner_out_mean'):.3f}**",
        f"**{_result('offline_judge_auc', 'encoders', 'minilm', 'auc_held_out_events_mean'):.3f}**",
        f"**{_result('offline_judge_auc', 'baseline_word_overlap_auc'):.3f}**",
        f"**{100 * _result('offline_judge_robustness', *ROBUST, 'swapped_details', 'hall_rises_share'):.1f} %**",
        f"**{100 * _result('offline_judge_robustness', *ROBUST, 'swapped_details_pronouns_list', 'hall_rises_share'):.1f} %**",
        f"**{100 * _result('offline_judge_robustness', *ROBUST, 'counts_in_digits_moved', 'hall_rises_share'):.1f} %**",
        f"**{100 * _result('offline_judge_robustness', *ROBUST, 'colours_in_compounds', 'hall_rises_share'):.1f} %**",
        f"**{100 * _result('offline_judge_robustness', *ROBUST, 'negated_statements', 'hall_rises_share'):.1f} %**",
        f"**{100 * _result('offline_judge_robustness', *ROBUST, 'reordered_statements', 'hall_rises_share'):.1f} %**",
        f"**{100 * _result('offline_judge_robustness', *ROBUST, 'most_similar_other_video', 'miss_ge_90_share'):.1f} %**",
        f"**{_result('offline_event_extraction', 'offline', 'count_ratio_median'):.2f}**",
        f"**{_result('offline_event_extraction', 'offline', 'f1'):.3f}**",
        f"**{_result('sampling', 'batched_vs_chat_speedup'):.2f}×**",
        f"**{_result('encoder_cache', 'cache_speedup'):.2f}×**",
        f"**{_result('encoder_cache', 'cache_loader_speedup'):.2f}×**",
        f"**{_result('offline_judge_speed', 'events_per_s_1thread'):,.0f}**",
        f"**{_result('offline_judge_speed', 'encoders', 'wordllama', 'events_per_s_1thread'):,.0f}**",
        f"**{_result('learning', 'sft_global_miss'):.3f}**",
        f"**{_result('learning', 'mrdpo_total_ratio'):.3f}**",
        f"**{_result('learning', 'local_miss_gap_time_alignment'):.3f}**",
        f"**{_result('learning', 'ablations', 'time_alignment_broken', 'gap_of_exact_captions'):.3f}**",
        f"**{100 * _result('learning_interval_probe', 'share_higher_than_own', 'other_interval'):.1f} %**",
        f"**{100 * _result('learning_interval_probe', 'share_higher_than_own', 'sound_moved'):.1f} %**",
        f"**{_result('learning_preference_headroom', 'rounds')[0]['best_of_samples_ratio']:.3f}**",
        f"**{_result('learning_preference_headroom', 'greedy', 'best_of_ratio_to_greedy', '2'):.3f}**",
        f"**{_result('learning_abstention_headroom', 'heldout', 'ratio'):.3f}**",
        *(
            f"**{-_result('learning_preference_headroom', 'rounds')[0][f'after_round_{group}']['change_vs_control']:.3f}**"
            for group in ("paired", "unpaired")
        ),
        *(
            f"**{100 * _result('learning', 'ablations', 'time_alignment_broken', 'interval_selectivity_intact', k):.1f} %**"
            for k in ("own_interval_miss", "other_interval_miss")
        ),
        *(f"**{run['steps']['gdpo_packed']['peak_mb']:,.0f} MiB**" for run in _result("gpu_smoke", "runs")),
    }
    stale = sorted(q for q in quoted if q not in page)
    assert not stale, f"docs/benchmarks.md does not quote these results of benchmarks/results/: {stale}"


def test_offline_beside_exact_figures_are_those_of_the_results():
    """docs/synth.md quotes the offline judge beside the exact one as the judge is now."""
    page = _text(REPO / "docs" / "synth.md")
    result = _result("offline_beside_exact")
    stage = result["stage_order_agreement"]
    quoted = {
        f"**{round(stage['share'] * stage['pairs'])}** of {stage['pairs']} pairs",
        *(f"**{100 * result['same_order_share'][task]['share']:.0f} %**" for task in ("global", "local")),
    }
    stale = sorted(q for q in quoted if q not in page)
    assert not stale, f"docs/synth.md does not quote these results of offline_beside_exact.json: {stale}"


def test_judge_page_table_quotes_the_results():
    """The "What it is worth" table of docs/judge.md gives the figures of benchmarks/results/."""
    page = _text(REPO / "docs" / "judge.md")
    auc = _result("offline_judge_auc", "encoders", "minilm")
    robust = _result("offline_judge_robustness", *ROBUST)
    speed = _result("offline_judge_speed")
    cross = auc["auc_leave_one_captioner_out"]
    halves = auc["auc_held_out_events"]
    quoted = {
        f"| {cross['gpt-4o-0806']:.3f} / {cross['qwen2vl_7b']:.3f} ",
        f"| {halves['half_0']:.3f} / {halves['half_1']:.3f} |",
        f"{100 * auc['pairwise_agreement_leave_one_captioner_out']['agreement']:.1f} % of",
        f"| {100 * robust['swapped_details']['hall_rises_share']:.1f} % of references |",
        f"| {100 * robust['most_similar_other_video']['miss_ge_90_share']:.1f} % of videos |",
        f"| {100 * robust['negated_statements']['hall_rises_share']:.1f} % |",
        f"| {speed['events_per_s_1thread']:,.0f} (WordLlama: {speed['encoders']['wordllama']['events_per_s_1thread']:,.0f}) |",
    }
    stale = sorted(q for q in quoted if q not in page)
    assert not stale, f"docs/judge.md does not quote these results of benchmarks/results/: {stale}"
