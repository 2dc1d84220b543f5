"""LoRA training speed on the CPU with Qwen2.5-0.5B-Instruct's shapes: what a CPU trial costs.

The hardware preflight (``training/preflight.py``) refuses a 7B base on a machine without a
CUDA GPU and offers a CPU trial with ``Qwen/Qwen2.5-0.5B-Instruct`` instead, saying how long it
takes; its ``CPU_TRIAL_TOKENS_PER_SECOND`` is this script's ``recipe`` figure. The model is a
random ``Qwen2ForCausalLM`` with the 0.5B's exact shapes (hidden 896, 24 layers, 14 heads, 2
KV heads, intermediate 4864, vocab 151936, tied embeddings; nothing is downloaded), saved with
the real Qwen2.5 tokenizer and trained by the recipe's own code (``benchmarks/gpu_train.py``'s
variants, each in its own process, float32 LoRA on the CPU), on the synthetic conversations of
``benchmarks/synthetic_conversations.py``:

* ``recipe``: padding-free micro-batches of 4, as ``tgclone train`` runs them;
* ``baseline``: the same with padded batches.

Accumulation is 1 here (tokens/s do not depend on it, and a step of 4 micro-batches takes
minutes). Printed: tokens/s, s/step of each, and the hours ``--tokens`` training tokens take
over 5 epochs at the recipe's speed on this machine's cores.

    .venv/bin/python benchmarks/cpu_train.py [--steps 2] [--warmup-steps 1] [--tokens 100000]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from benchmarks import gpu_train
from benchmarks.synthetic_conversations import write_splits

QWEN25_05B_SHAPES: dict[str, Any] = {
    "vocab_size": 151936,
    "hidden_size": 896,
    "intermediate_size": 4864,
    "num_hidden_layers": 24,
    "num_attention_heads": 14,
    "num_key_value_heads": 2,
    "max_position_embeddings": 32768,
    "rms_norm_eps": 1e-6,
    "rope_parameters": {"rope_type": "default", "rope_theta": 1_000_000.0},
    "tie_word_embeddings": True,
    "use_sliding_window": False,
    "max_window_layers": 21,
}
"""Qwen/Qwen2.5-0.5B-Instruct's config.json, shape for shape."""
CONVERSATIONS = 200
EVAL_CONVERSATIONS = 4  # the one evaluation at the end is not timed; keep it short
EPOCHS = 5


def model_config() -> Any:
    """A ``Qwen2Config`` with Qwen2.5-0.5B's shapes."""
    from transformers import Qwen2Config

    return Qwen2Config(
        **QWEN25_05B_SHAPES,
        bos_token_id=gpu_train.BOS_ID,
        eos_token_id=gpu_train.EOS_ID,
        pad_token_id=gpu_train.BOS_ID,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=2, help="timed optimiser steps")
    parser.add_argument("--warmup-steps", type=int, default=1, help="untimed steps first")
    parser.add_argument("--tokens", type=int, default=100_000, help="training set to project")
    parser.add_argument("--workdir", type=Path, help="keeps the random checkpoint between runs")
    args = parser.parse_args(argv)
    child_args = argparse.Namespace(
        steps=args.steps,
        warmup_steps=args.warmup_steps,
        device="cpu",
        micro_batch=None,
        grad_accum=1,
    )
    config = model_config()
    print(f"model: {gpu_train.parameter_count(config) / 1e9:.3f} B parameters, random init")
    print(f"cores: {os.cpu_count()}", flush=True)
    with tempfile.TemporaryDirectory(prefix="cpu-train-") as tmp:
        work = args.workdir or Path(tmp)
        started = time.perf_counter()
        write_splits(work / "data", CONVERSATIONS, EVAL_CONVERSATIONS)
        checkpoint = gpu_train.build_random_checkpoint(config, work / "model", "cpu")
        print(f"checkpoint ready in {time.perf_counter() - started:.0f} s", flush=True)
        results = {
            name: gpu_train._run_child(child_args, name, checkpoint, work)
            for name in gpu_train.VARIANTS
        }
    print(json.dumps(results, indent=2))
    print(f"{'variant':<10}{'tokens/s':>10}{'s/step':>9}{'efficiency':>12}")
    for name, result in results.items():
        print(
            f"{name:<10}{result['tokens_per_s']:>10.0f}{result['s_per_step']:>9.1f}"
            f"{result['token_efficiency']:>12.3f}"
        )
    rate = results["recipe"]["tokens_per_s"]
    hours = args.tokens * EPOCHS / rate / 3600
    print(
        f"recipe: {EPOCHS} epochs of {args.tokens:,} training tokens take about {hours:.1f} h "
        f"on these {os.cpu_count()} cores ({rate / results['baseline']['tokens_per_s']:.2f}x "
        "the padded baseline's speed)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
