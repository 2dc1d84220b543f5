"""QLoRA training speed on one GPU: our recipe against a plain padded baseline, same run.

The model has Qwen2.5-7B-Instruct's exact shapes (hidden 3584, 28 layers, 28 heads, 4 KV heads,
intermediate 18944, vocab 152064), built from a ``Qwen2Config`` with random bf16 weights drawn
directly on the GPU (nothing is downloaded), saved once with the real Qwen2.5 tokenizer into a
work directory, and loaded back by the recipe's own ``load_tokenizer_and_model``, which
quantizes it to NF4 through bitsandbytes like any real checkpoint.

Each variant then runs the real recipe (``TrainConfig`` → ``load_datasets`` →
``build_trainer`` → ``train``) in its own process, so peak GPU memory is that variant's alone,
over the 1,700 synthetic conversations of ``benchmarks/synthetic_conversations.py``:

* ``recipe``: ``TrainConfig`` defaults (padding-free, gradient checkpointing, LoRA r16 on
  q,k,v,o, micro-batch 4 x accumulation 4);
* ``baseline``: the same with padded batches and no packing.

After ``--warmup-steps`` untimed optimiser steps, ``--steps`` steps are timed (end of one step
to end of the next, data loading and logging included, the final evaluation not); tokens are the
trainer's own non-padding count (``num_input_tokens_seen``). Printed per variant: tokens/s,
s/step, peak GPU memory while training (model loading's own peak is reported apart) and the
projected time of ``num_train_epochs`` (5) epochs, evaluation not included.
Targets on one H100: recipe >= 1.5x the baseline's tokens/s, <= 14 GB peak, 5 epochs <= 10 min.

    .venv/bin/python benchmarks/gpu_train.py [--steps 10] [--warmup-steps 2] [--workdir DIR]

``--device cpu --tiny`` runs the same code path on a tiny random Qwen2 on CPU; it exists for
the smoke test only, its figures mean nothing.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from benchmarks.synthetic_conversations import CONVERSATIONS, EVAL_CONVERSATIONS, write_splits
from tests.tiny_model import TOKENIZER_DIR, copy_tokenizer
from training.child_exit import exit_child
from training.config import TrainConfig
from training.token_stats import measure_token_stats
from training.train import build_trainer, load_datasets, load_tokenizer_and_model, train

QWEN25_7B_SHAPES: dict[str, Any] = {
    "vocab_size": 152064,
    "hidden_size": 3584,
    "intermediate_size": 18944,
    "num_hidden_layers": 28,
    "num_attention_heads": 28,
    "num_key_value_heads": 4,
    "max_position_embeddings": 32768,
    "rms_norm_eps": 1e-6,
    "rope_parameters": {"rope_type": "default", "rope_theta": 1_000_000.0},
    "tie_word_embeddings": False,
    "use_sliding_window": False,
    "max_window_layers": 28,
}
"""Qwen/Qwen2.5-7B-Instruct's config.json, shape for shape."""
TINY_SHAPES: dict[str, Any] = {
    "vocab_size": 151936,
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 2048,
    "tie_word_embeddings": True,
}
BOS_ID, EOS_ID = 151643, 151645  # <|endoftext|>, <|im_end|> in the Qwen2.5 tokenizer
VARIANTS: dict[str, dict[str, Any]] = {
    "recipe": {},
    "baseline": {"padding_free": False, "packing": False},
}
TARGET_SPEEDUP = 1.5
TARGET_PEAK_GB = 14.0
TARGET_EPOCHS_MINUTES = 10.0
RESULT_PREFIX = "GPU_TRAIN_RESULT "
NO_CUDA = (
    "benchmarks/gpu_train.py needs a CUDA GPU and torch.cuda.is_available() is False here. "
    "Run it on the GPU host (one H100 is the reference); for a CPU smoke run of the code path "
    "only, pass --device cpu --tiny."
)


def model_config(tiny: bool) -> Any:
    """A ``Qwen2Config`` with Qwen2.5-7B's shapes (or the tiny test shapes); nothing allocated."""
    from transformers import Qwen2Config

    shapes = TINY_SHAPES if tiny else QWEN25_7B_SHAPES
    return Qwen2Config(**shapes, bos_token_id=BOS_ID, eos_token_id=EOS_ID, pad_token_id=BOS_ID)


