"""The audio-visual model of video-SALMONN 2 (paper sec. 3.1): Qwen2.5-VL + Whisper encoder +
window-level Q-Former aligner. Heavy imports happen inside the functions; importing this
package is cheap.

Public entry points:

* :func:`register_auto_classes` - make ``video_salmonn2`` known to transformers' Auto classes.
* :func:`vs2_plugin.modeling.tiny.build_tiny_model` / ``build_tiny_text_model`` - offline tiny models.
* :mod:`vs2_plugin.modeling.freezing` - what trains in each stage (sec. 3.2).
"""

from __future__ import annotations

#: ``model_type`` of a checkpoint with the audio branch (config.json, Auto classes, LLaMA-Factory)
MODEL_TYPE = "video_salmonn2"

_registered = False


def register_auto_classes() -> None:
    """Register ``video_salmonn2`` with AutoConfig, AutoModel, AutoModelForImageTextToText
    (what LLaMA-Factory's loader uses), AutoModelForVision2Seq where it exists, and
    AutoProcessor (Qwen2.5-VL's processor). Safe to call any number of times."""
    global _registered
    if _registered:
        return
    import transformers
    from transformers import AutoConfig, AutoModel, AutoModelForImageTextToText, AutoProcessor, Qwen2_5_VLProcessor

    from vs2_plugin.modeling.config import VideoSalmonn2Config
    from vs2_plugin.modeling.model import VideoSalmonn2ForConditionalGeneration, VideoSalmonn2Model

    AutoConfig.register(MODEL_TYPE, VideoSalmonn2Config, exist_ok=True)
    AutoModel.register(VideoSalmonn2Config, VideoSalmonn2Model, exist_ok=True)
    AutoModelForImageTextToText.register(VideoSalmonn2Config, VideoSalmonn2ForConditionalGeneration, exist_ok=True)
    vision2seq = getattr(transformers, "AutoModelForVision2Seq", None)
    if vision2seq is not None and vision2seq is not AutoModelForImageTextToText:
        vision2seq.register(VideoSalmonn2Config, VideoSalmonn2ForConditionalGeneration, exist_ok=True)
    AutoProcessor.register(VideoSalmonn2Config, Qwen2_5_VLProcessor, exist_ok=True)
    _registered = True


__all__ = ["MODEL_TYPE", "register_auto_classes"]
