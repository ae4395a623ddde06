"""Where LLaMA-Factory's ``cutoff_len`` cuts a sample, and whether the cut falls in a prompt that holds media.

LLaMA-Factory expands each ``<video>`` / ``<audio>`` placeholder into its media tokens, encodes the
conversation with the template, then cuts every (prompt, reply) pair to the tokens ``cutoff_len``
leaves it. A cut inside the media leaves fewer placeholder tokens than the encoders give features,
which no model step survives; a cut after them drops the instruction and the template's turn markers,
so the sample teaches a reply to a truncated prompt. Either way the sample is bad before training
starts. These functions replay LLaMA-Factory 0.9.5's arithmetic on token counts alone (no media is
decoded, no sequence built): the supervised processor (``sft``, and the ground-truth captions of a
gDPO round) and the pairwise one (``dpo`` / ``gdpo`` pairs). ``mask_history`` (last turns first) is
not replayed: such a run's media check reads the turns in order.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Turn:
    """One (prompt, reply) pair in tokens: the prompt's text with its template markup, the media
    tokens its placeholders expand to (markers included), and the reply with its end of turn."""

    text: int
    media: int
    reply: int

    @property
    def prompt(self) -> int:
        return self.text + self.media


def kept_lengths(source_len: int, target_len: int, cutoff_len: int) -> tuple[int, int]:
    """(prompt, reply) tokens kept of a pair given ``cutoff_len`` tokens: LLaMA-Factory's
    ``infer_seqlen`` (``data/processor/processor_utils.py``). A reply under half the budget is kept
    whole and the prompt cut; else a prompt under half is kept and the reply cut; else both are cut
    in proportion to their lengths.

    >>> kept_lengths(100, 20, 200)   # fits
    (100, 20)
    >>> kept_lengths(150, 80, 200)   # the reply is short: the prompt loses 30
    (120, 80)
    >>> kept_lengths(60, 300, 200)   # the prompt is short: the reply is cut
    (60, 140)
    >>> kept_lengths(300, 100, 200)  # both long: 200 * 100 / 400 = 50 for the reply
    (150, 50)
    """
    if target_len * 2 < cutoff_len:
        max_target = cutoff_len
    elif source_len * 2 < cutoff_len:
        max_target = cutoff_len - source_len
    else:
        max_target = int(cutoff_len * (target_len / (source_len + target_len)))
    target = min(max_target, target_len)
    return min(max(cutoff_len - target, 0), source_len), target


def supervised_cut(turns: list[Turn], cutoff_len: int, efficient_eos: bool = False) -> tuple[int, int] | None:
    """``(turn, prompt tokens kept)`` for the first turn holding media whose prompt the supervised
    processor would cut (0 kept: the turn is dropped, the budget spent by the turns before it);
    None when every prompt with media is kept whole. The turns share ``cutoff_len`` in order
    (``efficient_eos`` templates keep one token for the final EOS).

    >>> supervised_cut([Turn(text=20, media=900, reply=60)], 1024)  # 980 tokens: whole
    >>> supervised_cut([Turn(text=20, media=1000, reply=60)], 1024)  # 1020 + 60: the prompt keeps 964
    (0, 964)
    >>> supervised_cut([Turn(10, 0, 500), Turn(10, 600, 50)], 1024)  # the second has 514 left
    (1, 464)
    """
    total = 1 if efficient_eos else 0
    for k, turn in enumerate(turns):
        if total >= cutoff_len:
            return (k, 0) if any(t.media for t in turns[k:]) else None
        source, target = kept_lengths(turn.prompt, turn.reply, cutoff_len - total)
        if turn.media and source < turn.prompt:
            return k, source
        total += source + target
    return None


def pairwise_cut(
    prompt: list[Turn], chosen: int, rejected: int, cutoff_len: int, efficient_eos: bool = False
) -> int | None:
    """Prompt tokens kept when the pairwise processor would cut a preference pair's prompt that
    holds media; None when it is kept whole. The prompt is every turn before the replies (their
    ``reply`` the earlier answers), the replies count their end of turn (and EOS with
    ``efficient_eos``), and the longer of the two is what the prompt shares ``cutoff_len`` with.

    >>> pairwise_cut([Turn(text=20, media=900, reply=0)], chosen=60, rejected=90, cutoff_len=1024)
    >>> pairwise_cut([Turn(text=20, media=950, reply=0)], chosen=60, rejected=90, cutoff_len=1024)
    934
    """
    length = sum(t.prompt + t.reply for t in prompt)
    if not any(t.media for t in prompt):
        return None
    extra = 1 if efficient_eos else 0
    source, _ = kept_lengths(length, max(chosen, rejected) + extra, cutoff_len)
    return source if source < length else None


@dataclass(frozen=True)
class Dialogue:
    """A sample's text as LLaMA-Factory's converters give it to the template: the system prompt,
    the messages as ``(role, text)`` (user and assistant in turn, placeholders still in), and for
    a preference sample (which ends with the user's turn) its two replies."""

    system: str | None
    messages: tuple[tuple[str, str], ...]
    replies: tuple[str, str] | None = None


def dialogue_turns(
    dialogue: Dialogue, text_lengths, media_tokens: dict[str, list[int]]
) -> tuple[list[Turn], tuple[int, int] | None]:
    """The :class:`Turn` s of ``dialogue`` and, for a preference sample, its replies' lengths.

    ``text_lengths(system, messages)`` gives the template's ``(prompt, reply)`` token counts of each
    pair of the messages, placeholders removed; ``media_tokens`` maps each placeholder to the tokens
    of its files, handed out in the order the placeholder occurs in the messages (as LLaMA-Factory
    hands them out), each counted in the prompt or reply whose message holds it."""
    media = {placeholder: iter(tokens) for placeholder, tokens in media_tokens.items()}

    def strip(text: str) -> tuple[str, int]:
        tokens = 0
        for placeholder, files in media.items():
            tokens += sum(next(files, 0) for _ in range(text.count(placeholder)))
            text = text.replace(placeholder, "")
        return text, tokens

    stripped = [(role, *strip(text)) for role, text in dialogue.messages]
    messages = tuple((role, text) for role, text, _ in stripped)
    in_message = [tokens for _, _, tokens in stripped]
    if dialogue.replies is None:
        pairs = text_lengths(dialogue.system, messages)
        return [Turn(s, in_message[2 * k], t + in_message[2 * k + 1]) for k, (s, t) in enumerate(pairs)], None
    lengths = [text_lengths(dialogue.system, (*messages, ("assistant", reply))) for reply in dialogue.replies]
    pairs = lengths[0]
    turns = [Turn(s, in_message[2 * k], t + in_message[2 * k + 1]) for k, (s, t) in enumerate(pairs[:-1])]
    turns.append(Turn(pairs[-1][0], in_message[-1], 0))
    return turns, (lengths[0][-1][1], lengths[1][-1][1])
