"""Corrections become samples like the corpus's: trimmed to fit, loss on the better text."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from storage.corrections import ContextTurn, Correction
from training.chat_format import tokenize_for_training
from training.config import DatasetConfig
from training.corrections import correction_samples


def _correction(context: list[ContextTurn], better: str) -> Correction:
    return Correction(1, 7, 3, context, "clone said", better, datetime(2026, 1, 1, tzinfo=UTC))


def test_long_context_is_cut_at_user_turns_and_the_loss_is_on_the_better_text(
    qwen_tokenizer: Any,
) -> None:
    config = DatasetConfig(system_prompt="You are Owner.", max_seq_tokens=64)
    long_turn = "слово " * 40
    context: list[ContextTurn] = [
        {"role": "user", "content": long_turn},
        {"role": "assistant", "content": "ок"},
        {"role": "user", "content": "В семь? Позвони +7 912 345-67-89"},
    ]
    made = correction_samples([_correction(context, "давай")], config, qwen_tokenizer)
    [sample] = made.samples
    assert [m["role"] for m in sample] == ["system", "user", "assistant"]
    assert "<PHONE>" in sample[1]["content"]  # the corpus's privacy scrub applies too
    assert sample[-1] == {"role": "assistant", "content": "давай"}
    encoded = tokenize_for_training(qwen_tokenizer, sample, chat_template=None, max_length=64)
    pairs = zip(encoded["input_ids"], encoded["assistant_masks"], strict=True)
    labelled = [token for token, on in pairs if on]
    assert qwen_tokenizer.decode(labelled) == "давай<|im_end|>"


def test_unusable_corrections_are_counted() -> None:
    config = DatasetConfig(system_prompt="s", max_seq_tokens=32)
    no_prompt = _correction([{"role": "assistant", "content": "hi"}], "hello")
    too_long = _correction([{"role": "user", "content": "q"}], "word " * 200)
    made = correction_samples([no_prompt, too_long], config)
    assert made.samples == []
    assert made.drops == {"correction_no_prompt": 1, "correction_too_long": 1}


def test_the_system_message_the_clone_saw_is_the_samples() -> None:
    """A correction trains on the prompt as the clone saw it: its memory block included."""
    config = DatasetConfig(system_prompt="You are Owner.")
    seen = "You are Owner.\n\nThings you have said before:\n- в кино по средам"
    context: list[ContextTurn] = [
        {"role": "system", "content": seen},
        {"role": "user", "content": "в кино?"},
    ]
    [sample] = correction_samples([_correction(context, "давай в среду")], config).samples
    assert sample[0] == {"role": "system", "content": seen}
    assert [m["role"] for m in sample] == ["system", "user", "assistant"]
    # A prompt stored without its system message (replies from before it was kept).
    [old] = correction_samples([_correction(context[1:], "давай")], config).samples
    assert old[0] == {"role": "system", "content": "You are Owner."}
