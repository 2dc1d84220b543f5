"""Training settings: construction checks, validate() collecting every problem, JSON trips."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from training.config import DatasetConfig, GenerationSettings, TrainConfig


def _train_config(**overrides: object) -> TrainConfig:
    values: dict[str, object] = {
        "train_file": Path("data/train.jsonl"),
        "eval_file": Path("data/eval.jsonl"),
        "output_dir": Path("runs/1"),
    }
    values.update(overrides)
    return TrainConfig(**values)  # type: ignore[arg-type]


def test_defaults_are_the_documented_ones() -> None:
    config = _train_config()
    assert config.base_model == "Qwen/Qwen2.5-7B-Instruct"
    assert (config.lora_r, config.lora_alpha, config.max_length) == (16, 32, 1024)
    assert config.generation == GenerationSettings(
        temperature=0.7, top_p=0.8, top_k=20, repetition_penalty=1.05, max_new_tokens=256
    )
    assert DatasetConfig().session_gap == timedelta(minutes=30)
    assert {"ок", "ok", "👍", "+"} <= DatasetConfig().filler_replies
    config.validate()
    DatasetConfig().validate()


def test_single_fields_are_checked_on_construction_all_at_once() -> None:
    with pytest.raises(ValueError) as caught:
        _train_config(lora_r=0, learning_rate=-1.0, quantization="8bit")
    message = str(caught.value)
    assert "lora_r" in message and "learning_rate" in message and "quantization" in message
    with pytest.raises(ValueError, match="eval_fraction"):
        DatasetConfig(eval_fraction=1.0)
    with pytest.raises(ValueError, match="top_p"):
        GenerationSettings(top_p=0.0)


def test_validate_collects_every_combination_problem() -> None:
    config = _train_config(
        eval_file=Path("data/train.jsonl"),
        max_steps=10,
        eval_steps=50,
        dataset_size=3,
        generation=GenerationSettings(temperature=0.0, do_sample=True),
    )
    with pytest.raises(ValueError) as caught:
        config.validate()
    message = str(caught.value)
    for fragment in (
        "eval_file must differ",
        "eval_steps (50)",
        "without dataset_fingerprint",
        "temperature",
    ):
        assert fragment in message
    assert len(config.problems()) == 4
    with pytest.raises(ValueError, match=r"drop_short.*min_reply_words") as caught:
        DatasetConfig(min_reply_words=0, filler_replies=frozenset()).validate()
    assert "filler_replies is empty" in str(caught.value)


def test_json_round_trips() -> None:
    train = _train_config(target_modules=("q_proj", "v_proj"), chat_template="{{ x }}")
    assert TrainConfig.from_dict(json.loads(json.dumps(train.to_dict()))) == train
    dataset = DatasetConfig(
        session_gap=timedelta(days=1, minutes=5), filler_replies=frozenset({"k"})
    )
    assert DatasetConfig.from_dict(json.loads(json.dumps(dataset.to_dict()))) == dataset
    generation = GenerationSettings(do_sample=False, temperature=0.0)
    assert GenerationSettings.from_dict(json.loads(json.dumps(generation.to_dict()))) == generation
    assert generation.to_generate_kwargs() == {
        "max_new_tokens": 256,
        "repetition_penalty": 1.05,
        "do_sample": False,
    }
    with pytest.raises(ValueError, match="unknown keys"):
        TrainConfig.from_dict({**train.to_dict(), "lr": 1})


def test_dataset_config_new_fields_are_checked_and_round_trip() -> None:
    with pytest.raises(ValueError) as caught:
        DatasetConfig(keep_short_ratio=1.5, owner_starts="ask", merge_window=timedelta(0))  # type: ignore[arg-type]
    for name in ("keep_short_ratio", "owner_starts", "merge_window"):
        assert name in str(caught.value)
    with pytest.raises(ValueError, match=r"merge_window .* exceeds session_gap"):
        DatasetConfig(merge_window=timedelta(hours=1)).validate()
    config = DatasetConfig(merge_window=timedelta(seconds=90), dedup_scope="corpus")
    assert DatasetConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


def test_padding_free_is_the_default_and_packing_needs_it() -> None:
    config = _train_config()
    assert config.padding_free and not config.packing
    _train_config(packing=True).validate()
    with pytest.raises(ValueError, match="packing needs padding_free"):
        _train_config(padding_free=False, packing=True).validate()
    with pytest.raises(ValueError, match="padding_free must be true or false"):
        _train_config(padding_free="yes")
    plain = _train_config(padding_free=False)
    assert TrainConfig.from_dict(json.loads(json.dumps(plain.to_dict()))) == plain
