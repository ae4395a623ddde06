"""The request engine: bounded concurrency, retries with backoff, SQLite cache, token tally.

Retried: 429 (waiting ``Retry-After`` / ``retry-after-ms`` when the server sends it), 408,
409 and 5xx answers, timeouts, dropped or refused connections, and answers that fail JSON
validation (refusals, text that is not the JSON asked for, HTTP bodies that are not a chat
completion). Other 4xx answers (bad key, unknown model) fail at once. A request that still
fails is returned as a failure with a redacted message; nothing is cached for it, so a
rerun asks again while every validated answer comes from the cache.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import email.utils
import hashlib
import json
import logging
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from vs2_openai_judge.cache import AnswerCache, request_key
from vs2_openai_judge.parsing import MalformedAnswer, snippet
from vs2_plugin.errors import ConfigError
from vs2_plugin.secrets import RedactingFilter, read_api_key, redact

logger = logging.getLogger("vs2_openai_judge")
NOTICEABLE_WAIT_S = 5.0  # a retry that waits this long is logged as a warning (shown), shorter ones at INFO
logger.addFilter(RedactingFilter())

MAX_RETRY_AFTER_S = 300.0
#: Placeholder for the messages in a payload (a string no real payload field holds).
_MESSAGES_SLOT = "\x00vs2-messages\x00"


@dataclass
class Job:
    """One chat request: ``parse(text)`` validates the answer (raises MalformedAnswer)."""

    kind: str
    messages: list[dict]
    parse: Callable[[str], Any]
    temperature: float = 0.0
    seed: int = 0


@dataclass
class Outcome:
    """A job's result; ``usage`` adds up the tokens of all its attempts (none for a cache hit)."""

    ok: bool
    value: Any = None
    error: str | None = None
    cached: bool = False
    usage: dict[str, int] = field(default_factory=dict)


NO_API_KEY = "the openai judge needs an API key: set OPENAI_API_KEY or the api_key_file option of the judge"


def missing_api_key(options) -> str | None:
    """Why the judge cannot send a request on this machine (no key, an unreadable key file), or None."""
    try:
        return None if read_api_key("OPENAI_API_KEY", options.api_key_file) else NO_API_KEY
    except ConfigError as exc:
        return str(exc)


@dataclass
class Tally:
    """Counts over a runner's lifetime, for its progress bar and log (thread-safe enough: updated on
    one event loop); what each item cost is in its own ``usage``."""

    requests: int = 0
    cache_hits: int = 0
    retries: int = 0
    failures: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0


