"""vs2 hooks of the OpenAI-compatible judge (``--judge openai``).

Judging (paper App. E): each item is judged in K = ``options.passes`` independent requests
(temperature ``options.temperature``, seed = pass number); the pass whose total error
(missed + incorrect + hallucinated, over the events) is the median is reported. An item is
failed, never scored, when any of its passes fails after retries; a rerun asks only for the
passes that are not in the cache. ``event_scores`` are per-event coverage over the passes:
1 covered, 0.5 described incorrectly, 0 missed, averaged.
"""

from __future__ import annotations

from vs2_openai_judge.client import ChatRunner, Job, missing_api_key
from vs2_openai_judge.options import OpenAIOptions
from vs2_openai_judge.parsing import parse_events, parse_verdict
from vs2_openai_judge.prompts import extraction_messages, judging_messages
from vs2_plugin import hookimpl
from vs2_plugin.judge.metrics import median_pass_index
from vs2_plugin.judge.registry import Judge
from vs2_plugin.judge.types import Extraction, Judgment

NAME = "openai"


def _outcomes_usage(outcomes, options: OpenAIOptions) -> dict:
    """Tokens, cache hits and cost of ``outcomes`` (failed attempts included: they are billed)."""
    usage = {
        "prompt_tokens": sum(o.usage.get("prompt_tokens", 0) for o in outcomes),
        "completion_tokens": sum(o.usage.get("completion_tokens", 0) for o in outcomes),
        "requests_cached": sum(o.cached for o in outcomes),
    }
    usage["cost_usd"] = (
        usage["prompt_tokens"] * options.price_in_per_mtok + usage["completion_tokens"] * options.price_out_per_mtok
    ) / 1e6
    return usage


def extract_events(references: list[str], options: OpenAIOptions, config) -> list[Extraction]:
    runner = ChatRunner(options, config)
    jobs = [Job("extract", extraction_messages(r), parse_events, temperature=0.0, seed=0) for r in references]
    outcomes = runner.run(jobs, desc="extract events")
    # the failure's reason (an HTTP status, an answer that is not JSON) becomes the item's error
    return [
        Extraction(o.value if o.ok else None, error=None if o.ok else o.error, usage=_outcomes_usage([o], options))
        for o in outcomes
    ]


def judge(items, options: OpenAIOptions, config) -> list[Judgment]:
    runner = ChatRunner(options, config)
    passes = options.passes
    jobs, owners = [], []
    for k, item in enumerate(items):
        if not item.events:
            continue
        n = len(item.events)
        messages = judging_messages(item.events, item.caption)
        for p in range(passes):
            jobs.append(
                Job(
                    "judge", messages, lambda text, n=n: parse_verdict(text, n), temperature=options.temperature, seed=p
                )
            )
            owners.append(k)
    outcomes = runner.run(jobs, desc=f"judge x{passes}")
    per_item: dict[int, list] = {}
    for k, outcome in zip(owners, outcomes):
        per_item.setdefault(k, []).append(outcome)
    results = []
    for k, item in enumerate(items):
        if not item.events:
            results.append(Judgment.failed(item.id, NAME, "item has no events"))
            continue
        got = per_item[k]
        failed = [o for o in got if not o.ok]
        usage = _outcomes_usage(got, options)
        if failed:
            results.append(
                Judgment.failed(
                    item.id, NAME, f"{len(failed)} of {passes} judging passes failed: {failed[0].error}", usage=usage
                )
            )
            continue
        n = len(item.events)
        verdicts = [o.value for o in got]
        totals = [v.total(n) for v in verdicts]
        chosen = verdicts[median_pass_index(totals)]
        scores = []
        for i in range(n):
            per_pass = [0.0 if i in v.missed else 0.5 if i in v.incorrect else 1.0 for v in verdicts]
            scores.append(sum(per_pass) / len(per_pass))
        results.append(
            Judgment(
                id=item.id,
                judge=NAME,
                n_events=n,
                event_scores=scores,
                missed=[item.events[i] for i in chosen.missed],
                incorrect=[item.events[i] for i in chosen.incorrect],
                hallucinated=list(chosen.hallucinated),
                passes=[
                    {
                        "missed": len(v.missed),
                        "incorrect": len(v.incorrect),
                        "hallucinated": len(v.hallucinated),
                        "total_rate": t,
                    }
                    for v, t in zip(verdicts, totals)
                ],
                usage=usage,
            )
        )
    return results


JUDGE = Judge(
    name=NAME,
    description="OpenAI-compatible chat model (OPENAI_API_KEY / OPENAI_BASE_URL); K passes, median reported",
    options=OpenAIOptions,
    judge_captions=judge,
    extract_events=extract_events,
    ready=missing_api_key,
)


@hookimpl
def vs2_register_judges(register):
    register(JUDGE)
