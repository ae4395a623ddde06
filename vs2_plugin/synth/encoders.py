"""Encoder pretraining on synthetic clips (``vs2 synth-encoders``): the tiny model's stand-in for
the pretrained vision tower of Qwen2.5-VL and the pretrained Whisper encoder.

A real video-SALMONN 2 starts from encoders that already see and hear: the ViT of the visual
LLM and openai-whisper. The tiny model's encoders are random, and random encoders hide what is
on screen or in the audio track: the tiny Whisper encoder's output is almost all its positional
table, and the language model does not learn to read colours out of random ViT tokens within
the steps two CPU cores allow (while a linear probe on the same tokens can). So before any
training that uses media, the encoders of a tiny model are pretrained here on the synthetic
clips' exact labels, as real encoders are pretrained on their own data:

* every merged visual token predicts the colours, shapes and named positions of the objects
  covering its part of the frame in its two frames (multi-label, binary cross-entropy);
* every Whisper encoder state (20 ms) predicts which tone pitch, noise burst or spoken word
  sounds at its time.

Only the vision tower (patch embedding, blocks, merger) and the Whisper encoder change; the
linear heads are dropped, the language model and the audio aligner are untouched, so the model
still cannot caption (nothing maps media to words yet). Inputs are built by the same
LLaMA-Factory template and media plugin as training, so the encoders learn on what they see
later.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vs2_plugin.errors import ConfigError, DataError, Vs2Error
from vs2_plugin.synth.generate import SOUND_SECONDS, Clip, SynthConfig, visible_objects
from vs2_plugin.synth.grammar import COLOURS, PITCHES, POSITIONS, SHAPES, Event

#: how long each kind of sound is labelled as sounding: tones and noise bursts as rendered; a
#: spoken word is at most WORD_MAX_SECONDS long and most are under 0.6 s
LABEL_SECONDS = {**SOUND_SECONDS, "speech": 0.6}
#: a visual token is labelled with an object covering at least this share of its region
MIN_COVER = 0.15
VISUAL_LABELS = ("object", *COLOURS, *SHAPES, *POSITIONS)


def audio_labels_list(words: tuple[str, ...]) -> tuple[str, ...]:
    return ("sound", *(f"tone:{p}" for p in PITCHES), "noise", *(f"word:{w}" for w in words))


@dataclass
class EncoderPretrainConfig:
    """Settings of ``vs2 synth-encoders`` (validated; errors name the bad value)."""

    model: str
    data: str
    #: LLaMA-Factory media arguments the model is trained with (video_fps, video_maxlen, ...)
    infer: dict[str, Any] = field(default_factory=dict)
    steps: int = 400
    lr: float = 3e-3
    seed: int = 0

    def __post_init__(self) -> None:
        if not (Path(self.model) / "config.json").is_file():
            raise ConfigError(f"model must be a model directory with config.json, got {self.model!r}")
        if not (Path(self.model) / "model.safetensors").is_file():  # checked before training, not after
            raise ConfigError(
                f"model {self.model!r} has no single model.safetensors: the pretrained encoders are written "
                "back into one (a tiny model of vs2 build-tiny)"
            )
        if not (Path(self.data) / "clips.jsonl").is_file():
            raise ConfigError(f"data must be a vs2 synth output folder with clips.jsonl, got {self.data!r}")
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 1:
            raise ConfigError(f"steps must be an integer >= 1, got {self.steps!r}")
        if not isinstance(self.lr, (int, float)) or not 0 < self.lr < 1:
            raise ConfigError(f"lr must be in (0, 1), got {self.lr!r}")


def media_arguments(recipe: dict[str, Any]) -> dict[str, Any]:
    """The LLaMA-Factory media arguments of a recipe (``video_*``, ``audio_*``, ``use_audio_in_video``)."""
    return {k: v for k, v in recipe.items() if k.startswith(("video_", "audio_", "use_audio"))}


def clip_from_record(record: dict) -> Clip:
    """The :class:`Clip` of a ``clips.jsonl`` row (its timeline)."""
    events = [Event.from_dict(row) for row in record["timeline"]]
    return Clip(record["id"], record["split"], int(round(record["duration"])), events)


def visual_targets(clip: Clip, grid_thw: tuple[int, int, int], merge: int, temporal: int) -> np.ndarray:
    """``(T * H/merge * W/merge, len(VISUAL_LABELS))`` 0/1 labels of the merged visual tokens.

    Frames are taken at their slot centres (``vs2_plugin.data.media.sample_frame_times``); a
    token covers ``temporal`` consecutive frames and a ``merge x merge`` block of patches.
    """
    t_groups, h, w = grid_thw
    rows, cols = h // merge, w // merge
    n_frames = t_groups * temporal
    # labels are computed on the generator's default canvas; only the shares of each region matter
    size = SynthConfig.__dataclass_fields__["size"].default
    out = np.zeros((t_groups, rows, cols, len(VISUAL_LABELS)), np.float32)
    index = {name: i for i, name in enumerate(VISUAL_LABELS)}
    edges_r = np.linspace(0, size, rows + 1).round().astype(int)
    edges_c = np.linspace(0, size, cols + 1).round().astype(int)
    for f in range(n_frames):
        t = (f + 0.5) * clip.duration / n_frames
        for colour, shape, position, mask in visible_objects(clip, t, size):
            for r in range(rows):
                for c in range(cols):
                    region = mask[edges_r[r] : edges_r[r + 1], edges_c[c] : edges_c[c + 1]]
                    if region.mean() >= MIN_COVER:
                        for name in ("object", colour, shape, position):
                            out[f // temporal, r, c, index[name]] = 1.0
    return out.reshape(-1, len(VISUAL_LABELS))


def audio_targets(clip: Clip, n_states: int, seconds_per_state: float, words: tuple[str, ...]) -> np.ndarray:
    """``(n_states, len(audio_labels_list(words)))`` 0/1 labels: what sounds at each state's time."""
    names = audio_labels_list(words)
    index = {name: i for i, name in enumerate(names)}
    out = np.zeros((n_states, len(names)), np.float32)
    times = (np.arange(n_states) + 0.5) * seconds_per_state
    for e in clip.events:
        if e.modality != "audio":
            continue
        on = (times >= e.time) & (times < e.time + LABEL_SECONDS[e.kind])
        label = {"tone": f"tone:{e.pitch}", "noise": "noise", "speech": f"word:{e.word}"}[e.kind]
        out[on, index["sound"]] = 1.0
        out[on, index[label]] = 1.0
    return out


