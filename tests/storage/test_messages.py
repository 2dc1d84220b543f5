"""Corpus queries: live saves, corpus order, streaming pages and counts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from storage.corpus_reader import iter_corpus_rows
from storage.db import Database
from storage.messages import (
    corpus_counts,
    load_corpus,
    save_chats,
    save_live_message,
    save_messages,
)
from storage.models import ChatRecord, MessageRecord

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def message(chat_id: int, message_id: int, minutes: int, **fields: object) -> MessageRecord:
    values: dict[str, object] = {
        "chat_id": chat_id,
        "message_id": message_id,
        "sender_id": 1,
        "sender_name": "A",
        "is_owner": False,
        "date": T0 + timedelta(minutes=minutes),
        "text": f"m{message_id}",
        "source": "live",
    }
    return MessageRecord(**(values | fields))  # type: ignore[arg-type]


async def test_save_live_message_once(db: Database) -> None:
    chat = ChatRecord(5, "Friend", "private")
    record = message(5, 1, 0, is_owner=True, reply_to_id=None, via_bot=None)
    assert await save_live_message(db, chat, record) is True
    assert await save_live_message(db, chat, record) is False
    assert await load_corpus(db) == [record]


async def test_chat_title_is_refreshed_not_erased(db: Database) -> None:
    async with db.transaction() as conn:
        await save_chats(conn, [ChatRecord(5, "Old", "private")])
        await save_chats(conn, [ChatRecord(5, "New", "private")])
        await save_chats(conn, [ChatRecord(5, None, "private")])
    async with db.read() as conn, conn.execute("SELECT title FROM chats") as cursor:
        assert [row[0] for row in await cursor.fetchall()] == ["New"]


async def test_corpus_order_and_streaming(db: Database) -> None:
    records = [
        message(2, 10, 5),
        message(1, 3, 2),
        message(1, 1, 2),  # same minute as 3: message id breaks the tie
        message(1, 2, 1),
        message(2, 9, 7),
        message(-100, 1, 9, text="", kind="service"),
    ]
    async with db.transaction() as conn:
        await save_chats(conn, [ChatRecord(c, None, "x") for c in (1, 2, -100)])
        assert await save_messages(conn, records) == len(records)
        assert await save_messages(conn, records) == 0
    expected = sorted(records, key=lambda m: (m.chat_id, m.date, m.message_id))
    assert await load_corpus(db) == expected
    assert list(iter_corpus_rows(db.path, batch_size=2)) == expected
    assert list(iter_corpus_rows(db.path, batch_size=100)) == expected
    counts = await corpus_counts(db)
    assert (counts.chats, counts.messages, counts.owner_messages, counts.text_messages) == (
        3,
        6,
        0,
        5,
    )


async def test_empty_corpus(db: Database) -> None:
    assert await load_corpus(db) == []
    assert list(iter_corpus_rows(db.path)) == []
    counts = await corpus_counts(db)
    assert (counts.chats, counts.messages, counts.owner_messages, counts.text_messages) == (
        0,
        0,
        0,
        0,
    )
