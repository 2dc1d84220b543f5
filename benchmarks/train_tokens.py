"""Token efficiency of the training batches: padded against padding-free (and packed), on CPU.

The 1,700 synthetic conversations of ``benchmarks/synthetic_conversations.py`` are tokenized
with the real Qwen2.5-Instruct tokenizer (``tests/fixtures``) by the recipe's own
``load_datasets``; each variant then gets a real ``SFTTrainer`` from ``build_trainer`` (on a
tiny random Qwen2, since only the batches matter here) and ``measure_token_stats`` collates one
epoch with that trainer's collator and prepared dataset:

* token efficiency = real tokens / processed tokens (target with padding-free: >= 0.97);
* loss tokens / owner tokens (must be exactly 1.0 in every variant).

    .venv/bin/python benchmarks/train_tokens.py [--conversations 1700] [--batch-size 4]
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from benchmarks.synthetic_conversations import CONVERSATIONS, write_splits
from tests.tiny_model import build_tiny_model_dir
from training.config import TrainConfig
from training.token_stats import TokenStats, measure_token_stats
from training.train import build_trainer, load_datasets, load_tokenizer_and_model

TARGET_EFFICIENCY = 0.97
VARIANTS: dict[str, dict[str, Any]] = {
    "padded": {"padding_free": False, "packing": False},
    "padding-free": {"padding_free": True, "packing": False},
    "packed (bfd)": {"padding_free": True, "packing": True},
}


def measure(base: TrainConfig) -> dict[str, TokenStats]:
    """Build the recipe's trainer for each variant and measure one epoch of its batches."""
    results: dict[str, TokenStats] = {}
    tokenizer, _model, _quantized = load_tokenizer_and_model(base)
    train_dataset, eval_dataset, _info = load_datasets(base, tokenizer)
    for name, overrides in VARIANTS.items():
        config = replace(base, **overrides)
        config.validate()
        # A fresh model per trainer: build_trainer wraps it in a LoRA adapter.
        _tokenizer, model, _quantized = load_tokenizer_and_model(config)
        trainer = build_trainer(
            config, tokenizer, model, train_dataset, eval_dataset, lambda event: None
        )
        results[name] = measure_token_stats(trainer, train_dataset)
    return results


def main(argv: list[str] | None = None) -> int:
    """Print both figures per variant and PASS/FAIL; exit status 1 on FAIL."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--conversations", type=int, default=CONVERSATIONS)
    parser.add_argument("--batch-size", type=int, default=4, help="per-device micro-batch")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="train-tokens-") as tmp:
        root = Path(tmp)
        train_file, eval_file = write_splits(root / "data", args.conversations)
        base = TrainConfig(
            base_model=str(build_tiny_model_dir(root / "tiny-qwen2")),
            train_file=train_file,
            eval_file=eval_file,
            output_dir=root / "run",
            quantization="none",
            per_device_train_batch_size=args.batch_size,
        )
        results = measure(base)
    print(f"{args.conversations} conversations, micro-batch {args.batch_size}, Qwen2.5 tokenizer")
    any_stats = next(iter(results.values()))
    print(f"real tokens per epoch: {any_stats.real_tokens:,} (owner: {any_stats.owner_tokens:,})")
    print(f"{'variant':<14}{'batches':>9}{'processed':>12}{'efficiency':>12}{'loss/owner':>12}")
    for name, stats in results.items():
        print(
            f"{name:<14}{stats.batches:>9}{stats.processed_tokens:>12,}"
            f"{stats.token_efficiency:>12.4f}{stats.loss_token_share:>12.4f}"
        )
    padding_free = results["padding-free"].token_efficiency
    masks_ok = all(stats.loss_tokens == stats.owner_tokens for stats in results.values())
    passed = padding_free >= TARGET_EFFICIENCY and masks_ok
    print(
        f"padding-free efficiency {padding_free:.4f} (target >= {TARGET_EFFICIENCY}), "
        f"padded {results['padded'].token_efficiency:.4f}; loss tokens == owner tokens in every "
        f"variant: {masks_ok}; {time.perf_counter() - started:.1f} s"
    )
    print("PASS" if passed else "FAIL")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
