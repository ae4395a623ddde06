"""Captions per second: batched generation vs one ``ChatModel.chat`` call per caption.

The mrDPO driver's sampling shape on the tiny model and the bundled clips: every clip with the
global and a local prompt, ``--samples`` captions per prompt, ``--max-new-tokens`` tokens,
temperature 0.7 / top-p 0.9, per-caption seeds. Both sides load the same model once (not
timed) and generate the same captions' worth of tokens:

* chat: LLaMA-Factory's ``ChatModel.chat`` (Hugging Face engine), one call per caption
  (``torch.manual_seed`` per caption), what the driver did before;
* batched: :class:`vs2_plugin.pipeline.generation.CaptionGenerator`, ``--batch-size`` prompts
  per ``generate`` call, the samples of a prompt from one prompt row.

Repeats alternate the two sides (chat first on even repeats, batched first on odd ones) so a
load change on a shared machine hits both; medians and min/max are reported.
``batched_vs_chat_speedup`` = median chat seconds / median batched seconds (= the ratio of
captions per second). ``greedy_outputs_equal`` checks both sides build the same inputs: one
greedy pass each must give the same texts.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/sampling.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vs2_plugin.pipeline.config import DEFAULT_GLOBAL_PROMPT, DEFAULT_LOCAL_PROMPT, SamplingConfig  # noqa: E402
from vs2_plugin.pipeline.generation import CaptionGenerator, Decoding, PromptGroup, seed_for  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "sampling.json"
MEDIA = ROOT / "vs2_plugin" / "assets" / "demo_data" / "media"
INFER = {
    "template": "video_salmonn2",
    "video_fps": 1.0,
    "video_maxlen": 30,
    "video_max_pixels": 12544,
    "use_audio_in_video": True,
}
TEMPERATURE, TOP_P, SEED = 0.7, 0.9, 42


def prompt_groups(samples: int) -> list[PromptGroup]:
    groups = []
    for clip in sorted(MEDIA.glob("*.mp4")):
        for task, prompt in (
            ("global", DEFAULT_GLOBAL_PROMPT),
            ("local", DEFAULT_LOCAL_PROMPT.format(start=1.0, end=4.0)),
        ):
            groups.append(PromptGroup(str(clip), prompt, [f"{clip.stem}/{task}/{i}" for i in range(samples)]))
    return groups


def run_chat(chat, groups: list[PromptGroup], greedy: bool = False) -> tuple[float, list[str]]:
    import torch

    texts = []
    start = time.perf_counter()
    for group in groups:
        for key in group.keys:
            torch.manual_seed(seed_for(SEED, key))
            kwargs = {"do_sample": False} if greedy else {"do_sample": True, "temperature": TEMPERATURE, "top_p": TOP_P}
            reply = chat.chat([{"role": "user", "content": "<video>" + group.prompt}], videos=[group.video], **kwargs)
            texts.append(reply[0].response_text)
    return time.perf_counter() - start, texts


def run_batched(generator, groups: list[PromptGroup], batch_size: int, greedy: bool = False) -> tuple[float, list[str]]:
    decoding = Decoding(greedy=greedy, temperature=TEMPERATURE, top_p=TOP_P, seed=SEED)
    start = time.perf_counter()
    captions = generator.generate(groups, decoding, batch_size=batch_size)
    return time.perf_counter() - start, [c.text for c in captions]


def summary(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "all": values}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--samples", type=int, default=2, help="captions per prompt (the driver's samples_per_video)")
    parser.add_argument(
        "--batch-size",
        type=int,
        default=SamplingConfig.batch_size,
        help="prompts per generate call (default: sampling.batch_size's)",
    )
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--model-dir", help="a tiny model directory (default: built in a temporary folder)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    from llamafactory.chat import ChatModel

    with tempfile.TemporaryDirectory() as tmp:
        model_dir = args.model_dir
        if model_dir is None:
            from vs2_plugin.modeling.tiny import build_tiny_model

            model_dir = str(Path(tmp) / "tiny")
            build_tiny_model(Path(model_dir), seed=0)
        chat = ChatModel(
            {
                "model_name_or_path": model_dir,
                "infer_backend": "huggingface",
                "max_new_tokens": args.max_new_tokens,
                **INFER,
            }
        )
        generator = CaptionGenerator(model_dir, [], INFER, max_new_tokens=args.max_new_tokens)
        groups = prompt_groups(args.samples)
        captions = sum(len(g.keys) for g in groups)

        single = prompt_groups(1)
        greedy_equal = (
            run_chat(chat, single, greedy=True)[1] == run_batched(generator, single, args.batch_size, greedy=True)[1]
        )
        run_batched(generator, groups[:2], args.batch_size)  # warm-up of both sides, not timed
        run_chat(chat, groups[:1])
        chat_s, batched_s = [], []
        for r in range(args.repeats):
            order = ("chat", "batched") if r % 2 == 0 else ("batched", "chat")
            for side in order:
                if side == "chat":
                    chat_s.append(run_chat(chat, groups)[0])
                else:
                    batched_s.append(run_batched(generator, groups, args.batch_size)[0])
            print(
                f"repeat {r + 1}/{args.repeats}: chat {chat_s[-1]:.2f} s, batched {batched_s[-1]:.2f} s",
                file=sys.stderr,
            )

    chat_sum, batched_sum = summary(chat_s), summary(batched_s)
    result = {
        "videos": len({g.video for g in groups}),
        "prompts": len(groups),
        "captions": captions,
        "samples_per_prompt": args.samples,
        "batch_size": args.batch_size,
        "max_new_tokens": args.max_new_tokens,
        "repeats": args.repeats,
        "threads": os.environ.get("OMP_NUM_THREADS"),
        "chat_seconds": chat_sum,
        "batched_seconds": batched_sum,
        "chat_captions_per_s": captions / chat_sum["median"],
        "batched_captions_per_s": captions / batched_sum["median"],
        "batched_vs_chat_speedup": chat_sum["median"] / batched_sum["median"],
        "speedup_spread": {"min": chat_sum["min"] / batched_sum["max"], "max": chat_sum["max"] / batched_sum["min"]},
        "greedy_outputs_equal": greedy_equal,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if not isinstance(v, dict)}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
