"""LLaMA-Factory multimodal plugin for video-SALMONN 2 (visual-only base for now)."""

from __future__ import annotations

from dataclasses import dataclass

from llamafactory.data.mm_plugin import Qwen2VLPlugin


@dataclass
class VideoSalmonn2Plugin(Qwen2VLPlugin):
    """Qwen2.5-VL video handling plus the audio track, interleaved by time."""
