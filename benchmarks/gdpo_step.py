"""gDPO vs stock LLaMA-Factory DPO, one epoch each on the same pairs; memory; the round hook.

All measured in one run, on the same tiny random Qwen2 model and the same pairs, whose
prompt / caption token proportions match a 60 s clip (default: ~3,900 prompt tokens — 30
frames of visual tokens plus the interleaved audio tokens — against ~600 per caption, scaled
by --scale for a CPU). Stock DPO = ``llamafactory.train.dpo.run_dpo`` (LoRA, reference = adapter
disabled, recomputed every step); gDPO = the ``gdpo`` stage as users run it (packed shared
prompt, reference log-probs computed once in a pass before the first step, ground-truth term
with lambda 0.1 on the same video's caption). Each repeat runs both sides in a fresh process,
the order alternating (DPO first, then gDPO first, ...), so load on a shared machine hits both.

Writes benchmarks/results/gdpo_step.json (medians over --repeats, spread = min / max) and prints:
  gdpo_vs_dpo_epoch_ratio  HEADLINE: one epoch, wall time of the whole stage call (dataset loading
                           and preprocessing, gDPO's ground-truth set, model loading, gDPO's one
                           reference pass, every step, saving), gDPO / DPO        (goal <= 0.85)
  gdpo_vs_dpo_train_ratio  the same from trainer creation to the end of training
  gdpo_vs_dpo_step_ratio   median training step (gDPO's reference is cached, DPO's is not)
  peak_mem_ratio           peak memory of the whole run: CPU = peak RSS above the process's RSS
                           before the stage call (weights, optimizer state, activations, data);
                           CUDA = max_memory_allocated. Weight and optimizer-state bytes are listed
  round_hook_export_vs_memory  what gdpo_rounds runs between rounds: 'memory' = LLaMA-Factory's
                           load_model stacking and merging the previous adapter in memory and
                           starting a fresh LoRA; 'export' = export_model to a merged checkpoint +
                           load_model of it with a fresh LoRA. Ratio export / memory

``--widths 7b`` (one GPU) runs the same comparison on a random Qwen2 with the layer widths and depth
of Qwen2.5-VL-7B's language model (28 layers, hidden 3584, 152,064 vocabulary rows), built on the
GPU and both sides trained in bf16 (LLaMA-Factory's defaults: gradient checkpointing, SDPA; gDPO's
packed prompt on FlexAttention); the round hooks are skipped there (``--hook-repeats 0``).

Run:  OMP_NUM_THREADS=1 .venv/bin/python benchmarks/gdpo_step.py [--scale 0.25 --pairs 12 --repeats 5]
      python benchmarks/gdpo_step.py --widths 7b --scale 1 --pairs 8 --repeats 3 --hook-repeats 0 --out FILE
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import queue as queue_module
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
        rows.append(
            {
                "messages": [{"role": "user", "content": prompt}],
                "chosen": {"role": "assistant", "content": chosen},
                "rejected": {"role": "assistant", "content": rejected},
            }
        )
        gt.append({"messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": truth}]})
    tags = {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant"}
    info = {
        "bench_pairs": {
            "file_name": "pairs.json",
            "formatting": "sharegpt",
            "ranking": True,
            "columns": {"messages": "messages", "chosen": "chosen", "rejected": "rejected"},
            "tags": tags,
        },
        "bench_gt": {
            "file_name": "gt.json",
            "formatting": "sharegpt",
            "columns": {"messages": "messages"},
            "tags": tags,
        },
    }
    (folder / "pairs.json").write_text(json.dumps(rows))
    (folder / "gt.json").write_text(json.dumps(gt))
    (folder / "dataset_info.json").write_text(json.dumps(info))


def build_7b_text_model(out: Path, tiny_dir: Path) -> Path:
    """A random Qwen2 at the 7B widths, built in bf16 on the GPU, with the tiny tokenizer of ``tiny_dir``."""
    import torch
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    from vs2_plugin.modeling.config import QWEN25VL_7B_ROPE, QWEN25VL_7B_TEXT

    if not torch.cuda.is_available():
        raise SystemExit("gdpo_step: --widths 7b needs a CUDA device")
    tiny = Qwen2Config.from_pretrained(tiny_dir)
    config = Qwen2Config(
        **QWEN25VL_7B_TEXT,
        rope_parameters={"rope_type": "default", "rope_theta": QWEN25VL_7B_ROPE["rope_theta"]},
        rms_norm_eps=1e-6,
        tie_word_embeddings=False,
        bos_token_id=tiny.bos_token_id,
        eos_token_id=tiny.eos_token_id,
        pad_token_id=tiny.pad_token_id,
    )
    torch.manual_seed(0)
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    try:
        with torch.device("cuda"):
            model = Qwen2ForCausalLM(config)
    finally:
        torch.set_default_dtype(default)
    model.save_pretrained(out, safe_serialization=True)
    AutoTokenizer.from_pretrained(tiny_dir).save_pretrained(out)
    del model
    torch.cuda.empty_cache()
    return out


def base_args(model_dir: Path, data_dir: Path, out: Path, pairs: int, cuda: bool = False) -> dict:
    return dict(
        model_name_or_path=str(model_dir),
        do_train=True,
        finetuning_type="lora",
        lora_rank=8,
        lora_alpha=16,
        lora_target="q_proj,k_proj,v_proj",
        pref_beta=0.1,
        pref_loss="sigmoid",
        dataset="bench_pairs",
        dataset_dir=str(data_dir),
        template="qwen",
        cutoff_len=16384,
        output_dir=str(out),
        overwrite_output_dir=True,
        per_device_train_batch_size=1,
        gradient_accumulation_steps=1,
        max_steps=pairs,
        learning_rate=1e-4,
        lr_scheduler_type="constant",
        logging_steps=1000,
        save_strategy="no",
        report_to="none",
        use_cpu=not cuda,
        bf16=cuda,
        preprocessing_num_workers=1,
        dataloader_num_workers=0,
        disable_tqdm=True,
        seed=42,
        flash_attn="sdpa",
    )


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _train_variant(kind: str, args: dict, queue) -> None:
    """Child process: one training run; reports wall times, step times and peak memory."""
    import torch
    from transformers import TrainerCallback

    cuda = torch.cuda.is_available()

    class Probe(TrainerCallback):
        """Trainer-span wall time, step times, and the weight / optimizer-state bytes."""

        def __init__(self):
            self.times, self._start, self.t0, self.train_wall = [], None, 0.0, 0.0
            self.weight_mb = self.optimizer_mb = 0.0

        def on_init_end(self, *a, **k):
            self.t0 = time.perf_counter()

        def on_step_begin(self, *a, **k):
            self._start = time.perf_counter()

        def on_step_end(self, *a, model=None, optimizer=None, **k):
            self.times.append(time.perf_counter() - self._start)
            if model is not None and not self.weight_mb:
                self.weight_mb = sum(p.numel() * p.element_size() for p in model.parameters()) / 2**20
            if optimizer is not None and not self.optimizer_mb:
                self.optimizer_mb = (
                    sum(
                        t.numel() * t.element_size()
                        for st in optimizer.state.values()
                        for t in st.values()
                        if torch.is_tensor(t)
                    )
                    / 2**20
                )

        def on_train_end(self, *a, **k):
            self.train_wall = time.perf_counter() - self.t0

    probe = Probe()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak-RSS counter of this process
    base_rss = _rss_kib("VmRSS")
    start = time.perf_counter()
    if kind == "dpo":
        from llamafactory.hparams import get_train_args
        from llamafactory.train.dpo import run_dpo

        model_args, data_args, training_args, finetuning_args, _ = get_train_args({**args, "stage": "dpo"})
        run_dpo(model_args, data_args, training_args, finetuning_args, callbacks=[probe])
    else:
        from vs2_plugin.gdpo.workflow import run_gdpo_from_dict

        run_gdpo_from_dict({**args, "stage": "gdpo"}, callbacks=[probe])
    wall = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated() / 2**20 if cuda else (_rss_kib("VmHWM") - base_rss) / 1024
    queue.put(
        {
            "kind": kind,
            "device": torch.cuda.get_device_name() if cuda else "cpu",
            "wall_s": wall,
            "train_wall_s": probe.train_wall,
            "step_times": probe.times,
            "peak_mb": peak,
            "weight_mb": probe.weight_mb,
            "optimizer_state_mb": probe.optimizer_mb,
            "memory_measure": "cuda max_memory_allocated over the run"
            if cuda
            else "peak RSS above the RSS before the stage call (weights, optimizer state, activations, data; CPU)",
        }
    )


#: how the measured runs start: "fork" on a CPU (same imports, fresh heap: the peak memory of one
#: run only); "spawn" where CUDA is used, since LLaMA-Factory's import initialises CUDA in the parent
#: and a forked child cannot use it. Set by main (--start-method).
_start_method = "fork"


def _context():
    return mp.get_context(_start_method)


def _child_result(proc, queue, what: str):
    """The child's one queued result; a clear error instead of a hang when the child dies first."""
    while True:
        try:
            result = queue.get(timeout=2)
            break
        except queue_module.Empty:
            if not proc.is_alive():
                raise SystemExit(f"gdpo_step: {what} failed (exit status {proc.exitcode}); its traceback is above")
    proc.join()
    return result


