"""PromptBuilder: a chat's stored messages to the serving adapter's prompt, within its budget."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from tests.training.chat_builder import Chat
from training.chat_format import CloneSpec
from training.config import DatasetConfig, GenerationSettings
from training.prompt import PromptBuilder
from training.turns import CUT_MARKER


def _builder(
    tokenizer: Any, max_seq_tokens: int = 1024, max_new: int = 256, memory: bool = True
) -> PromptBuilder:
    dataset = DatasetConfig(
        system_prompt="Ты — это я.", max_seq_tokens=max_seq_tokens, memory=memory
    )
    spec = CloneSpec(
        base_model="Qwen/Qwen2.5-7B-Instruct",
        dataset=dataset,
        chat_template=str(tokenizer.chat_template),
    )
    return PromptBuilder(spec, tokenizer, GenerationSettings(max_new_tokens=max_new))


def test_a_burst_of_thirty_full_messages_fits_the_budget(qwen_tokenizer: Any) -> None:
    builder = _builder(qwen_tokenizer)
    chat = Chat().friend("привет").owner("привет, что случилось?")
    for index in range(30):
        chat.friend("длинный текст " * 292 + f"конец {index}", after=timedelta(seconds=2))
    shaped = builder.turns(chat.messages, now=chat.clock + timedelta(seconds=5))
    assert shaped is not None and shaped.cut
    ids = builder.token_ids(shaped.messages)
    assert len(ids) <= 1024 - 256 == builder.budget
    # Used, not wasted, but for the memory block's 200 tokens, kept free for it.
    assert builder.budget - 200 - 40 < len(ids) <= builder.budget - 200
    last = shaped.messages[-1]["content"]
    assert last.startswith(CUT_MARKER) and last.endswith("конец 29")
    assert "конец 28" not in last
    assert len(last) > 1000


def test_history_is_cut_before_the_incoming_turn(qwen_tokenizer: Any) -> None:
    builder = _builder(qwen_tokenizer, max_seq_tokens=300, max_new=64, memory=False)
    chat = Chat()
    for index in range(20):
        chat.friend(f"вопрос {index} " + "слово " * 20).owner(f"ответ {index} " + "да " * 20)
    chat.friend("и последний вопрос?")
    shaped = builder.turns(chat.messages, now=chat.clock + timedelta(seconds=5))
    assert shaped is not None and not shaped.cut
    assert shaped.messages[-1]["content"] == "и последний вопрос?"
    assert len(builder.token_ids(shaped.messages)) <= 300 - 64
    assert shaped.messages[-2]["content"].startswith("ответ 19")


def test_a_reply_budget_that_leaves_no_room_for_the_prompt_is_refused(
    qwen_tokenizer: Any,
) -> None:
    with pytest.raises(ValueError, match="GENERATION_MAX_NEW_TOKENS"):
        _builder(qwen_tokenizer, max_seq_tokens=256, max_new=240, memory=False)
