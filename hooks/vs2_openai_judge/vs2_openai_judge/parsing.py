"""Strict parsing and validation of the judge's JSON answers; anything malformed raises."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

_FENCE = re.compile(r"^\s*```(?:json)?\s*(.*?)\s*```\s*$", re.DOTALL)


class MalformedAnswer(ValueError):
    """The model's answer is not the JSON object asked for (the request is retried)."""


def snippet(value: object, limit: int = 80) -> str:
    """A short quote of an answer for error messages (one line, at most ``limit`` characters)."""
    text = " ".join(str(value).split())
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")


def _load_object(text: str | None) -> dict:
    if not text or not text.strip():
        raise MalformedAnswer("empty answer")
    match = _FENCE.match(text)
    body = match.group(1) if match else text.strip()
    try:
        data = json.loads(body)
    except json.JSONDecodeError as exc:
        raise MalformedAnswer(f"answer is not JSON ({exc.msg} at char {exc.pos}): {snippet(body)}") from None
    if not isinstance(data, dict):
        raise MalformedAnswer(f"answer must be a JSON object, got {type(data).__name__}")
    return data


def parse_events(text: str | None) -> list[str]:
    """``{"events": [str, ...]}`` -> the non-empty, stripped event strings (at least one)."""
    data = _load_object(text)
    events = data.get("events")
    if not isinstance(events, list) or not all(isinstance(e, str) for e in events):
        raise MalformedAnswer('"events" must be a list of strings')
    events = [e.strip() for e in events if e.strip()]
    if not events:
        raise MalformedAnswer('"events" is empty')
    return events


@dataclass(frozen=True)
class PassVerdict:
    """One judging pass: 0-based event indices and hallucinated statements."""

    missed: tuple[int, ...]
    incorrect: tuple[int, ...]
    hallucinated: tuple[str, ...]

    def total(self, n_events: int) -> float:
        return (
            len(self.missed) + len(self.incorrect) + min(len(self.hallucinated), n_events - len(self.incorrect))
        ) / n_events


def _indices(value, key: str, n_events: int) -> list[int]:
    if not isinstance(value, list):
        raise MalformedAnswer(f'"{key}" must be a list of event numbers')
    out = []
    for v in value:
        if isinstance(v, bool):
            raise MalformedAnswer(f'"{key}" holds a boolean, not an event number')
        if isinstance(v, str) and v.strip().isdigit():
            v = int(v.strip())
        if not isinstance(v, int):
            raise MalformedAnswer(f'"{key}" holds {v!r}, not an event number')
        if not 1 <= v <= n_events:  # a misread numbering (0-based?) shifts every number: ask again
            raise MalformedAnswer(f'"{key}" holds {v}, outside the event numbers 1..{n_events}')
        if v - 1 not in out:  # drop repeats
            out.append(v - 1)
    return out


def parse_verdict(text: str | None, n_events: int) -> PassVerdict:
    """Validate ``{"missed": [...], "incorrect": [...], "hallucinated": [...]}`` for ``n_events`` events.

    Event numbers are 1-based in the answer; a number outside 1..n makes the answer malformed
    (a 0-based answer would otherwise be read one event off), repeats are removed, and an event
    both missed and incorrect counts as missed. Hallucinations are strings
    (or objects with a text field), at most ``n_events`` of them are kept.
    """
    data = _load_object(text)
    for key in ("missed", "incorrect", "hallucinated"):
        if key not in data:
            raise MalformedAnswer(f'answer lacks "{key}"')
    missed = _indices(data["missed"], "missed", n_events)
    incorrect = [i for i in _indices(data["incorrect"], "incorrect", n_events) if i not in missed]
    raw = data["hallucinated"]
    if not isinstance(raw, list):
        raise MalformedAnswer('"hallucinated" must be a list')
    hallucinated = []
    for h in raw:
        if isinstance(h, dict):
            h = next((v for v in h.values() if isinstance(v, str)), None)
        if not isinstance(h, str):
            raise MalformedAnswer('"hallucinated" must hold strings')
        if h.strip():
            hallucinated.append(h.strip())
    return PassVerdict(tuple(missed), tuple(incorrect), tuple(hallucinated[:n_events]))