def _in_child(function, *args) -> None:
    """``function(*args)`` in a child process (its memory, GPU context included, goes with it)."""
    proc = _context().Process(target=function, args=args)
    proc.start()
    proc.join()
    if proc.exitcode != 0:
        raise SystemExit(f"gdpo_step: {function.__name__} failed (exit status {proc.exitcode})")


def run_variant(kind: str, args: dict) -> dict:
    ctx = _context()
    queue = ctx.Queue()
    proc = ctx.Process(target=_train_variant, args=(kind, args, queue))
    proc.start()
    return _child_result(proc, queue, f"the {kind} run")


def _make_adapter(model_dir: Path, out: Path) -> Path:
    """A trained-looking LoRA (B non-zero) as the previous round leaves it."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    config = LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "k_proj", "v_proj"], task_type="CAUSAL_LM")
    policy = get_peft_model(model, config)
    with torch.no_grad():
        for name, param in policy.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.02)
    policy.save_pretrained(out)
    return out


def _load_for_round(model_dir: str, adapters: list[str] | None) -> None:
    """LLaMA-Factory's load_model as a gdpo round calls it: previous adapters merged, a fresh LoRA."""
    from llamafactory.hparams import get_train_args
    from llamafactory.model import load_model, load_tokenizer

    args = {
        "stage": "dpo",
        "model_name_or_path": model_dir,
        "do_train": True,
        "finetuning_type": "lora",
        "lora_rank": 8,
        "lora_alpha": 16,
        "lora_target": "q_proj,k_proj,v_proj",
        "dataset": "bench_pairs",
        "template": "qwen",
        "output_dir": tempfile.mkdtemp(prefix="hook-"),
        "report_to": "none",
        "use_cpu": True,
        "bf16": False,
        "create_new_adapter": bool(adapters),
    }
    if adapters:
        args["adapter_name_or_path"] = ",".join(adapters)
    model_args, _d, training_args, finetuning_args, _g = get_train_args(args)
    tokenizer = load_tokenizer(model_args)["tokenizer"]
    model = load_model(tokenizer, model_args, finetuning_args, is_trainable=True)
    assert any("lora_A" in n for n, p in model.named_parameters() if p.requires_grad)


