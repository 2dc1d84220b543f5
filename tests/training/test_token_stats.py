"""Padding-free batches: the same loss mask as padded ones, no attention across samples, and
the token-efficiency figures counted from the trainer's own batches."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from benchmarks.synthetic_conversations import conversation
from training.config import TrainConfig
from training.dataset import write_jsonl
from training.token_stats import count_batches, measure_token_stats
from training.train import build_trainer, load_datasets, load_tokenizer_and_model

IM_END = "<|im_end|>"


def _config(tmp_path: Path, base_model: Path, **overrides: Any) -> TrainConfig:
    # Synthetic samples of very different lengths (1-6 exchanges, Russian and English).
    write_jsonl(tmp_path / "train.jsonl", [conversation(i) for i in range(10)])
    write_jsonl(tmp_path / "eval.jsonl", [conversation(i) for i in range(100, 102)])
    values: dict[str, Any] = {
        "base_model": str(base_model),
        "train_file": tmp_path / "train.jsonl",
        "eval_file": tmp_path / "eval.jsonl",
        "output_dir": tmp_path / "run",
        "quantization": "none",
        "max_steps": 2,
        "eval_steps": 2,
        "logging_steps": 1,
        "per_device_train_batch_size": 4,
        "per_device_eval_batch_size": 2,
        "gradient_accumulation_steps": 1,
        "warmup_ratio": 0.0,
    }
    values.update(overrides)
    config = TrainConfig(**values)
    config.validate()
    return config


def _trainer(config: TrainConfig) -> tuple[Any, Any, Any]:
    tokenizer, model, _quantized = load_tokenizer_and_model(config)
    train, held_out, _info = load_datasets(config, tokenizer)
    return (
        build_trainer(config, tokenizer, model, train, held_out, lambda e: None),
        train,
        tokenizer,
    )


@pytest.fixture(scope="module")
def trainers(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> dict[str, Any]:
    """A padded and a padding-free trainer of the real recipe over the same samples."""
    config = _config(tmp_path_factory.mktemp("tokens"), tiny_model_dir)
    padded, train, tokenizer = _trainer(replace(config, padding_free=False))
    padding_free, _train, _tokenizer = _trainer(config)
    return {"padded": padded, "free": padding_free, "train": train, "tokenizer": tokenizer}


def _examples(trainer: Any, count: int) -> list[dict[str, Any]]:
    prepared = trainer.train_dataset.select_columns(["input_ids", "labels"])
    return [prepared[i] for i in range(count)]


def test_the_default_recipe_is_padding_free(trainers: dict[str, Any]) -> None:
    assert trainers["free"].args.padding_free and not trainers["free"].args.packing
    assert trainers["free"].data_collator.padding_free
    assert not trainers["padded"].data_collator.padding_free
    assert trainers["free"].model.config._attn_implementation == "sdpa"  # no flash_attn on CPU


def test_padding_free_loss_mask_equals_the_padded_one_token_by_token(
    trainers: dict[str, Any],
) -> None:
    tokenizer, train = trainers["tokenizer"], trainers["train"]
    examples = _examples(trainers["free"], 4)
    assert examples == _examples(trainers["padded"], 4)
    lengths = [len(example["input_ids"]) for example in examples]
    assert len(set(lengths)) == 4, "samples of different lengths make padding visible"

    padded = trainers["padded"].data_collator(examples)
    flat = trainers["free"].data_collator(examples)
    assert "attention_mask" not in flat and flat["input_ids"].shape == (1, sum(lengths))
    assert tokenizer.pad_token_id not in flat["input_ids"][0].tolist()
    bounds = [0]
    for length in lengths:
        bounds.append(bounds[-1] + length)
    assert flat["cu_seq_lens_q"].tolist() == bounds

    im_end = tokenizer.convert_tokens_to_ids(IM_END)
    by_ids = {tuple(row["input_ids"]): row["assistant_masks"] for row in train}
    for i, length in enumerate(lengths):
        start, end = bounds[i], bounds[i + 1]
        ids = examples[i]["input_ids"]
        free_labels = flat["labels"][0, start:end].tolist()
        padded_labels = padded["labels"][i].tolist()
        assert flat["input_ids"][0, start:end].tolist() == ids
        assert free_labels == padded_labels[:length]
        assert set(padded_labels[length:]) <= {-100}
        mask = by_ids[tuple(ids)]
        assert free_labels == [t if m else -100 for t, m in zip(ids, mask, strict=True)]
        # Every owner turn ends with a trained <|im_end|>; the prompt's ones are not trained.
        turns = tokenizer.decode(ids).count("<|im_start|>assistant")
        assert sum(1 for t in free_labels if t == im_end) == turns
        assert flat["position_ids"][0, start:end].tolist() == list(range(length))


def test_padding_free_samples_do_not_attend_across_boundaries(trainers: dict[str, Any]) -> None:
    import torch

    model = trainers["free"].model.eval()
    examples = _examples(trainers["free"], 3)
    flat = trainers["free"].data_collator(examples)
    bounds = flat["cu_seq_lens_q"].tolist()
    with torch.no_grad():
        packed = model(input_ids=flat["input_ids"], position_ids=flat["position_ids"]).logits
        # Control: the same row read as one long sequence, as if boundaries were ignored.
        joined = model(input_ids=flat["input_ids"]).logits
        for i, example in enumerate(examples):
            alone = model(input_ids=torch.tensor([example["input_ids"]])).logits[0]
            start, end = bounds[i], bounds[i + 1]
            torch.testing.assert_close(packed[0, start:end], alone, atol=1e-4, rtol=1e-4)
            if i > 0:
                assert not torch.allclose(joined[0, start:end], alone, atol=1e-2)


def test_token_stats_count_the_trainers_batches(trainers: dict[str, Any]) -> None:
    train = trainers["train"]
    owner = sum(sum(mask) for mask in train["assistant_masks"])
    real = sum(len(ids) for ids in train["input_ids"])
    padded = measure_token_stats(trainers["padded"], train)
    free = measure_token_stats(trainers["free"], train)
    for stats in (padded, free):
        assert (stats.real_tokens, stats.owner_tokens, stats.loss_tokens) == (real, owner, owner)
        assert stats.batches == 3 and stats.loss_token_share == 1.0
    assert free.processed_tokens == real and free.token_efficiency == 1.0
    assert padded.processed_tokens > real and padded.token_efficiency < 0.9
    assert free.metrics() == {"token_efficiency": 1.0, "loss_token_share": 1.0}


def test_count_batches_by_hand() -> None:
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    examples = [
        {"input_ids": [5, 6, 7], "labels": [-100, 6, 7]},
        {"input_ids": [8, 9, 10, 11, 12], "labels": [-100, -100, 10, 11, -100]},
        {"input_ids": [13], "labels": [13]},
    ]
    collator = DataCollatorForLanguageModeling(pad_token_id=0)
    stats = count_batches(collator, examples, batch_size=3, seed=0, owner_tokens=5)
    assert (stats.real_tokens, stats.processed_tokens, stats.loss_tokens) == (9, 15, 5)
    assert stats.token_efficiency == pytest.approx(0.6) and stats.batches == 1
    with pytest.raises(ValueError, match="batch_size"):
        count_batches(collator, examples, batch_size=0, seed=0, owner_tokens=5)


def test_packed_training_runs_and_keeps_the_mask(tmp_path: Path, tiny_model_dir: Path) -> None:
    # One packed row per step keeps this CPU run short.
    config = _config(
        tmp_path,
        tiny_model_dir,
        packing=True,
        per_device_train_batch_size=1,
        max_steps=1,
        eval_steps=1,
    )
    trainer, train, _tokenizer = _trainer(config)
    prepared = trainer.train_dataset
    assert "seq_lengths" in prepared.column_names and len(prepared) < len(train)
    assert sum(sum(row) for row in prepared["seq_lengths"]) == sum(map(len, train["input_ids"]))
    stats = measure_token_stats(trainer, train)
    assert stats.loss_tokens == stats.owner_tokens and stats.token_efficiency == 1.0
    output = trainer.train()
    assert trainer.state.global_step == 1 and output.training_loss > 0
