"""Knobs: each config field declared once, set by the environment, then by flags."""

from __future__ import annotations

import argparse
import dataclasses
from datetime import timedelta
from pathlib import Path

import pydantic
import pytest

from training.config import DatasetConfig, GenerationSettings, TrainConfig
from training.dataset import DatasetBuild
from training.prepare import train_config
from training.settings import (
    PipelineSettings,
    add_flags,
    all_knobs,
    flag_values,
    knob_fields,
    knobs,
    resolved,
)


def _build() -> DatasetBuild:
    sample = [
        {"role": "system", "content": "s"},
        {"role": "user", "content": "u"},
        {"role": "assistant", "content": "a"},
    ]
    return DatasetBuild(
        train=[sample], eval=[sample], drops={}, conversations=2, fingerprint="f", stats={}
    )


def _settings(**values: object) -> PipelineSettings:
    return PipelineSettings(_env_file=None, **values)  # type: ignore[call-arg, arg-type]


def test_every_knob_is_a_config_field_and_a_setting() -> None:
    names = [knob.name for knob in all_knobs()]
    assert len(names) == len(set(names)), "two knobs share a setting name"
    for knob in all_knobs():
        assert knob.field in {f.name for f in dataclasses.fields(knob.config)}
        assert knob.name in PipelineSettings.model_fields
    # The names the environment has always used stay.
    envs = {knob.env for knob in all_knobs()}
    assert {"BASE_MODEL", "SYSTEM_PROMPT", "SESSION_GAP_MINUTES", "TRAIN_EPOCHS"} <= envs
    assert {"TRAIN_BATCH_SIZE", "TRAIN_GRAD_ACCUM", "TRAIN_MAX_LENGTH"} <= envs
    assert {"GENERATION_TEMPERATURE", "DATASET_MIN_REPLY_WORDS"} <= envs
    # Run bookkeeping and paths are not knobs.
    assert not {"train_file", "dataset_fingerprint", "dataset"} & {
        k.field for k in knobs(TrainConfig)
    }


def test_defaults_are_the_recipe(tmp_path: Path) -> None:
    config = train_config(_settings(), tmp_path, _build())
    assert config == TrainConfig(
        train_file=tmp_path / "train.jsonl",
        eval_file=tmp_path / "eval.jsonl",
        output_dir=tmp_path / "output",
        dataset_fingerprint="f",
        dataset_size=2,
        preference_file=tmp_path / "preference.jsonl",
        preference_tolerance=0.01,  # PROMOTE_MIN_IMPROVEMENT's default
    )
    assert _settings().dataset_config() == DatasetConfig()
    assert _settings().generation_overrides() == {}


def test_environment_overrides_reach_the_recipe(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRAIN_LORA_ALPHA", "64")
    monkeypatch.setenv("TRAIN_TARGET_MODULES", "all-linear")
    monkeypatch.setenv("TRAIN_BATCH_SIZE", "2")
    monkeypatch.setenv("TRAIN_MAX_LENGTH", "512")
    monkeypatch.setenv("SESSION_GAP_MINUTES", "45")
    monkeypatch.setenv("DATASET_FILLER_REPLIES", "ок, ага ,+")
    monkeypatch.setenv("DATASET_OWNER_STARTS", "drop")
    config = train_config(PipelineSettings(_env_file=None), tmp_path, _build())  # type: ignore[call-arg]
    assert config.lora_alpha == 64 and config.target_modules == ("all-linear",)
    assert config.per_device_train_batch_size == config.per_device_eval_batch_size == 2
    assert config.max_length == config.dataset.max_seq_tokens == 512
    assert config.dataset.session_gap == timedelta(minutes=45)
    assert config.dataset.filler_replies == frozenset({"ок", "ага", "+"})
    assert config.dataset.owner_starts == "drop"


def test_bad_and_conflicting_values_are_refused_naming_the_setting() -> None:
    with pytest.raises(
        pydantic.ValidationError,
        match=r"eval_steps \(50\) exceeds max_steps \(10\).*TRAIN_EVAL_STEPS",
    ):
        _settings(train_max_steps=10, train_eval_steps=50)
    with pytest.raises(pydantic.ValidationError, match="learning_rate must be > 0"):
        _settings(train_learning_rate=-1)
    with pytest.raises(pydantic.ValidationError, match="owner_starts"):
        _settings(dataset_owner_starts="sometimes")


def test_flags_override_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRAIN_LEARNING_RATE", "0.5")
    monkeypatch.setenv("DATASET_MIN_REPLY_WORDS", "4")
    parser = argparse.ArgumentParser()
    add_flags(parser, TrainConfig)
    add_flags(parser, DatasetConfig)
    args = parser.parse_args(["--learning-rate", "0.25", "--no-padding-free", "--epochs", "2"])
    given = {**flag_values(args, TrainConfig), **flag_values(args, DatasetConfig)}
    assert given == {"train_learning_rate": 0.25, "train_padding_free": False, "train_epochs": 2}
    settings = PipelineSettings(_env_file=None, **given)  # type: ignore[call-arg, arg-type]
    fields = knob_fields(settings, TrainConfig)
    assert fields["learning_rate"] == 0.25 and fields["num_train_epochs"] == 2
    assert settings.dataset_config().min_reply_words == 4  # from the environment


def test_a_new_knob_needs_one_declaration(monkeypatch: pytest.MonkeyPatch) -> None:
    """A field added to a config is a setting, a flag and part of a run's record at once."""

    @dataclasses.dataclass(frozen=True, kw_only=True)
    class Recipe(GenerationSettings):
        min_p: float = 0.0
        """Drop tokens below this share of the top token's probability."""

    from training import settings as module

    monkeypatch.setitem(module.PREFIXES, Recipe, "generation_")
    [knob] = [k for k in knobs(Recipe) if k.field == "min_p"]
    assert (knob.env, knob.flag, knob.help) == (
        "GENERATION_MIN_P",
        "--min-p",
        "Drop tokens below this share of the top token's probability",
    )


def test_the_run_records_every_knob_as_resolved(tmp_path: Path) -> None:
    config = train_config(_settings(train_lora_r=8, session_gap_minutes=10), tmp_path, _build())
    record = resolved(config)
    assert record["TRAIN_LORA_R"] == 8 and record["SESSION_GAP_MINUTES"] == 10
    assert record["TRAIN_TARGET_MODULES"] == "q_proj,k_proj,v_proj,o_proj"
    assert set(record) == {k.env for k in (*knobs(TrainConfig), *knobs(DatasetConfig))}
