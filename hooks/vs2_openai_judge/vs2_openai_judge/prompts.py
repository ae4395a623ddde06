"""Prompts for event extraction and judging (paper sec. 3.3, App. E), asking for strict JSON."""

from __future__ import annotations

EXTRACT_SYSTEM = """You split a detailed audio-visual video caption into atomic events.
An atomic event is one short, self-contained statement of a single fact the caption asserts:
one action, one visual detail (object, person, appearance, setting, on-screen text, camera
work) or one audio detail (speech with its content, music, sound). Keep names, numbers,
colours, counts and quoted speech exactly as written. Do not add, infer or merge facts; do
not drop any fact. Keep the caption's order.
Answer with JSON only: {"events": ["...", "..."]}"""

EXTRACT_USER = "Caption:\n{reference}"

JUDGE_SYSTEM = """You evaluate a video caption against the list of reference atomic events of
the same video. For every reference event decide whether the caption
  - covers it (states it, possibly in other words),
  - describes it incorrectly (mentions it but with a wrong detail: wrong colour, count, person,
    order, speech content, ...), or
  - misses it (does not mention it at all).
Then list the caption's hallucinations: statements in the caption that no reference event
supports (invented objects, actions, sounds or speech). Do not count generic filler
("the video is engaging") as a hallucination.
Answer with JSON only, using the event numbers given:
{"missed": [numbers], "incorrect": [numbers], "hallucinated": ["short quote or paraphrase", ...]}
An event number appears in at most one of "missed" and "incorrect"."""

JUDGE_USER = "Reference events:\n{events}\n\nCaption to evaluate:\n{caption}"


def extraction_messages(reference: str) -> list[dict]:
    return [
        {"role": "system", "content": EXTRACT_SYSTEM},
        {"role": "user", "content": EXTRACT_USER.format(reference=reference.strip())},
    ]


def judging_messages(events: list[str], caption: str) -> list[dict]:
    numbered = "\n".join(f"{i}. {e.strip()}" for i, e in enumerate(events, start=1))
    return [
        {"role": "system", "content": JUDGE_SYSTEM},
        {"role": "user", "content": JUDGE_USER.format(events=numbered, caption=caption.strip())},
    ]
