"""What the SFT model of the learning benchmark uses when it tells an interval: teacher-forced.

``learning.py``'s time-alignment ablation judges generated captions; this asks the model directly.
For every local interval of the held-out clips (clips with two intervals), the SFT model's mean
per-token loss on the interval's reference caption (its end-of-turn token included) is measured
under four inputs:

* ``own``: the clip, the instruction naming this interval (what SFT trained);
* ``other_interval``: the clip, the instruction naming the clip's other interval;
* ``other_clip``: the next held-out clip's media, this interval's instruction;
* ``sound_moved``: the clip with its audio track rotated by half its length (ablation b's copies).

A model that reads the interval from the instruction has ``own`` below ``other_interval``; one that
uses the media, below ``other_clip``; one that knows when each sound is, below ``sound_moved``.
Reported: the mean losses and, for each other input, the share of references whose loss is higher
than with ``own``. On a finished run folder (it reads the SFT model and inference settings from
its ``mrdpo/config.json``, with the run's local instruction):

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/interval_probe.py --out outputs/learning
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

INPUTS = ("own", "other_interval", "other_clip", "sound_moved")


def summarise(losses: list[dict[str, float]]) -> dict[str, Any]:
    """Mean loss per input and, for each input but ``own``, the share of references it makes costlier."""
    out: dict[str, Any] = {"references": len(losses)}
    out["mean_loss"] = {k: round(statistics.mean(row[k] for row in losses), 4) for k in INPUTS}
    out["share_higher_than_own"] = {
        k: round(sum(row[k] > row["own"] for row in losses) / len(losses), 3) for k in INPUTS[1:]
    }
    return out


def probe(out: Path) -> dict[str, Any]:
    import torch

    from vs2_plugin.pipeline.generation import CaptionGenerator, PromptGroup
    from vs2_plugin.pipeline.videos import load_videos

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from learning import rotated_audio_copies

    config = json.loads((out / "mrdpo" / "config.json").read_text())
    generator = CaptionGenerator(config["model_name_or_path"], config["adapter_name_or_path"], config["infer"])
    end = generator.tokenizer.convert_tokens_to_ids("<|im_end|>")
    local_prompt = config["sampling"]["local_prompt"]  # the instruction the run's captions were asked with
    moved = {v.id: v.video for v in load_videos(rotated_audio_copies(out / "data", out / "eval" / "rotated_media"))}

    @torch.inference_mode()
    def loss(video: str, start: float, stop: float, answer: str) -> float:
        prompt = local_prompt.format(start=start, end=stop)
        inputs = generator.batch_inputs([PromptGroup(video, prompt, ["probe"])])
        target = generator.tokenizer(answer, add_special_tokens=False)["input_ids"] + [end]
        ids = torch.cat([inputs["input_ids"], torch.tensor([target], device=inputs["input_ids"].device)], dim=1)
        inputs.update(input_ids=ids, attention_mask=torch.ones_like(ids))
        logits = generator.model(**inputs).logits[0, -len(target) - 1 : -1].float()
        return torch.nn.functional.cross_entropy(logits, torch.tensor(target, device=logits.device)).item()

    videos = load_videos(out / "data" / "heldout.jsonl")
    losses = []
    for i, video in enumerate(videos):
        if len(video.local) != 2:
            continue
        other_clip = videos[(i + 1) % len(videos)].video
        for k, iv in enumerate(video.local):
            other = video.local[1 - k]
            losses.append(
                {
                    "own": loss(video.video, iv.start, iv.end, iv.reference),
                    "other_interval": loss(video.video, other.start, other.end, iv.reference),
                    "other_clip": loss(other_clip, iv.start, iv.end, iv.reference),
                    "sound_moved": loss(moved[video.id], iv.start, iv.end, iv.reference),
                }
            )
    model = Path(config["model_name_or_path"])
    model = model.relative_to(out) if model.is_relative_to(out) else model  # relative: travels with the folder
    return {"what": __doc__.split("\n")[0], "model": str(model), **summarise(losses)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="outputs/learning", help="a finished learning.py run folder")
    parser.add_argument("--results", default=str(ROOT / "benchmarks" / "results" / "learning_interval_probe.json"))
    args = parser.parse_args(argv)
    result = probe(Path(args.out).resolve())
    Path(args.results).write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
