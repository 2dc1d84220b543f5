"""Memory blocks in training samples: only older words, never the eval split's, within budget."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from storage.db import Database
from storage.memory import MemoryReader
from storage.messages import save_chats, save_messages
from storage.models import ChatRecord, MessageRecord
from training.chat_format import TokenCounter
from training.config import DatasetConfig
from training.dataset import DatasetBuild, build_dataset
from training.memory import (
    MEMORY_HEADER,
    memory_reserve,
    memory_snippets,
    memory_system,
    query_stems,
    system_prompt_of,
)
from training.samples import Sample

START = datetime(2024, 6, 1, 10, 0, tzinfo=UTC)
TOPICS = ("рыбалка", "гитара", "ремонт", "велосипед", "шахматы")
DAY = re.compile(r"№(\d+)")


def _corpus(days: int = 30) -> list[MessageRecord]:
    """One conversation a day in one of three chats; the owner talks about one topic a day."""
    messages = []
    for day in range(days):
        topic = TOPICS[day % len(TOPICS)]
        chat_id = 100 + day % 3
        when = START + timedelta(days=day)
        for offset, (owner, text) in enumerate(
            [
                (False, f"Что скажешь про {topic}? №{day}"),
                (True, f"Про {topic} могу говорить часами, №{day}"),
                (False, f"А ещё про {topic}? №{day}"),
                (True, f"Ну {topic} это моё, №{day}"),
            ]
        ):
            messages.append(
                MessageRecord(
                    chat_id=chat_id,
                    message_id=day * 10 + offset,
                    sender_id=1 if owner else chat_id,
                    sender_name=None,
                    is_owner=owner,
                    date=when + timedelta(minutes=offset),
                    text=text,
                )
            )
    return messages


async def _stored(path: Path, messages: list[MessageRecord]) -> Path:
    db = await Database.open(path)
    async with db.transaction() as conn:
        chats = {m.chat_id for m in messages}
        await save_chats(conn, [ChatRecord(c, None, "personal_chat") for c in chats])
        await save_messages(conn, messages)
    await db.close()
    return path


def _build(path: Path, config: DatasetConfig, **kwargs: Any) -> DatasetBuild:
    with MemoryReader(path) as reader:
        return build_dataset(_corpus(), config, memory=reader, **kwargs)


def _day(sample: Sample) -> int:
    return int(DAY.findall(sample[-1]["content"])[-1])


def _owner_lines(samples: list[Sample]) -> set[str]:
    return {m["content"] for s in samples for m in s if m["role"] == "assistant"}


async def test_blocks_show_only_older_owner_words_and_never_the_eval_split(tmp_path: Path) -> None:
    path = await _stored(tmp_path / "db.sqlite3", _corpus())
    build = _build(path, DatasetConfig(system_prompt="SYS", eval_fraction=0.2))
    eval_lines = _owner_lines(build.eval)
    with_block = 0
    for sample in build.train + build.eval:
        shown = memory_snippets(sample[0]["content"])
        assert system_prompt_of(sample[0]["content"]) == "SYS"
        with_block += bool(shown)
        for line in shown:
            assert int(DAY.findall(line)[0]) < _day(sample), "only older conversations"
            topic = next(t for t in TOPICS if t in sample[-2]["content"])
            assert topic in line, "found by the conversation's words"
            if sample in build.train:
                assert line not in eval_lines, "no eval line in a training sample"
    assert with_block >= len(build.train) - len(TOPICS)  # all but each topic's first day
    assert build.stats["memory_samples"] == with_block


async def test_lines_of_an_earlier_frozen_eval_set_stay_out(tmp_path: Path) -> None:
    path = await _stored(tmp_path / "db.sqlite3", _corpus())
    config = DatasetConfig(system_prompt="SYS", eval_fraction=0.2)
    frozen = "Про рыбалка могу говорить часами, №5"
    build = _build(path, config, held_out=frozenset({frozen}))
    shown = {line for s in build.train for line in memory_snippets(s[0]["content"])}
    assert frozen not in shown
    assert frozen in {
        line for s in _build(path, config).train for line in s[0]["content"].split("\n- ")
    }


async def test_blocks_keep_to_k_and_the_budget_with_the_real_tokenizer(
    tmp_path: Path, qwen_tokenizer: Any
) -> None:
    path = await _stored(tmp_path / "db.sqlite3", _corpus())
    config = DatasetConfig(system_prompt="SYS", memory_k=2, memory_budget_tokens=40)
    with MemoryReader(path) as reader:
        build = build_dataset(_corpus(), config, qwen_tokenizer, memory=reader)
    counter = TokenCounter(config, qwen_tokenizer)
    samples = build.train + build.eval
    assert any(len(memory_snippets(s[0]["content"])) == 2 for s in samples)
    for sample in samples:
        assert len(memory_snippets(sample[0]["content"])) <= 2
        block = counter.message("system", sample[0]["content"]) - counter.system
        assert block <= 40
        assert counter.sample(sample) <= config.max_seq_tokens


async def test_memory_off_leaves_the_system_prompt_alone(tmp_path: Path) -> None:
    path = await _stored(tmp_path / "db.sqlite3", _corpus())
    build = _build(path, DatasetConfig(system_prompt="SYS", memory=False))
    assert {s[0]["content"] for s in build.train + build.eval} == {"SYS"}


def test_the_block_shapes_found_messages_like_turns() -> None:
    config = DatasetConfig(system_prompt="SYS")
    counter = TokenCounter(config)
    found = [
        "позвони мне +7 916 123-45-67<|im_end|>\nвечером",
        "",
        "позвони мне +7 916 123-45-67<|im_end|>\nвечером",  # the same line once
        "(File not included. Change data exporting settings to download.)",
    ]
    system = memory_system(config, counter, found)
    assert system == f"SYS\n\n{MEMORY_HEADER}\n- позвони мне <PHONE> / вечером"
    assert memory_system(config, counter, []) == "SYS"


@pytest.mark.parametrize(
    ("texts", "expected"),
    [
        (["Где встречаемся?"], ("встре",)),
        (["Пойдёшь в кино?"], ("пойдё", "пойде", "кин")),
        (["старое", "новое: пицца"], ("ново", "пицц", "старо")),
        (['"AND" OR NEAR(*)', "?!"], ("nea",)),
        (["ну да ок", "🙂"], ()),
    ],
)
def test_query_stems(texts: list[str], expected: tuple[str, ...]) -> None:
    assert query_stems(texts) == expected


def test_the_reserve_is_the_budget_but_at_most_a_quarter_of_the_sample() -> None:
    assert memory_reserve(DatasetConfig()) == 200
    assert memory_reserve(DatasetConfig(max_seq_tokens=256)) == 64
    assert memory_reserve(DatasetConfig(memory=False)) == 0
