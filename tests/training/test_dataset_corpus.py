"""Whole corpora: the Telegram export fixtures and the synthetic 1,700-conversation corpus
build deterministically (also shuffled, also streamed from SQLite), every sample ending on
an owner turn, and within the token budget of the real tokenizer."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from storage.corpus_reader import iter_corpus_rows
from storage.db import Database
from storage.export_parser import ExportParser
from storage.messages import save_chats, save_messages
from storage.models import MessageRecord
from tests.training.synthetic_corpus import chats, iter_corpus, synthetic_corpus
from training.chat_format import render
from training.config import DatasetConfig
from training.dataset import DatasetBuild, build_dataset

EXPORTS = Path(__file__).resolve().parent.parent / "fixtures" / "telegram-exports"
FIXTURE_OWNERS = {
    "langchain-personal-chat.json": 6565661032,
    "private-channel-2021.json": 10036995664,
    "public-supergroup-migrated.json": 9999999999,
    "saved-messages-2021.json": 9999999999,
}
FULL_EXPORT_OWNER = 11111111


def fixture_records() -> list[MessageRecord]:
    """Every message of every JSON export fixture, as the importer would store them."""
    records: list[MessageRecord] = []
    paths = sorted((EXPORTS / "format-eras").glob("*.json")) + sorted(
        (EXPORTS / "samples").glob("*.json")
    )
    for path in paths:
        owner = FIXTURE_OWNERS.get(path.name, FULL_EXPORT_OWNER)
        parser = ExportParser(path, owner_id=owner)
        records += [r for r in parser.records() if isinstance(r, MessageRecord)]
    return records


def _check(build: DatasetBuild) -> None:
    for sample in build.train + build.eval:
        roles = [m["role"] for m in sample]
        assert roles[0] == "system" and roles[-1] == "assistant"
        assert sample[-1].get("weight", 1) == 1  # every sample ends on a trained reply
        # Turns alternate; only an opening owner turn (context) may come without a prompt.
        turns = roles[1:]
        if turns[0] == "assistant":
            assert sample[1]["weight"] == 0
            turns = turns[1:]
        assert turns == ["user", "assistant"] * (len(turns) // 2)


@pytest.mark.parametrize("corpus", ["fixtures", "synthetic"])
def test_builds_are_deterministic_and_end_on_the_owner(corpus: str) -> None:
    messages = fixture_records() if corpus == "fixtures" else synthetic_corpus(1_700)
    # The fixtures are terse test chats: with the default lengths hardly a pair would stay.
    terse = DatasetConfig(min_reply_words=1, min_prompt_words=1)
    config = terse if corpus == "fixtures" else DatasetConfig()
    build = build_dataset(messages, config)
    assert build.train and build.eval
    _check(build)
    shuffled = list(messages)
    random.Random(3).shuffle(shuffled)
    assert build_dataset(shuffled, config).fingerprint == build.fingerprint
    assert build_dataset(messages, config).fingerprint == build.fingerprint
    if corpus == "synthetic":
        assert build.conversations > 1_000
        assert {"filler", "duplicate", "short_reply"} <= set(build.drops)
        assert build.stats["opener_context"] > 0


async def test_a_corpus_streamed_from_sqlite_builds_the_same(tmp_path: Path) -> None:
    db = await Database.open(tmp_path / "corpus.sqlite3")
    messages = list(iter_corpus(24, 6))
    async with db.transaction() as conn:
        await save_chats(conn, chats(24))
        await save_messages(conn, messages)
    # The bot keeps its connection open (WAL): the read-only reader works beside it.
    streamed = build_dataset(iter_corpus_rows(db.path, batch_size=50), DatasetConfig())
    await db.close()
    assert streamed.stats["messages_seen"] == len(messages)
    assert streamed.fingerprint == build_dataset(messages, DatasetConfig()).fingerprint


def test_the_real_tokenizer_keeps_every_sample_within_max_seq_tokens(qwen_tokenizer: Any) -> None:
    config = DatasetConfig(max_seq_tokens=160, memory=False)
    messages = list(iter_corpus(12, 8))
    build = build_dataset(messages, config, tokenizer=qwen_tokenizer)
    _check(build)
    lengths = []
    for sample in build.train + build.eval:
        text = render(qwen_tokenizer, sample, chat_template=None, add_generation_prompt=False)
        lengths.append(len(qwen_tokenizer(text, add_special_tokens=False)["input_ids"]))
    assert max(lengths) <= 160
    assert max(lengths) > 100  # packed close to the budget, not one pair a sample
    # Without a tokenizer the chars-per-token estimate is the safe side of the real count.
    estimated = build_dataset(messages, config)
    assert len(estimated.train) + len(estimated.eval) >= len(build.train) + len(build.eval)
