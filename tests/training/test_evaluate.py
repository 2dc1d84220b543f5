"""Adapter scoring for the quality gate: the same numbers the model's own loss gives."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from tests.adapters import make_adapter
from training.chat_format import tokenize_for_training
from training.dataset import write_jsonl
from training.evaluate import evaluate_adapter, main, structural_token_ids
from training.modeling import load_adapter_tokenizer, load_base_model

SAMPLE = [
    {"role": "system", "content": "Ты — это я."},
    {"role": "user", "content": "Как прошли выходные?"},
    {"role": "assistant", "content": "Отлично, ездили за город и гуляли в лесу"},
    {"role": "user", "content": "А погода?"},
    {"role": "assistant", "content": "Солнце весь день, даже жарко было"},
]


def test_loss_matches_the_models_own_loss_on_owner_tokens(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    from peft import PeftModel

    adapter = make_adapter(tiny_model_dir, tmp_path / "a", seed=5, system_prompt="x")
    eval_file = tmp_path / "eval.jsonl"
    write_jsonl(eval_file, [SAMPLE])
    scores = evaluate_adapter(adapter, eval_file, device="cpu")

    tokenizer = load_adapter_tokenizer(adapter, str(tiny_model_dir))
    model = PeftModel.from_pretrained(load_base_model(str(tiny_model_dir), "cpu"), adapter)
    encoded = tokenize_for_training(tokenizer, SAMPLE, chat_template=None, max_length=1024)
    ids = torch.tensor([encoded["input_ids"]])
    labels = ids.clone()
    labels[torch.tensor([encoded["assistant_masks"]]) == 0] = -100
    with torch.inference_mode():
        reference = float(model(input_ids=ids, labels=labels).loss)
    assert scores["eval_loss"] == pytest.approx(reference, rel=1e-4)
    assert 0.0 <= scores["eval_mean_token_accuracy"] <= 1.0
    assert scores["eval_tokens"] == sum(encoded["assistant_masks"]) - (
        1 if encoded["assistant_masks"][0] else 0
    )


def test_command_line_reports_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "no-adapter"
    missing.mkdir()
    assert main(["--adapter", str(missing), "--eval-file", str(tmp_path / "e.jsonl")]) == 1
    assert "clone.json" in capsys.readouterr().out


def test_structural_tokens_are_the_turn_end_and_newlines(qwen_tokenizer: Any) -> None:
    ids = structural_token_ids(qwen_tokenizer)
    assert qwen_tokenizer.convert_tokens_to_ids("<|im_end|>") in ids
    assert qwen_tokenizer("\n", add_special_tokens=False)["input_ids"][0] in ids
    assert all(qwen_tokenizer.decode([i]).strip() in ("", "<|im_end|>") for i in ids)


def test_content_accuracy_leaves_out_structural_tokens(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    adapter = make_adapter(tiny_model_dir, tmp_path / "a", seed=6, system_prompt="x")
    eval_file = tmp_path / "eval.jsonl"
    write_jsonl(eval_file, [SAMPLE])
    scores = evaluate_adapter(adapter, eval_file, device="cpu")
    tokenizer = load_adapter_tokenizer(adapter, str(tiny_model_dir))
    encoded = tokenize_for_training(tokenizer, SAMPLE, chat_template=None, max_length=1024)
    structural = set(structural_token_ids(tokenizer))
    scored = [
        token
        for token, mask in zip(
            encoded["input_ids"][1:], encoded["assistant_masks"][1:], strict=True
        )
        if mask
    ]
    assert scores["eval_content_tokens"] == len([t for t in scored if t not in structural])
    assert scores["eval_content_tokens"] == scores["eval_tokens"] - 2  # two <|im_end|>
    assert 0.0 <= scores["eval_content_token_accuracy"] <= 1.0
