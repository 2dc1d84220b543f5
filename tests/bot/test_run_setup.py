"""Settings and flags reach the training recipe; the defaults are the recipe's."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from bot.run_setup import TRAIN_OVERRIDES, RunSetupError, train_config
from bot.settings import Settings
from training.config import TrainConfig
from training.dataset import DatasetBuild


def _build() -> DatasetBuild:
    sample = [
        {"role": "system", "content": "s"},
        {"role": "user", "content": "u"},
        {"role": "assistant", "content": "a"},
    ]
    return DatasetBuild(
        train=[sample], eval=[sample], drops={}, conversations=2, fingerprint="f", stats={}
    )


def _settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg, arg-type]


def test_every_override_names_a_recipe_field() -> None:
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    assert set(TRAIN_OVERRIDES.values()) <= fields
    assert set(TRAIN_OVERRIDES) <= set(Settings.model_fields)


def test_defaults_are_the_recipe(tmp_path: Path) -> None:
    config = train_config(_settings(), tmp_path, _build())
    assert config.base_model == "Qwen/Qwen2.5-7B-Instruct"
    assert config.target_modules == ("q_proj", "k_proj", "v_proj", "o_proj")
    assert config.learning_rate == 1e-4
    assert config.num_train_epochs == 5
    assert config.per_device_train_batch_size == 4
    assert config.gradient_accumulation_steps == 4
    assert config.eval_steps == 50
    assert config.early_stopping_patience == 3
    assert config.early_stopping_threshold == 0.01
    assert config.dataset_fingerprint == "f" and config.dataset_size == 2


def test_environment_overrides_reach_the_recipe(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRAIN_LORA_ALPHA", "64")
    monkeypatch.setenv("TRAIN_TARGET_MODULES", "all-linear")
    monkeypatch.setenv("TRAIN_EARLY_STOPPING_PATIENCE", "5")
    monkeypatch.setenv("TRAIN_BATCH_SIZE", "2")
    config = train_config(Settings(_env_file=None), tmp_path, _build())  # type: ignore[call-arg]
    assert config.lora_alpha == 64
    assert config.target_modules == ("all-linear",)
    assert config.early_stopping_patience == 5
    assert config.per_device_train_batch_size == config.per_device_eval_batch_size == 2


def test_conflicting_settings_are_explained(tmp_path: Path) -> None:
    settings = _settings(train_max_steps=10, train_eval_steps=50)
    with pytest.raises(RunSetupError, match="eval_steps"):
        train_config(settings, tmp_path, _build())