def _hook_child(kind: str, model_dir: str, adapter: str, work: str, queue) -> None:
    from vs2_plugin.gdpo.rounds import export_merged

    start = time.perf_counter()
    if kind == "memory":
        _load_for_round(model_dir, [adapter])
    else:
        merged = export_merged(model_dir, [adapter], Path(work) / "reference", template="qwen", dtype="float32")
        _load_for_round(str(merged), None)
    queue.put(time.perf_counter() - start)


def time_round_hooks(model_dir: Path, work: Path, repeats: int) -> dict:
    """The two round hooks of gdpo_rounds, alternated, each in a fresh process."""
    adapter = _make_adapter(model_dir, work / "round-001")
    ctx = _context()
    times: dict[str, list[float]] = {"memory": [], "export": []}
    for i in range(repeats):
        for kind in ("memory", "export") if i % 2 == 0 else ("export", "memory"):
            queue = ctx.Queue()
            proc = ctx.Process(
                target=_hook_child, args=(kind, str(model_dir), str(adapter), str(work / f"{kind}-{i}"), queue)
            )
            proc.start()
            times[kind].append(_child_result(proc, queue, f"the {kind} round hook"))
    return times


def _stats(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "runs": values}


def _ratio_stats(num: list[float], den: list[float]) -> dict:
    """Ratio of medians, plus the per-repeat ratios (each repeat's pair ran back to back)."""
    per_repeat = [a / b for a, b in zip(num, den)]
    return {
        "median_ratio": statistics.median(num) / statistics.median(den),
        "per_repeat": per_repeat,
        "min": min(per_repeat),
        "max": max(per_repeat),
    }