class _Heads:
    """The encoders of a loaded tiny model with a linear probe on each: the vision tower's merged
    tokens -> :data:`VISUAL_LABELS`, the Whisper encoder's states -> the audio labels; their
    binary cross-entropy on a clip's exact labels is what pretraining lowers."""

    def __init__(self, model, first_audio_features, words: tuple[str, ...]):
        import torch

        self.model, self.words = model, words
        self.visual, self.audio = model.model.visual, model.model.audio_encoder
        with torch.no_grad():
            states = self.audio(first_audio_features[:1])
        self.hidden_a = states.shape[2]
        self.seconds_per_state = model.config.segment_s / states.shape[1]  # the states span one Whisper segment
        self.head_v = torch.nn.Linear(model.config.text_config.hidden_size, len(VISUAL_LABELS))
        self.head_a = torch.nn.Linear(self.hidden_a, len(audio_labels_list(words)))
        self.params = [*self.visual.parameters(), *self.audio.parameters()]
        self.params += [*self.head_v.parameters(), *self.head_a.parameters()]
        for p in model.parameters():
            p.requires_grad_(False)
        for p in self.params:
            p.requires_grad_(True)

    def losses(self, sample):
        """(visual loss, audio loss, (visual logits, targets, audio logits, targets)) of one sample."""
        import torch

        _, clip, x, y_vis = sample
        v = self.model.model.get_video_features(
            pixel_values_videos=x["pixel_values_videos"], video_grid_thw=x["video_grid_thw"]
        )
        v = v.pooler_output if hasattr(v, "pooler_output") else v
        v = torch.cat(list(v)) if isinstance(v, (list, tuple)) else v
        logits_v = self.head_v(v)
        a = self.audio(x["audio_features"]).reshape(-1, self.hidden_a)
        n = min(a.shape[0], int(round(clip.duration / self.seconds_per_state)))
        y_aud = torch.from_numpy(audio_targets(clip, n, self.seconds_per_state, self.words))
        logits_a = self.head_a(a[:n])
        bce = torch.nn.functional.binary_cross_entropy_with_logits
        return bce(logits_v, y_vis), bce(logits_a, y_aud), (logits_v, y_vis, logits_a, y_aud)

    def exact_rates(self, held: list) -> tuple[float, float]:
        """Shares of the held-out visual tokens and audio states whose every label is right."""
        import torch

        hits_v = hits_a = total_v = total_a = 0
        with torch.no_grad():
            for sample in held:
                _, _, (lv, yv, la, ya) = self.losses(sample)
                hits_v += int(((lv > 0).float() == yv).all(dim=1).sum())
                total_v += yv.shape[0]
                hits_a += int(((la > 0).float() == ya).all(dim=1).sum())
                total_a += ya.shape[0]
        return hits_v / max(total_v, 1), hits_a / max(total_a, 1)


