"""gDPO step vs stock LLaMA-Factory DPO step, peak memory, and round hook in memory vs export.

All measured in one run, on the same tiny random Qwen2 model and the same pairs, whose
prompt / caption token proportions match a 60 s clip (default: ~3,900 prompt tokens — 30
frames of visual tokens plus the interleaved audio tokens — against ~600 per caption, scaled
by --scale for a CPU). Stock DPO = ``llamafactory.train.dpo.run_dpo`` (LoRA, reference = adapter
disabled, recomputed every step); gDPO = the ``gdpo`` stage with the packed shared prompt, the
reference cache and the extra ground-truth term (lambda 0.1, the same video's caption).

Writes benchmarks/results/gdpo_step.json and prints the ratios:
  gdpo_vs_dpo_step_ratio   median training-step time, gDPO / DPO          (goal <= 0.85)
  gdpo_vs_dpo_epoch_ratio  one epoch from trainer creation to the end of training, incl. gDPO's
                           one reference pass (dataset preprocessing excluded)
  peak_mem_ratio           over the same span: peak RSS above the RSS at its start (CPU), or peak
                           CUDA memory (goal <= 1.05)
  round_hook_speedup       export_model + reload time / in-memory merge time  (goal >= 5)

Run:  OMP_NUM_THREADS=1 .venv/bin/python benchmarks/gdpo_step.py [--scale 0.25 --pairs 12]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("DISABLE_VERSION_CHECK", "1")

REPO = Path(__file__).resolve().parents[1]
PROMPT_TOKENS_60S = 3900
CAPTION_TOKENS = 600
WORDS = (
    "the a man woman child dog car street music voice speaks laughs red blue green small large "
    "slowly quickly camera shows frame scene light dark water tree house door window table "
    "background sound loud quiet says walks runs sits stands holds looks turns between behind"
).split()


def _text(tokenizer, n_tokens: int, rng: random.Random) -> str:
    words: list[str] = []
    while len(tokenizer.encode(" ".join(words), add_special_tokens=False)) < n_tokens:
        words.extend(rng.choice(WORDS) for _ in range(max(1, (n_tokens - len(words)) // 3)))
    while len(tokenizer.encode(" ".join(words), add_special_tokens=False)) > n_tokens:
        words.pop()
    return " ".join(words)


def write_dataset(folder: Path, model_dir: Path, pairs: int, prompt_tokens: int, caption_tokens: int) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    rng = random.Random(0)
    rows, gt = [], []
    for _ in range(pairs):
        prompt = _text(tokenizer, prompt_tokens, rng)
        chosen, rejected, truth = (_text(tokenizer, caption_tokens, rng) for _ in range(3))
        rows.append({"messages": [{"role": "user", "content": prompt}],
                     "chosen": {"role": "assistant", "content": chosen},
                     "rejected": {"role": "assistant", "content": rejected}})
        gt.append({"messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": truth}]})
    tags = {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant"}
    info = {
        "bench_pairs": {"file_name": "pairs.json", "formatting": "sharegpt", "ranking": True,
                        "columns": {"messages": "messages", "chosen": "chosen", "rejected": "rejected"}, "tags": tags},
        "bench_gt": {"file_name": "gt.json", "formatting": "sharegpt", "columns": {"messages": "messages"}, "tags": tags},
    }
    (folder / "pairs.json").write_text(json.dumps(rows))
    (folder / "gt.json").write_text(json.dumps(gt))
    (folder / "dataset_info.json").write_text(json.dumps(info))


def base_args(model_dir: Path, data_dir: Path, out: Path, pairs: int) -> dict:
    return dict(
        model_name_or_path=str(model_dir), do_train=True, finetuning_type="lora", lora_rank=8, lora_alpha=16,
        lora_target="q_proj,k_proj,v_proj", pref_beta=0.1, pref_loss="sigmoid", dataset="bench_pairs",
        dataset_dir=str(data_dir), template="qwen", cutoff_len=16384, output_dir=str(out), overwrite_output_dir=True,
        per_device_train_batch_size=1, gradient_accumulation_steps=1, max_steps=pairs, learning_rate=1e-4,
        lr_scheduler_type="constant", logging_steps=1000, save_strategy="no", report_to="none", use_cpu=True,
        bf16=False, preprocessing_num_workers=1, dataloader_num_workers=0, disable_tqdm=True, seed=42,
        flash_attn="sdpa",
    )


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _train_variant(kind: str, args: dict, queue) -> None:
    """Child process: one training run; reports step times, wall time and peak memory."""
    import torch
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        """Step times; and wall time + peak memory from the trainer's creation to the end of
        training (data loader, reference pass for gDPO, all steps; not dataset preprocessing)."""

        def __init__(self):
            self.times, self._start, self.base_rss, self.t0, self.wall = [], None, 0, 0.0, 0.0

        def on_init_end(self, *a, **k):
            if cuda:
                torch.cuda.reset_peak_memory_stats()
            Path("/proc/self/clear_refs").write_text("5")  # reset the peak-RSS counter
            self.base_rss = _rss_kib("VmRSS")
            self.t0 = time.perf_counter()

        def on_train_begin(self, *a, **k):  # after the data loader (and gDPO's reference pass)
            self.peak_before_steps = (_rss_kib("VmHWM") - self.base_rss) / 1024

        def on_step_begin(self, *a, **k):
            self._start = time.perf_counter()
            self.step_rss = getattr(self, "step_rss", []) + [(_rss_kib("VmRSS") - self.base_rss) / 1024]

        def on_step_end(self, *a, **k):
            self.times.append(time.perf_counter() - self._start)

        def on_train_end(self, *a, **k):
            self.wall = time.perf_counter() - self.t0
            self.peak = torch.cuda.max_memory_allocated() / 2**20 if cuda else (_rss_kib("VmHWM") - self.base_rss) / 1024

    cuda = torch.cuda.is_available()
    timer = StepTimer()
    if kind == "dpo":
        from llamafactory.hparams import get_train_args
        from llamafactory.train.dpo import run_dpo

        model_args, data_args, training_args, finetuning_args, _ = get_train_args({**args, "stage": "dpo"})
        run_dpo(model_args, data_args, training_args, finetuning_args, callbacks=[timer])
    else:
        from vs2_plugin.gdpo.workflow import run_gdpo_from_dict

        run_gdpo_from_dict({**args, "stage": "gdpo"}, callbacks=[timer])
    queue.put({"kind": kind, "step_times": timer.times, "wall_s": timer.wall, "peak_mb": timer.peak,
               "peak_before_steps_mb": timer.peak_before_steps, "step_rss": timer.step_rss,
               "memory_measure": "cuda max_memory_allocated" if cuda else "peak RSS above the RSS at trainer creation (CPU)"})


def run_variant(kind: str, args: dict) -> dict:
    ctx = mp.get_context("fork")  # same imports, fresh heap: peak memory of one run only
    queue = ctx.Queue()
    proc = ctx.Process(target=_train_variant, args=(kind, args, queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def time_round_hooks(model_dir: Path, work: Path, repeats: int = 3) -> dict:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from vs2_plugin.rounds import ExportRoundHook, InMemoryRoundHook

    def fresh_policy():
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
        config = LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "k_proj", "v_proj"], task_type="CAUSAL_LM")
        policy = get_peft_model(model, config)
        with torch.no_grad():
            for name, param in policy.named_parameters():
                if "lora_B" in name:
                    param.normal_(0, 0.02)
        return policy

    memory, export = [], []
    for i in range(repeats):
        policy = fresh_policy()
        start = time.perf_counter()
        InMemoryRoundHook()(policy, seed=i)
        memory.append(time.perf_counter() - start)
        policy = fresh_policy()
        hook = ExportRoundHook(work_dir=work / f"export-{i}", backbone_path=str(model_dir), template="qwen")
        start = time.perf_counter()
        hook(policy, seed=i)
        export.append(time.perf_counter() - start)
    return {"memory_s": statistics.median(memory), "export_s": statistics.median(export)}


def main(argv=None) -> int:
    if os.environ.get("MALLOC_MMAP_THRESHOLD_") is None and argv is None:
        # Large blocks via mmap are returned to the OS when freed, so the peak RSS tracks the
        # tensors actually alive (glibc reads this only at start: re-exec once).
        os.environ["MALLOC_MMAP_THRESHOLD_"] = "65536"
        os.execv(sys.executable, [sys.executable, *sys.argv])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=0.25, help="token-count scale of the 60 s proportions")
    parser.add_argument("--pairs", type=int, default=12, help="pairs = training steps (one epoch, batch 1)")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "gdpo_step.json"))
    opts = parser.parse_args(argv)

    from vs2_plugin.modeling.tiny import build_tiny_text_model

    prompt_tokens = int(PROMPT_TOKENS_60S * opts.scale)
    caption_tokens = int(CAPTION_TOKENS * opts.scale)
    with tempfile.TemporaryDirectory(prefix="gdpo-bench-") as tmp:
        tmp = Path(tmp)
        model_dir = build_tiny_text_model(tmp / "model", seed=0)
        data_dir = tmp / "data"
        data_dir.mkdir()
        write_dataset(data_dir, model_dir, opts.pairs, prompt_tokens, caption_tokens)
        import llamafactory.train.tuner  # noqa: F401  (import once, before forking the runs)

        args = base_args(model_dir, data_dir, tmp / "dpo", opts.pairs)
        dpo = run_variant("dpo", args)
        gdpo_args = {**base_args(model_dir, data_dir, tmp / "gdpo", opts.pairs),
                     "gdpo_lambda": 0.1, "gt_dataset": "bench_gt", "gdpo_ref_cache": "disk"}
        gdpo = run_variant("gdpo", gdpo_args)
        hooks = time_round_hooks(model_dir, tmp / "hooks")

    def median_step(result):  # the first steps warm up allocators and caches
        return statistics.median(result["step_times"][2:] or result["step_times"])

    results = {
        "gdpo_vs_dpo_step_ratio": median_step(gdpo) / median_step(dpo),
        "gdpo_vs_dpo_epoch_ratio": gdpo["wall_s"] / dpo["wall_s"],
        "peak_mem_ratio": gdpo["peak_mb"] / dpo["peak_mb"],
        "round_hook_speedup": hooks["export_s"] / hooks["memory_s"],
        "dpo_step_s": median_step(dpo),
        "gdpo_step_s": median_step(gdpo),
        "dpo_peak_mb": dpo["peak_mb"],
        "gdpo_peak_mb": gdpo["peak_mb"],
        "round_hook_memory_s": hooks["memory_s"],
        "round_hook_export_s": hooks["export_s"],
        "prompt_tokens": prompt_tokens,
        "caption_tokens": caption_tokens,
        "pairs": opts.pairs,
        "memory_measure": gdpo["memory_measure"],
        "goals": {"gdpo_vs_dpo_step_ratio": "<= 0.85", "peak_mem_ratio": "<= 1.05", "round_hook_speedup": ">= 5"},
    }
    Path(opts.out).parent.mkdir(parents=True, exist_ok=True)
    Path(opts.out).write_text(json.dumps(results, indent=2) + "\n")
    for key in ("gdpo_vs_dpo_step_ratio", "gdpo_vs_dpo_epoch_ratio", "peak_mem_ratio", "round_hook_speedup"):
        print(f"{key}: {results[key]:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
