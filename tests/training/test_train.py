"""The training recipe: config loading, datasets, TRL labels, and real runs on a tiny model."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import pytest

from storage.memory import INDEX_VERSION
from tests.training.feedback import signals
from training.chat_format import ChatMessage, load_clone_spec
from training.config import DEFAULT_SYSTEM_PROMPT, DatasetConfig, TrainConfig
from training.dataset import write_jsonl
from training.preference_data import write_preference_data
from training.runner import LocalRunner
from training.train import load_datasets
from training.train_args import load_config, parse_args

# Nothing may come from a model hub in tests, not even a failed look-up.
OFFLINE_ENV = {**os.environ, "HF_HUB_OFFLINE": "1"}
REPLY = "sure thing, let's meet at the old cafe at noon"


def _sample(index: int, system: str = DEFAULT_SYSTEM_PROMPT) -> list[ChatMessage]:
    sample: list[ChatMessage] = [{"role": "system", "content": system}]
    for turn in range(2):
        sample.append({"role": "user", "content": f"question {index + turn} about the weekend?"})
        sample.append({"role": "assistant", "content": REPLY})
    return sample


def _write_run(tmp_path: Path, base_model: str | Path, **overrides: Any) -> Path:
    """Write train/eval JSONL and a small CPU TrainConfig; return the config path."""
    write_jsonl(tmp_path / "train.jsonl", [_sample(i) for i in range(16)])
    write_jsonl(tmp_path / "eval.jsonl", [_sample(i) for i in range(100, 104)])
    values: dict[str, Any] = {
        "base_model": str(base_model),
        "train_file": tmp_path / "train.jsonl",
        "eval_file": tmp_path / "eval.jsonl",
        "output_dir": tmp_path / "run",
        "learning_rate": 5e-3,
        "warmup_ratio": 0.0,
        "max_steps": 12,
        "eval_steps": 4,
        "logging_steps": 2,
        "per_device_train_batch_size": 2,
        "per_device_eval_batch_size": 2,
        "gradient_accumulation_steps": 1,
        "early_stopping_patience": 10,
        "dataset": DatasetConfig(max_seq_tokens=256),
    }
    values.update(overrides)
    config = TrainConfig(**values)
    config.validate()
    path = tmp_path / "run_config.json"
    path.write_text(json.dumps(config.to_dict()), encoding="utf-8")
    return path


def test_flags_override_the_config_file(tmp_path: Path) -> None:
    path = _write_run(tmp_path, "some/model")
    argv = ["--config", str(path), "--epochs", "2", "--lora-r", "8", "--max-steps", "20"]
    argv += ["--target-modules", "q_proj,v_proj", "--quantization", "none", "--eval-steps", "5"]
    config = load_config(parse_args(argv))
    assert config.num_train_epochs == 2.0 and config.lora_r == 8 and config.max_steps == 20
    assert config.target_modules == ("q_proj", "v_proj") and config.quantization == "none"
    assert config.learning_rate == 5e-3
    with pytest.raises(ValueError, match="eval_steps"):
        load_config(parse_args([*argv, "--eval-steps", "50"]))
    assert config.padding_free and not config.packing
    assert load_config(parse_args([*argv, "--packing"])).packing
    assert not load_config(parse_args([*argv, "--no-padding-free"])).padding_free
    with pytest.raises(ValueError, match="packing needs padding_free"):
        load_config(parse_args([*argv, "--no-padding-free", "--packing"]))


def test_datasets_must_match_the_system_prompt_and_have_eval(
    tmp_path: Path, qwen_tokenizer: Any
) -> None:
    config = TrainConfig.from_dict(json.loads(_write_run(tmp_path, "m").read_text()))
    train, held_out, info = load_datasets(config, qwen_tokenizer)
    assert (len(train), len(held_out)) == (16, 4)
    assert info["dropped_too_long"] == 0 and len(info["dataset_fingerprint"]) == 64

    # A memory block after the run's system prompt is the run's; another prompt is not.
    block = "\n\nThings you have said before:\n- question 7 about the weekend?"
    write_jsonl(config.eval_file, [_sample(1, system=DEFAULT_SYSTEM_PROMPT + block)])
    assert len(load_datasets(config, qwen_tokenizer)[1]) == 1
    for system in ("another prompt", "another prompt" + block):
        write_jsonl(config.eval_file, [_sample(1, system=system)])
        with pytest.raises(ValueError, match="system prompt"):
            load_datasets(config, qwen_tokenizer)
    write_jsonl(config.eval_file, [])
    with pytest.raises(ValueError, match="at least 1 eval sample"):
        load_datasets(config, qwen_tokenizer)


def test_context_owner_turns_stay_out_of_the_loss_through_jsonl(
    tmp_path: Path, qwen_tokenizer: Any
) -> None:
    config = TrainConfig.from_dict(json.loads(_write_run(tmp_path, "m").read_text()))
    plain, _, _ = load_datasets(config, qwen_tokenizer)
    context = [{**m, "weight": 0} if i == 2 else m for i, m in enumerate(_sample(0))]
    write_jsonl(config.train_file, [context])  # type: ignore[list-item]
    train, _, _ = load_datasets(config, qwen_tokenizer)
    [row] = train
    [first] = [r for r in plain if r["input_ids"] == row["input_ids"]]
    reply_tokens = sum(first["assistant_masks"]) // 2
    assert sum(row["assistant_masks"]) == reply_tokens  # the first reply is not trained


def test_trl_builds_labels_from_the_assistant_masks(tmp_path: Path, tiny_model_dir: Path) -> None:
    from training.train import build_trainer, load_tokenizer_and_model

    path = _write_run(tmp_path, tiny_model_dir, padding_free=False)
    config = TrainConfig.from_dict(json.loads(path.read_text()))
    tokenizer, model, quantized = load_tokenizer_and_model(config)
    assert not quantized and tokenizer.pad_token_id == 151643 and tokenizer.eos_token_id == 151645
    train, held_out, _info = load_datasets(config, tokenizer)
    trainer = build_trainer(config, tokenizer, model, train, held_out, lambda event: None)
    prepared = trainer.train_dataset
    assert prepared is not None and "labels" in prepared.column_names
    assert "assistant_masks" not in prepared.column_names
    by_ids = {tuple(row["input_ids"]): row["labels"] for row in prepared}
    for row in train:
        labels = by_ids[tuple(row["input_ids"])]
        expected = [
            t if m else -100 for t, m in zip(row["input_ids"], row["assistant_masks"], strict=True)
        ]
        assert labels == expected


@pytest.mark.slow
async def test_real_training_run_through_the_local_runner(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    # The owner gave three signals: too few for the preference stage, which says so.
    write_preference_data(tmp_path / "preference.jsonl", signals(pairs=2, unpaired=1))
    config_path = _write_run(
        tmp_path, tiny_model_dir, preference_file=tmp_path / "preference.jsonl"
    )
    events: list[dict[str, Any]] = []

    async def on_event(event: dict[str, Any]) -> None:
        events.append(event)

    runner = LocalRunner(env=OFFLINE_ENV)
    outcome = await runner.run(config_path, tmp_path / "train.log", on_event)
    assert outcome.returncode == 0, outcome.error
    assert outcome.succeeded and runner.pid is not None

    adapter_dir = tmp_path / "run" / "adapter"
    for name in ("adapter_model.safetensors", "adapter_config.json", "tokenizer_config.json"):
        assert (adapter_dir / name).is_file(), name
    assert not (tmp_path / "run" / "checkpoints").exists()

    spec = load_clone_spec(adapter_dir)
    assert spec.system_prompt == DEFAULT_SYSTEM_PROMPT
    assert spec.dataset.memory and spec.memory_index_version == INDEX_VERSION
    assert spec.chat_template == (tiny_model_dir / "chat_template.jinja").read_text("utf-8")
    assert spec.base_model == str(tiny_model_dir) and spec.dataset_size == 20
    assert {"eval_loss", "eval_mean_token_accuracy", "train_loss"} <= set(spec.metrics)
    assert spec.precision == "fp32"  # LoRA on float32 weights: the CPU's; serving repeats it

    result = json.loads((tmp_path / "run" / "result.json").read_text(encoding="utf-8"))
    assert result == outcome.result
    assert result["status"] == "succeeded" and result["adapter_dir"] == str(adapter_dir)
    assert result["metrics"]["eval_loss"] == spec.metrics["eval_loss"]
    assert result["precision"] == "fp32"
    stage = result["preference"]
    assert stage["status"] == "skipped" and "3 of the 20 signals" in stage["note"]
    assert result["metrics"]["preference_kept"] == 0.0
    assert "preference_eval_loss" not in result["metrics"]
    # One process, 2 samples x 1 accumulation step: the config's batch, reported as run.
    batch = {"gpus": 1, "per_device_batch": 2, "gradient_accumulation_steps": 1}
    assert result["batch"] == {**batch, "effective_batch": 2, "recipe_batch": 2}
    # Padding-free (the default): every processed token is real, exactly the owner's are trained.
    assert result["metrics"]["token_efficiency"] == 1.0
    assert result["metrics"]["loss_token_share"] == 1.0
    history = result["log_history"]
    assert [row["step"] for row in history if "loss" in row][:2] == [1, 2]
    assert sum(1 for row in history if "eval_loss" in row) >= 3

    kinds = [event["event"] for event in events]
    assert kinds[:3] == ["batch", "tokens", "start"] and kinds[-1] == "done"
    assert events[0] == {"event": "batch", **result["batch"]}
    tokens = events[1]
    assert tokens["processed_tokens"] == tokens["real_tokens"] > 0
    assert tokens["loss_tokens"] == tokens["owner_tokens"] > 0
    assert "log_history" not in events[-1]
    evals = [event for event in events if event["event"] == "eval"]
    assert len(evals) >= 3 and all("eval_loss" in event for event in evals)
    losses = [event["loss"] for event in events if event["event"] == "log"]
    assert len(losses) >= 5
    assert losses[-1] < losses[0] - 1.0
    assert evals[-1]["eval_loss"] < evals[0]["eval_loss"]
    assert "Traceback" not in (tmp_path / "train.log").read_text(encoding="utf-8")


async def test_a_failing_run_reports_an_error(tmp_path: Path) -> None:
    config_path = _write_run(tmp_path, tmp_path / "no-such-model")
    events: list[dict[str, Any]] = []
    outcome = await LocalRunner(env=OFFLINE_ENV).run(
        config_path, tmp_path / "train.log", events.append
    )
    assert outcome.returncode != 0 and not outcome.succeeded
    # The preflight's one message, without a traceback's type name in front.
    assert outcome.error and outcome.error.startswith("BASE_MODEL folder")
    assert "no-such-model does not exist" in outcome.error and "hf download" in outcome.error
    assert outcome.result is not None and outcome.result["status"] == "failed"
    assert events and events[-1]["event"] == "failed"
    assert not (tmp_path / "run" / "adapter").exists()


async def test_cancel_stops_the_child(tmp_path: Path, tiny_model_dir: Path) -> None:
    config_path = _write_run(tmp_path, tiny_model_dir)
    runner = LocalRunner(env=OFFLINE_ENV)
    task = asyncio.create_task(runner.run(config_path, tmp_path / "train.log"))
    while runner.pid is None:
        await asyncio.sleep(0.05)
    runner.cancel()
    outcome = await asyncio.wait_for(task, timeout=60)
    assert outcome.returncode != 0 and outcome.error == "cancelled"
    assert not outcome.succeeded and outcome.result is None


@pytest.mark.parametrize(("gpus", "accumulation"), [(1, 4), (2, 2), (4, 1)])
def test_the_trainer_divides_accumulation_over_the_gpus_and_skips_the_unused_search(
    tmp_path: Path, tiny_model_dir: Path, gpus: int, accumulation: int
) -> None:
    from training.gpus import batch_plan
    from training.train import build_trainer, load_tokenizer_and_model

    path = _write_run(
        tmp_path, tiny_model_dir, per_device_train_batch_size=4, gradient_accumulation_steps=4
    )
    config = TrainConfig.from_dict(json.loads(path.read_text()))
    tokenizer, model, _quantized = load_tokenizer_and_model(config)
    train, held_out, _info = load_datasets(config, tokenizer)
    plan = batch_plan(4, 4, gpus)
    trainer = build_trainer(config, tokenizer, model, train, held_out, lambda e: None, plan)
    assert trainer.args.gradient_accumulation_steps == accumulation
    assert trainer.args.per_device_train_batch_size * accumulation * gpus == 16
    # A PeftModel would otherwise leave DDP searching for unused parameters at every step.
    assert trainer.args.ddp_find_unused_parameters is False


def test_all_linear_targets_reach_the_mlp(tiny_model_dir: Path) -> None:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from training.train import _peft_targets

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    lora = get_peft_model(model, LoraConfig(r=2, target_modules=_peft_targets(("all-linear",))))
    targets = {n.split(".")[-2] for n, _ in lora.named_modules() if n.endswith("lora_A")}
    assert {"q_proj", "o_proj", "gate_proj", "down_proj"} <= targets
    assert "lm_head" not in targets
