"""How much of the work a training run spends on real tokens, measured on its own batches.

The batches are built by the trainer's own collator from the trainer's own prepared dataset
(labels, packing and all), in micro-batches of the run's size and in a seeded random order
like the trainer's sampler, so the figures describe the run and not a model of it:

* ``token_efficiency`` = real tokens / processed tokens (padding is the difference);
* ``loss_token_share`` = tokens with a label / owner tokens of the tokenized samples
  (1.0 means batching lost or added no owner token to the loss).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from datasets import Dataset
    from trl import SFTTrainer

IGNORE_INDEX = -100
"""Label of a token outside the loss (transformers' and TRL's convention)."""
Collator = Callable[[list[dict[str, Any]]], dict[str, Any]]


@dataclass(frozen=True)
class TokenStats:
    """Token counts over one pass of micro-batches (one epoch)."""

    real_tokens: int
    """Tokens of the samples themselves."""
    processed_tokens: int
    """Tokens the model runs over: real ones plus padding."""
    loss_tokens: int
    """Tokens with a label (they count in the loss)."""
    owner_tokens: int
    """Tokens marked as the owner's (``assistant_masks``) before batching."""
    batches: int
    """Micro-batches per epoch."""

    @property
    def token_efficiency(self) -> float:
        """Real tokens / processed tokens (1.0: no padding at all)."""
        return self.real_tokens / self.processed_tokens if self.processed_tokens else 0.0

    @property
    def loss_token_share(self) -> float:
        """Loss tokens / owner tokens (1.0: exactly the owner's tokens are trained on)."""
        return self.loss_tokens / self.owner_tokens if self.owner_tokens else 0.0

    def metrics(self) -> dict[str, float]:
        """The two ratios, as they go into result.json ``metrics`` and clone.json."""
        return {
            "token_efficiency": round(self.token_efficiency, 6),
            "loss_token_share": round(self.loss_token_share, 6),
        }

    def to_dict(self) -> dict[str, float | int]:
        """Counts and ratios, JSON-safe (the ``tokens`` progress event)."""
        return {
            "real_tokens": self.real_tokens,
            "processed_tokens": self.processed_tokens,
            "loss_tokens": self.loss_tokens,
            "owner_tokens": self.owner_tokens,
            "batches": self.batches,
            **self.metrics(),
        }


def owner_token_count(tokenized: Dataset) -> int:
    """Owner tokens of ``load_datasets`` output (the sum of its ``assistant_masks``)."""
    return sum(sum(mask) for mask in tokenized["assistant_masks"])


def count_batches(
    collator: Collator,
    examples: Sequence[dict[str, Any]],
    batch_size: int,
    seed: int,
    owner_tokens: int,
) -> TokenStats:
    """Collate ``examples`` in shuffled micro-batches of ``batch_size`` and count tokens.

    Real tokens are the lengths of the examples (so padding to a multiple, a flattened row
    or an attention mask are all counted the same way); processed tokens are the size of the
    ``input_ids`` tensor the model gets.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    real = processed = loss = batches = 0
    for start in range(0, len(order), batch_size):
        chunk = [examples[i] for i in order[start : start + batch_size]]
        batch = collator(chunk)
        real += sum(len(example["input_ids"]) for example in chunk)
        processed += int(batch["input_ids"].numel())
        loss += int((batch["labels"] != IGNORE_INDEX).sum())
        batches += 1
    return TokenStats(
        real_tokens=real,
        processed_tokens=processed,
        loss_tokens=loss,
        owner_tokens=owner_tokens,
        batches=batches,
    )


def measure_token_stats(trainer: SFTTrainer, tokenized_train: Dataset) -> TokenStats:
    """One epoch of the trainer's training micro-batches, collated by its own collator.

    ``tokenized_train`` is the ``load_datasets`` output the trainer was built from; it supplies
    the owner-token count the loss tokens are compared with.
    """
    prepared: Any = trainer.train_dataset
    if prepared is None:
        raise ValueError("the trainer has no training dataset to measure")
    columns = [c for c in ("input_ids", "labels", "seq_lengths") if c in prepared.column_names]
    examples = list(prepared.select_columns(columns))
    return count_batches(
        trainer.data_collator,
        examples,
        batch_size=int(trainer.args.per_device_train_batch_size),
        seed=int(trainer.args.seed),
        owner_tokens=owner_token_count(tokenized_train),
    )