def parameter_count(config: Any) -> int:
    """Parameters of a Qwen2ForCausalLM with this config, computed from the shapes alone."""
    hidden, inter, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    kv = config.num_key_value_heads * (hidden // config.num_attention_heads)
    attention = hidden * hidden * 2 + hidden * kv * 2 + hidden + kv * 2  # q,o + k,v + biases
    per_layer = attention + 3 * hidden * inter + 2 * hidden  # MLP + two RMSNorms
    embeddings = config.vocab_size * hidden * (1 if config.tie_word_embeddings else 2)
    return int(layers * per_layer + embeddings + hidden)


def build_random_checkpoint(config: Any, directory: Path, device: str) -> Path:
    """Random weights drawn on ``device`` (bf16 on CUDA), saved with the real tokenizer.

    A directory that already holds a checkpoint of the same config is reused.
    """
    import torch
    from transformers import Qwen2ForCausalLM

    marker = directory / "config.json"
    if marker.is_file() and (directory / "tokenizer_config.json").is_file():
        saved = json.loads(marker.read_text(encoding="utf-8"))
        if all(saved.get(k) == v for k, v in config.to_dict().items() if k in TINY_SHAPES):
            return directory
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    previous = torch.get_default_dtype()
    torch.manual_seed(0)
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            model = Qwen2ForCausalLM(config)
    finally:
        torch.set_default_dtype(previous)
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    copy_tokenizer(TOKENIZER_DIR, directory)
    del model
    if device == "cuda":
        torch.cuda.empty_cache()
    return directory


@dataclass
class StepTimer:
    """Wall time and real tokens of the optimiser steps after the first ``warmup`` ones."""

    warmup: int
    seconds: float = 0.0
    tokens: int = 0
    steps: int = 0
    _last: tuple[float, int] | None = None

    def step_end(self, global_step: int, tokens_seen: int) -> None:
        """Record the end of an optimiser step (steps end-to-end, so nothing falls between)."""
        import torch

        if torch.cuda.is_available():
            torch.cuda.synchronize()
        now = time.perf_counter()
        if global_step > self.warmup and self._last is not None:
            self.seconds += now - self._last[0]
            self.tokens += tokens_seen - self._last[1]
            self.steps += 1
        self._last = (now, tokens_seen)


def _timer_callback(timer: StepTimer) -> Any:
    from transformers import TrainerCallback

    class Timing(TrainerCallback):  # type: ignore[misc]
        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            timer.step_end(state.global_step, int(state.num_input_tokens_seen))

    return Timing()


def variant_config(
    name: str,
    checkpoint: Path,
    work: Path,
    args: argparse.Namespace,
) -> TrainConfig:
    """The recipe's ``TrainConfig`` for one variant, stopped after warmup + timed steps."""
    import torch

    total = args.warmup_steps + args.steps
    # Batch overrides exist for the CPU smoke test; the benchmark itself runs the defaults.
    batch: dict[str, Any] = {}
    if args.micro_batch is not None:
        batch["per_device_train_batch_size"] = batch["per_device_eval_batch_size"] = (
            args.micro_batch
        )
    if args.grad_accum is not None:
        batch["gradient_accumulation_steps"] = args.grad_accum
    config = TrainConfig(
        base_model=str(checkpoint),
        train_file=work / "data" / "train.jsonl",
        eval_file=work / "data" / "eval.jsonl",
        output_dir=work / "runs" / name,
        quantization="4bit" if torch.cuda.is_available() else "none",
        max_steps=total,
        eval_steps=total,
        **batch,
        **VARIANTS[name],
    )
    config.validate()
    return config


def run_variant(config: TrainConfig, warmup: int) -> dict[str, Any]:
    """Train one variant with the real recipe; return its timing, memory and token figures."""
    import torch

    cuda = torch.cuda.is_available()
    tokenizer, model, quantized = load_tokenizer_and_model(config)
    # Loading peaks on its own (bf16 tensors on their way to NF4); training is judged apart.
    load_peak = torch.cuda.max_memory_allocated() / 1e9 if cuda else None
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    train_dataset, eval_dataset, _info = load_datasets(config, tokenizer)
    trainer = build_trainer(config, tokenizer, model, train_dataset, eval_dataset, lambda e: None)
    stats = measure_token_stats(trainer, train_dataset)
    timer = StepTimer(warmup=warmup)
    trainer.add_callback(_timer_callback(timer))
    train(trainer)
    trained: Any = trainer.model
    if timer.steps == 0:
        raise RuntimeError("no step was timed: raise --steps")
    steps_per_epoch = math.ceil(stats.batches / config.gradient_accumulation_steps)
    s_per_step = timer.seconds / timer.steps
    return {
        "quantized": quantized,
        "attention": str(trained.config._attn_implementation),
        "timed_steps": timer.steps,
        "tokens_per_s": timer.tokens / timer.seconds,
        "s_per_step": s_per_step,
        "steps_per_epoch": steps_per_epoch,
        "epochs": config.num_train_epochs,
        "projected_minutes": steps_per_epoch * config.num_train_epochs * s_per_step / 60,
        "load_peak_allocated_gb": load_peak,
        "peak_allocated_gb": torch.cuda.max_memory_allocated() / 1e9 if cuda else None,
        "peak_reserved_gb": torch.cuda.max_memory_reserved() / 1e9 if cuda else None,
        **stats.to_dict(),
    }


def _run_child(
    args: argparse.Namespace, name: str, checkpoint: Path, work: Path
) -> dict[str, Any]:
    """Run one variant in a fresh process (clean peak memory) and read back its figures."""
    command = [sys.executable, str(Path(__file__).resolve()), "--child", name]
    command += ["--checkpoint", str(checkpoint), "--workdir", str(work)]
    command += ["--steps", str(args.steps), "--warmup-steps", str(args.warmup_steps)]
    command += ["--device", args.device]
    for flag, value in (("--micro-batch", args.micro_batch), ("--grad-accum", args.grad_accum)):
        if value is not None:
            command += [flag, str(value)]
    env = dict(os.environ)
    if args.device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""
    done = subprocess.run(command, env=env, stdout=subprocess.PIPE, text=True, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"variant {name} failed (exit status {done.returncode}); see stderr")
    result: dict[str, Any] = json.loads(lines[-1].removeprefix(RESULT_PREFIX))
    return result


def _gb(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f} GB"


def report(results: dict[str, dict[str, Any]]) -> bool:
    """Print the table and the verdict on each target; True when every target is met."""
    header = f"{'variant':<10}{'tokens/s':>10}{'s/step':>9}{'peak alloc':>12}{'peak reserved':>15}"
    print(header + f"{'efficiency':>12}{'steps/epoch':>13}{'5 epochs':>10}")
    for name, r in results.items():
        print(
            f"{name:<10}{r['tokens_per_s']:>10.0f}{r['s_per_step']:>9.2f}"
            f"{_gb(r['peak_allocated_gb']):>12}{_gb(r['peak_reserved_gb']):>15}"
            f"{r['token_efficiency']:>12.3f}{r['steps_per_epoch']:>13}"
            f"{r['projected_minutes']:>8.1f} m"
        )
    recipe, baseline = results["recipe"], results["baseline"]
    speedup = recipe["tokens_per_s"] / baseline["tokens_per_s"]
    peak = recipe["peak_reserved_gb"]
    minutes = recipe["projected_minutes"]
    checks = {
        f"recipe tokens/s >= {TARGET_SPEEDUP}x baseline ({speedup:.2f}x)": (
            speedup >= TARGET_SPEEDUP
        ),
        f"recipe peak memory <= {TARGET_PEAK_GB} GB ({_gb(peak)} reserved)": (
            peak is not None and peak <= TARGET_PEAK_GB
        ),
        f"recipe 5 epochs <= {TARGET_EPOCHS_MINUTES} min ({minutes:.1f} min)": (
            minutes <= TARGET_EPOCHS_MINUTES
        ),
    }
    for text, passed in checks.items():
        print(("PASS " if passed else "FAIL ") + text)
    return all(checks.values())


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=10, help="timed optimiser steps")
    parser.add_argument("--warmup-steps", type=int, default=2, help="untimed steps first")
    parser.add_argument("--conversations", type=int, default=CONVERSATIONS)
    parser.add_argument("--eval-conversations", type=int, default=EVAL_CONVERSATIONS)
    parser.add_argument("--micro-batch", type=int, help="override (smoke test only)")
    parser.add_argument("--grad-accum", type=int, help="override (smoke test only)")
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    parser.add_argument("--tiny", action="store_true", help="tiny model (smoke test only)")
    parser.add_argument("--workdir", type=Path, help="keeps the random checkpoint between runs")
    parser.add_argument("--child", choices=tuple(VARIANTS), help=argparse.SUPPRESS)
    parser.add_argument("--checkpoint", type=Path, help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Exit status 0 when every target is met, 1 when one is missed, 2 without CUDA."""
    import torch

    args = _parser().parse_args(argv)
    if args.steps < 1 or args.warmup_steps < 1:
        print("--steps and --warmup-steps must be >= 1", file=sys.stderr)
        return 2
    if args.device == "cuda" and not torch.cuda.is_available():
        print(NO_CUDA, file=sys.stderr)
        return 2
    if args.child is not None:
        config = variant_config(args.child, args.checkpoint, args.workdir, args)
        print(RESULT_PREFIX + json.dumps(run_variant(config, args.warmup_steps)), flush=True)
        return 0
    with tempfile.TemporaryDirectory(prefix="gpu-train-") as tmp:
        work = args.workdir or Path(tmp)
        config = model_config(args.tiny)
        print(f"model: {parameter_count(config) / 1e9:.2f} B parameters, random init", flush=True)
        started = time.perf_counter()
        write_splits(work / "data", args.conversations, args.eval_conversations)
        checkpoint = build_random_checkpoint(config, work / "model", args.device)
        print(f"checkpoint ready in {time.perf_counter() - started:.0f} s", flush=True)
        results = {name: _run_child(args, name, checkpoint, work) for name in VARIANTS}
    print(json.dumps(results, indent=2))
    return 0 if report(results) else 1


if __name__ == "__main__":
    exit_child(main())
