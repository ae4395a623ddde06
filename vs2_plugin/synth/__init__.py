"""Synthetic audio-visual clips with exactly known events, and an exact judge for them.

* :mod:`vs2_plugin.synth.grammar`: the events (shapes that appear / move / disappear, tones,
  noise bursts, spoken words), how they are told in captions, and how captions are read back.
* :mod:`vs2_plugin.synth.judge`: the exact judge (registered as ``synth_exact`` through the
  judge hooks, like any third-party judge).
* :mod:`vs2_plugin.synth.generate`: clips (H.264 + AAC mp4), captions and LLaMA-Factory
  datasets, deterministic by seed (``vs2 synth``).
"""