def _samples(gen, data: Path, records: list[dict], progress) -> list:
    """(split, clip, model inputs, visual targets) of every clip, its media read as training reads them."""
    import torch

    vcfg = gen.model.config.vision_config
    samples = []
    for k, record in enumerate(records):
        video = str(data / record["video"])
        mm = gen.template.mm_plugin.get_mm_inputs(
            images=[], videos=[video], audios=[], imglens=[0], vidlens=[1], audlens=[0],
            batch_ids=[gen.prompt_ids(video, "")], processor=gen.processor,
        )  # fmt: skip
        x = {
            k: torch.as_tensor(v)
            for k, v in mm.items()
            if k in ("pixel_values_videos", "video_grid_thw", "audio_features")
        }
        clip = clip_from_record(record)
        thw = tuple(int(v) for v in x["video_grid_thw"][0])
        y_vis = visual_targets(clip, thw, vcfg.spatial_merge_size, vcfg.temporal_patch_size)
        samples.append((record["split"], clip, x, torch.from_numpy(y_vis)))
        if progress:
            progress("inputs", k + 1, len(records))
    return samples


#: what each row of ``clips.jsonl`` needs here
CLIP_KEYS = ("id", "split", "video", "duration", "timeline")


def read_clips(path: Path) -> list[dict]:
    """The rows of a vs2 synth ``clips.jsonl``; a line that is not one is a DataError naming it,
    before the model is loaded."""
    from vs2_plugin.files import numbered_jsonl

    records = []
    for n, row in numbered_jsonl(path, allow_empty=True):
        missing = [k for k in CLIP_KEYS if k not in row]
        if missing:
            raise DataError(f"{path}:{n}: missing {missing}; is it the clips.jsonl of vs2 synth?")
        records.append(row)
    return records


def pretrain_encoders(config: EncoderPretrainConfig, progress=None) -> dict:
    """Pretrain the vision tower and Whisper encoder of ``config.model`` in place on the train
    clips of ``config.data``; returns the final losses and held-out token accuracy."""
    import torch
    from safetensors.torch import load_file, save_file

    from vs2_plugin.pipeline.generation import CaptionGenerator
    from vs2_plugin.synth.grammar import WORDS

    random.seed(config.seed)
    torch.manual_seed(config.seed)
    data = Path(config.data)
    records = read_clips(data / "clips.jsonl")
    if not any(r["split"] == "train" for r in records):
        raise Vs2Error(f"{data / 'clips.jsonl'} has no train clips to pretrain the encoders on")
    gen = CaptionGenerator(config.model, infer=config.infer)
    model = gen.model.float()
    samples = _samples(gen, data, records, progress)
    heads = _Heads(model, samples[0][2]["audio_features"], WORDS)
    opt = torch.optim.AdamW(heads.params, lr=config.lr, weight_decay=0.0)
    train = [s for s in samples if s[0] == "train"]
    held = [s for s in samples if s[0] != "train"] or train[:8]

    model.train()
    order: list[int] = []
    run_v = run_a = None
    for step in range(1, config.steps + 1):
        if not order:
            order = list(range(len(train)))
            random.shuffle(order)
        loss_v, loss_a, _ = heads.losses(train[order.pop()])
        (loss_v + loss_a).backward()
        torch.nn.utils.clip_grad_norm_(heads.params, 1.0)
        opt.step()
        opt.zero_grad()
        run_v = loss_v.item() if run_v is None else 0.95 * run_v + 0.05 * loss_v.item()
        run_a = loss_a.item() if run_a is None else 0.95 * run_a + 0.05 * loss_a.item()
        if progress:
            progress("train", step, config.steps)
    model.eval()
    exact_v, exact_a = heads.exact_rates(held)
    _write_encoders(Path(config.model), model, ("model.visual.", "model.audio_encoder."), load_file, save_file)
    return {
        "steps": config.steps,
        "visual_loss": round(run_v, 4),
        "audio_loss": round(run_a, 4),
        "heldout_visual_token_exact": round(exact_v, 4),
        "heldout_audio_state_exact": round(exact_a, 4),
    }


def _write_encoders(model_dir: Path, model, prefixes: tuple[str, ...], load_file, save_file) -> None:
    """Replace the encoder tensors of ``model_dir/model.safetensors`` with ``model``'s (same dtype)."""
    path = model_dir / "model.safetensors"
    if not path.is_file():
        raise Vs2Error(f"{path} not found: encoder pretraining writes into a single-file tiny model")
    tensors = load_file(str(path))
    state = model.state_dict()
    replaced = 0
    for name in list(tensors):
        if name.startswith(prefixes):
            if name not in state:
                raise Vs2Error(f"{path}: tensor {name} is not in the loaded model")
            tensors[name] = state[name].detach().to(tensors[name].dtype).contiguous()
            replaced += 1
    if not replaced:
        raise Vs2Error(f"{path} holds no tensor under {prefixes}")
    tmp = path.with_name(path.name + ".tmp")  # replaced whole: an interrupted write leaves the model as it was
    save_file(tensors, str(tmp), metadata={"format": "pt"})
    tmp.replace(path)