def retry_after_seconds(headers) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``Retry-After`` (seconds or an HTTP date)."""
    if headers is None:
        return None
    raw_ms = headers.get("retry-after-ms")
    if raw_ms:
        try:
            return max(float(raw_ms) / 1000.0, 0.0)
        except ValueError:
            pass
    raw = headers.get("retry-after")
    if not raw:
        return None
    try:
        return max(float(raw), 0.0)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(raw)
        except (TypeError, ValueError):
            return None
        return max(when.timestamp() - time.time(), 0.0)


class MalformedResponse(MalformedAnswer):
    """The HTTP answer is not a chat completion at all (an HTML error page, cut JSON, ...)."""


def _usage(response) -> dict[str, int]:
    usage = getattr(response, "usage", None)
    try:
        return {"prompt_tokens": int(usage.prompt_tokens or 0), "completion_tokens": int(usage.completion_tokens or 0)}
    except (AttributeError, TypeError, ValueError):
        return {}


def answer_text(response) -> str | None:
    """The assistant text of a chat completion; :class:`MalformedAnswer` for a refusal or a
    body that is no chat completion (the request is then retried like a malformed answer)."""
    choices = getattr(response, "choices", None)
    if not isinstance(choices, list):
        raise MalformedResponse(f"the HTTP body is not a chat completion: {snippet(response)}")
    if not choices:
        raise MalformedResponse("the chat completion has no choices")
    message = getattr(choices[0], "message", None)
    content = getattr(message, "content", None)
    refusal = getattr(message, "refusal", None)
    if not content and refusal:
        raise MalformedAnswer(f"the model refused: {snippet(refusal)}")
    if content is not None and not isinstance(content, str):
        raise MalformedResponse(f"the message content is {type(content).__name__}, not text")
    return content


class ChatRunner:
    """Runs many :class:`Job` s against an OpenAI-compatible chat-completions endpoint."""

    def __init__(self, options, config):
        self.options = options  # OpenAIOptions
        self.show_progress = config.show_progress
        self.api_key = read_api_key("OPENAI_API_KEY", options.api_key_file)
        if not self.api_key:
            raise ConfigError(NO_API_KEY)
        self.base_url = options.base_url or os.environ.get("OPENAI_BASE_URL") or None
        self.cache = AnswerCache(config.cache_path)
        self.tally = Tally()
        self.json_mode = bool(options.json_mode)

    # ------------------------------------------------------------------ public
    def run(self, jobs: list[Job], desc: str = "judge") -> list[Outcome]:
        """Outcomes in job order; cached answers are served without any request.

        Safe to call from inside a running event loop (the requests then run in a thread).
        """
        outcomes: list[Outcome | None] = [None] * len(jobs)
        keys = self._keys(jobs)
        hits = self.cache.answers(keys)
        pending = []
        for i, (job, key) in enumerate(zip(jobs, keys)):
            hit = hits.get(key)
            if hit is not None:
                try:
                    outcomes[i] = Outcome(True, job.parse(hit), cached=True)
                    self.tally.cache_hits += 1
                    continue
                except MalformedAnswer:
                    pass  # a stale entry from an older validator: ask again
            pending.append(i)
        if pending:
            todo = [(jobs[i], keys[i]) for i in pending]
            try:
                asyncio.get_running_loop()
            except RuntimeError:
                fresh = asyncio.run(self._run_all(todo, desc))
            else:
                with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
                    fresh = pool.submit(asyncio.run, self._run_all(todo, desc)).result()
            for i, outcome in zip(pending, fresh):
                outcomes[i] = outcome
        return outcomes  # type: ignore[return-value]

    # ------------------------------------------------------------------ internals
    def _payload(self, job: Job, messages: Any) -> dict:
        """Everything that determines the answer to ``job`` (hashed into its cache key)."""
        return {
            "endpoint": self.base_url or "default",
            "model": self.options.model,
            "kind": job.kind,
            "messages": messages,
            "temperature": job.temperature,
            "seed": job.seed,
            "max_tokens": self.options.max_tokens,
            "json_mode": self.json_mode,
        }

    def _key(self, job: Job) -> str:
        return request_key(self._payload(job, job.messages))

    def _keys(self, jobs: list[Job]) -> list[str]:
        """``[self._key(job) for job in jobs]``, without re-encoding shared messages.

        The K passes of an item share one ``messages`` list and differ only in the seed, so
        the messages are JSON-encoded once per list, and the hash of the payload's text up to
        the end of the messages is computed once and copied for every pass. The hashed bytes
        are exactly those of :func:`request_key` (sorted keys, the messages spliced in where a
        placeholder string stood).
        """
        slot = json.dumps(_MESSAGES_SLOT)
        encoded: dict[int, str] = {}
        frames: dict[tuple, list[str]] = {}
        heads: dict[tuple[str, int], Any] = {}
        keys = []
        for job in jobs:
            ident = id(job.messages)
            if ident not in encoded:
                encoded[ident] = json.dumps(job.messages, sort_keys=True, ensure_ascii=False)
            # the rest of the payload depends on the job only through these fields
            fields = (job.kind, type(job.temperature), job.temperature, type(job.seed), job.seed)
            if fields not in frames:
                frames[fields] = json.dumps(
                    self._payload(job, _MESSAGES_SLOT), sort_keys=True, ensure_ascii=False
                ).split(slot)
            head, tail = frames[fields]
            hasher = heads.get((head, ident))
            if hasher is None:
                hasher = heads[(head, ident)] = hashlib.sha256((head + encoded[ident]).encode("utf-8"))
            hasher = hasher.copy()
            hasher.update(tail.encode("utf-8"))
            keys.append(hasher.hexdigest())
        return keys

    async def _run_all(self, todo: list[tuple[Job, str]], desc: str) -> list[Outcome]:
        from openai import AsyncOpenAI
        from tqdm import tqdm

        client = AsyncOpenAI(
            api_key=self.api_key, base_url=self.base_url, timeout=self.options.timeout_s, max_retries=0
        )
        semaphore = asyncio.Semaphore(self.options.concurrency)
        bar = tqdm(total=len(todo), desc=desc, unit="req", disable=not self.show_progress, leave=False)
        try:
            return await asyncio.gather(*(self._one(client, semaphore, job, key, bar) for job, key in todo))
        finally:
            bar.close()
            await client.close()

    def _backoff(self, attempt: int) -> float:
        base = min(self.options.backoff_max_s, self.options.backoff_base_s * (2**attempt))
        return base * (0.5 + random.random() / 2)

    async def _one(self, client, semaphore, job: Job, key: str, bar) -> Outcome:
        import openai

        last_error = "no attempt made"
        spent = {"prompt_tokens": 0, "completion_tokens": 0}  # every attempt is billed, retried ones too
        async with semaphore:
            for attempt in range(self.options.max_retries + 1):
                delay = 0.0
                try:
                    self.tally.requests += 1
                    kwargs = dict(
                        model=self.options.model,
                        messages=job.messages,
                        temperature=job.temperature,
                        max_tokens=self.options.max_tokens,
                        seed=job.seed,
                    )
                    if self.json_mode:
                        kwargs["response_format"] = {"type": "json_object"}
                    try:
                        response = await client.chat.completions.create(**kwargs)
                    except (json.JSONDecodeError, openai.APIResponseValidationError) as exc:
                        raise MalformedResponse(
                            f"the HTTP body is not a chat completion ({type(exc).__name__})"
                        ) from None
                    usage = _usage(response)
                    self.tally.prompt_tokens += usage.get("prompt_tokens", 0)
                    self.tally.completion_tokens += usage.get("completion_tokens", 0)
                    for name in spent:
                        spent[name] += usage.get(name, 0)
                    text = answer_text(response)
                    value = job.parse(text)
                    self.cache.put(key, text, usage)
                    bar.update(1)
                    return Outcome(True, value, usage=spent)
                except MalformedResponse as exc:
                    last_error = f"malformed response: {exc}"
                    delay = self._backoff(attempt)
                except MalformedAnswer as exc:
                    last_error = f"malformed answer: {exc}"
                    delay = self._backoff(attempt)
                except openai.RateLimitError as exc:
                    last_error = f"HTTP 429 rate limited: {exc.message}"
                    waited = retry_after_seconds(exc.response.headers)
                    delay = min(waited, MAX_RETRY_AFTER_S) if waited is not None else self._backoff(attempt)
                except openai.APIStatusError as exc:
                    last_error = f"HTTP {exc.status_code}: {exc.message}"
                    if exc.status_code < 500 and exc.status_code not in (408, 409):
                        break  # bad request, key or model: retrying cannot help
                    waited = retry_after_seconds(exc.response.headers)
                    delay = min(waited, MAX_RETRY_AFTER_S) if waited is not None else self._backoff(attempt)
                except openai.APITimeoutError:
                    last_error = f"timed out after {self.options.timeout_s:g}s"
                    delay = self._backoff(attempt)
                except openai.APIConnectionError as exc:
                    last_error = f"connection error: {type(exc.__cause__ or exc).__name__}"
                    delay = self._backoff(attempt)
                except openai.APIError as exc:  # any other client error: report it, do not retry
                    last_error = f"{type(exc).__name__}: {exc}"
                    break
                if attempt < self.options.max_retries:
                    self.tally.retries += 1
                    bar.set_postfix_str(f"{self.tally.retries} retried", refresh=False)
                    # a wait a user would notice (a Retry-After, a long backoff) is said, not logged away
                    logger.log(
                        logging.WARNING if delay >= NOTICEABLE_WAIT_S else logging.INFO,
                        "%s request retry %d/%d in %.2fs: %s",
                        job.kind,
                        attempt + 1,
                        self.options.max_retries,
                        delay,
                        redact(last_error),
                    )
                    await asyncio.sleep(delay)
        self.tally.failures += 1
        bar.update(1)
        # one line: a gateway's error text may span several, and reports list one error a line
        message = redact(" ".join(f"{last_error} (after {attempt + 1} attempt(s))".split()))
        logger.warning("%s request failed: %s", job.kind, message)
        return Outcome(False, error=message, usage=spent)
