"""The per-stage report of a run: a rate not measured reads n/a, in the table and in the plot."""

import math

from vs2_plugin.pipeline.report import write_report

ROWS = [
    {"stage": "SFT", "global": {"rep": 0.01, "miss": 0.3, "hall": 0.1, "total": 0.4, "unnatural": 0.05}},
    {"stage": "round 1", "local": {"miss": 0.2, "hall": 0.1, "total": 0.3}, "pairs": 4},
]


def test_a_stage_without_global_captions_has_no_unnatural_bar(tmp_path, monkeypatch):
    import matplotlib.axes

    heights = []
    bar = matplotlib.axes.Axes.bar

    def recording_bar(self, x, height, *args, **kwargs):
        heights.extend(height)
        return bar(self, x, height, *args, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, "bar", recording_bar)
    text = write_report(tmp_path, ROWS, "rounds")
    assert "| round 1 | n/a | n/a | n/a | n/a | n/a | 20.0 | 10.0 | 30.0 | 4 |" in text
    assert heights[0] == 5.0 and math.isnan(heights[1])  # not a bar of 0 %
    assert (tmp_path / "rounds.png").stat().st_size > 0