def main(argv=None) -> int:
    if os.environ.get("MALLOC_MMAP_THRESHOLD_") is None and argv is None:
        # Large blocks via mmap are returned to the OS when freed, so the peak RSS tracks the
        # tensors actually alive (glibc reads this only at start: re-exec once).
        os.environ["MALLOC_MMAP_THRESHOLD_"] = "65536"
        os.execv(sys.executable, [sys.executable, *sys.argv])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=0.25, help="token-count scale of the 60 s proportions")
    parser.add_argument("--pairs", type=int, default=12, help="pairs = training steps (one epoch, batch 1)")
    parser.add_argument("--repeats", type=int, default=5, help="alternated runs of each side")
    parser.add_argument("--hook-repeats", type=int, default=5, help="alternated runs of each round hook")
    parser.add_argument("--widths", choices=("tiny", "7b"), default="tiny", help="tiny on CPU, 7b on one GPU")
    parser.add_argument("--start-method", choices=("fork", "spawn"), help="default: fork on a CPU, spawn with CUDA")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "gdpo_step.json"))
    opts = parser.parse_args(argv)
    cuda = opts.widths == "7b"
    global _start_method
    _start_method = opts.start_method or ("spawn" if cuda else "fork")

    from vs2_plugin.modeling.tiny import build_tiny_text_model

    prompt_tokens = int(PROMPT_TOKENS_60S * opts.scale)
    caption_tokens = int(CAPTION_TOKENS * opts.scale)
    runs: dict[str, list[dict]] = {"dpo": [], "gdpo": []}
    with tempfile.TemporaryDirectory(prefix="gdpo-bench-") as tmp:
        tmp = Path(tmp)
        model_dir = build_tiny_text_model(tmp / "model", seed=0)
        if cuda:
            _in_child(build_7b_text_model, tmp / "model-7b", model_dir)
            model_dir = tmp / "model-7b"
        data_dir = tmp / "data"
        data_dir.mkdir()
        write_dataset(data_dir, model_dir, opts.pairs, prompt_tokens, caption_tokens)
        import llamafactory.train.tuner  # noqa: F401  (import once, before forking the runs)

        for i in range(opts.repeats):
            for kind in ("dpo", "gdpo") if i % 2 == 0 else ("gdpo", "dpo"):
                args = base_args(model_dir, data_dir, tmp / f"{kind}-{i}", opts.pairs, cuda)
                if kind == "gdpo":
                    args.update(gdpo_lambda=0.1, gt_dataset="bench_gt", gdpo_ref_cache="disk")
                runs[kind].append(run_variant(kind, args))
                print(f"repeat {i + 1}/{opts.repeats} {kind}: {json.dumps(runs[kind][-1])}", flush=True)
        hooks = time_round_hooks(model_dir, tmp / "hooks", opts.hook_repeats) if opts.hook_repeats else None

    def series(kind, key):
        return [r[key] for r in runs[kind]]

    def median_step(result):  # the first steps warm up allocators and caches
        return statistics.median(result["step_times"][2:] or result["step_times"])

    epoch = _ratio_stats(series("gdpo", "wall_s"), series("dpo", "wall_s"))
    train = _ratio_stats(series("gdpo", "train_wall_s"), series("dpo", "train_wall_s"))
    steps = _ratio_stats([median_step(r) for r in runs["gdpo"]], [median_step(r) for r in runs["dpo"]])
    memory = _ratio_stats(series("gdpo", "peak_mb"), series("dpo", "peak_mb"))
    hook = _ratio_stats(hooks["export"], hooks["memory"]) if hooks else None
    results = {
        "gdpo_vs_dpo_epoch_ratio": epoch["median_ratio"],
        "gdpo_vs_dpo_train_ratio": train["median_ratio"],
        "gdpo_vs_dpo_step_ratio": steps["median_ratio"],
        "peak_mem_ratio": memory["median_ratio"],
        "round_hook_export_vs_memory": hook["median_ratio"] if hook else None,
        "repeats": opts.repeats,
        "widths": opts.widths,
        "device": runs["gdpo"][0]["device"],
        "dtype": "bfloat16" if cuda else "float32",
        "spread": {
            "epoch_ratio": epoch,
            "train_ratio": train,
            "step_ratio": steps,
            "peak_mem_ratio": memory,
            "round_hook_export_vs_memory": hook,
        },
        "dpo_epoch_s": _stats(series("dpo", "wall_s")),
        "gdpo_epoch_s": _stats(series("gdpo", "wall_s")),
        "dpo_train_s": _stats(series("dpo", "train_wall_s")),
        "gdpo_train_s": _stats(series("gdpo", "train_wall_s")),
        "dpo_step_s": _stats([median_step(r) for r in runs["dpo"]]),
        "gdpo_step_s": _stats([median_step(r) for r in runs["gdpo"]]),
        "dpo_peak_mb": _stats(series("dpo", "peak_mb")),
        "gdpo_peak_mb": _stats(series("gdpo", "peak_mb")),
        "weight_mb": runs["gdpo"][0]["weight_mb"],
        "optimizer_state_mb": {
            "dpo": runs["dpo"][0]["optimizer_state_mb"],
            "gdpo": runs["gdpo"][0]["optimizer_state_mb"],
        },
        "round_hook_memory_s": _stats(hooks["memory"]) if hooks else None,
        "round_hook_export_s": _stats(hooks["export"]) if hooks else None,
        "prompt_tokens": prompt_tokens,
        "caption_tokens": caption_tokens,
        "pairs": opts.pairs,
        "memory_measure": runs["gdpo"][0]["memory_measure"],
        "goals": {"gdpo_vs_dpo_epoch_ratio": "<= 0.85", "peak_mem_ratio": "<= 1.05"},
    }
    Path(opts.out).parent.mkdir(parents=True, exist_ok=True)
    Path(opts.out).write_text(json.dumps(results, indent=2) + "\n")
    for key in (
        "gdpo_vs_dpo_epoch_ratio",
        "gdpo_vs_dpo_train_ratio",
        "gdpo_vs_dpo_step_ratio",
        "peak_mem_ratio",
        "round_hook_export_vs_memory",
    ):
        if results[key] is not None:
            print(f"{key}: {results[key]:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
