"""The owner's corpus: chats and messages, from exports and from live collection.

Rows are keyed by ``(chat_id, message_id)`` in Bot API id convention, so a message that
arrives live and later again in an export is stored once (``INSERT OR IGNORE``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, cast

import aiosqlite

from storage.db import Database, from_unix, now_unix, to_unix
from storage.memory import index_new_messages, last_message_rowid
from storage.models import ChatRecord, CorpusCounts, MessageKind, MessageRecord, MessageSource

logger = logging.getLogger(__name__)

BATCH_SIZE = 5_000

UPSERT_CHAT = """
    INSERT INTO chats (chat_id, title, chat_type, first_seen)
    VALUES (?, ?, ?, ?)
    ON CONFLICT (chat_id) DO UPDATE SET
        title = COALESCE(excluded.title, chats.title),
        chat_type = excluded.chat_type
"""

INSERT_MESSAGE = """
    INSERT OR IGNORE INTO messages (
        chat_id, message_id, sender_id, sender_name, is_owner, date_utc, text, kind,
        reply_to_id, forwarded_from, via_bot, source, import_id
    )
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""

MESSAGE_COLUMNS = """
    chat_id, message_id, sender_id, sender_name, is_owner, date_utc, text, kind,
    reply_to_id, forwarded_from, via_bot, source
"""

SELECT_CORPUS = f"""
    SELECT {MESSAGE_COLUMNS}
    FROM messages
    ORDER BY chat_id, date_utc, message_id
"""

SELECT_RECENT_CHAT_MESSAGES = f"""
    SELECT {MESSAGE_COLUMNS}
    FROM (
        SELECT {MESSAGE_COLUMNS}
        FROM messages
        WHERE chat_id = ? AND date_utc >= ? AND text != ''
        ORDER BY date_utc DESC, message_id DESC
        LIMIT ?
    )
    ORDER BY date_utc, message_id
"""

SELECT_CHAT_TITLES = """
    SELECT chat_id, title FROM chats WHERE title IS NOT NULL
"""

SELECT_COUNTS = """
    SELECT
        (SELECT COUNT(*) FROM chats) AS chats,
        COUNT(*) AS messages,
        COALESCE(SUM(is_owner), 0) AS owner_messages,
        COALESCE(SUM(kind = 'text' AND text != ''), 0) AS text_messages
    FROM messages
"""


async def save_chats(conn: aiosqlite.Connection, chats: Iterable[ChatRecord]) -> None:
    """Insert chats, or refresh the title and type of known ones (inside a transaction)."""
    first_seen = now_unix()
    await conn.executemany(
        UPSERT_CHAT,
        [(chat.chat_id, chat.title, chat.chat_type, first_seen) for chat in chats],
    )


async def save_messages(
    conn: aiosqlite.Connection,
    messages: Iterable[MessageRecord],
    *,
    import_id: int | None = None,
) -> int:
    """Insert messages not stored yet, in batches; return how many were new.

    Takes the connection of an open transaction (``async with db.transaction() as conn``);
    the chats of the messages must already be saved. The owner's new messages join the
    memory index (``storage.memory``) in the same transaction.
    """
    inserted = 0
    last = await last_message_rowid(conn)
    batch: list[tuple[Any, ...]] = []
    for message in messages:
        batch.append(_message_row(message, import_id))
        if len(batch) >= BATCH_SIZE:
            inserted += await _insert_batch(conn, batch)
            last = await index_new_messages(conn, last)
            batch = []
    if batch:
        inserted += await _insert_batch(conn, batch)
        await index_new_messages(conn, last)
    return inserted


async def save_live_message(db: Database, chat: ChatRecord, message: MessageRecord) -> bool:
    """Store one message collected live (and its chat); False if it was already stored."""
    async with db.transaction() as conn:
        await save_chats(conn, [chat])
        return await save_messages(conn, [message]) == 1


async def load_corpus(db: Database) -> list[MessageRecord]:
    """Every stored message, ordered by chat, date and message id."""
    async with db.read() as conn, conn.execute(SELECT_CORPUS) as cursor:
        return [corpus_record(row) for row in await cursor.fetchall()]


async def corpus_counts(db: Database) -> CorpusCounts:
    """Totals for /stats: chats, messages, the owner's messages, non-empty text messages."""
    async with db.read() as conn, conn.execute(SELECT_COUNTS) as cursor:
        row = await cursor.fetchone()
    assert row is not None  # an aggregate always returns one row
    return CorpusCounts(
        chats=int(row["chats"]),
        messages=int(row["messages"]),
        owner_messages=int(row["owner_messages"]),
        text_messages=int(row["text_messages"]),
    )


async def _insert_batch(conn: aiosqlite.Connection, rows: Sequence[tuple[Any, ...]]) -> int:
    # rowcount, not total_changes: that counts the memory index's trigger writes too.
    cursor = await conn.executemany(INSERT_MESSAGE, rows)
    return cursor.rowcount


def _message_row(message: MessageRecord, import_id: int | None) -> tuple[Any, ...]:
    return (
        message.chat_id,
        message.message_id,
        message.sender_id,
        message.sender_name,
        int(message.is_owner),
        to_unix(message.date),
        message.text,
        message.kind,
        message.reply_to_id,
        message.forwarded_from,
        message.via_bot,
        message.source,
        import_id if message.source == "export" else None,
    )


def corpus_record(row: Sequence[Any]) -> MessageRecord:
    """A MessageRecord from a row selected with MESSAGE_COLUMNS (any DB-API row type)."""
    (chat_id, message_id, sender_id, sender_name, is_owner, date_utc, text, kind, reply_to_id,
     forwarded_from, via_bot, source) = row  # fmt: skip
    return MessageRecord(
        chat_id=chat_id,
        message_id=message_id,
        sender_id=sender_id,
        sender_name=sender_name,
        is_owner=bool(is_owner),
        date=from_unix(date_utc),
        text=text,
        kind=cast(MessageKind, kind),
        reply_to_id=reply_to_id,
        forwarded_from=forwarded_from,
        via_bot=via_bot,
        source=cast(MessageSource, source),
    )


async def recent_chat_messages(
    db: Database, chat_id: int, since: datetime, limit: int
) -> list[MessageRecord]:
    """The chat's last ``limit`` stored messages with text at or after ``since``, oldest first
    (a reply's history: Business chats, collected groups)."""
    params = (chat_id, to_unix(since), limit)
    async with (
        db.read() as conn,
        conn.execute(SELECT_RECENT_CHAT_MESSAGES, params) as cursor,
    ):
        return [corpus_record(row) for row in await cursor.fetchall()]


async def chat_titles(db: Database) -> dict[int, str]:
    """Every chat's title, for reports (chats without a title are left out)."""
    async with db.read() as conn, conn.execute(SELECT_CHAT_TITLES) as cursor:
        return {int(row[0]): str(row[1]) for row in await cursor.fetchall()}
