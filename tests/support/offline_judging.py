"""Judge one caption with the offline judge, as the judge tests do."""

from vs2_plugin.judge import offline
from vs2_plugin.judge.types import JudgeItem


def judge_one(caption, events, reference=None, encoder="wordllama"):
    """The offline judge's :class:`~vs2_plugin.judge.types.Judgment` of one caption."""
    return offline.judge(
        [JudgeItem(id="x", caption=caption, events=events, reference=reference)], encoder_name=encoder
    )[0]
