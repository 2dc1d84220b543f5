"""A synchronous, streaming read of the corpus for the dataset builder's worker thread.

The builder runs off the event loop (``asyncio.to_thread``) and must not hold a million
records at once, nor the bot's one connection. This opens a separate read-only stdlib
``sqlite3`` connection (``mode=ro``); with WAL the bot keeps writing meanwhile, and the
reader sees the snapshot of its one read transaction.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import cast

from storage.db import from_unix
from storage.messages import MESSAGE_COLUMNS
from storage.models import MessageKind, MessageRecord, MessageSource

READ_BATCH_SIZE = 10_000

SELECT_CORPUS_ORDERED = f"""
    SELECT {MESSAGE_COLUMNS}
    FROM messages
    ORDER BY chat_id, date_utc, message_id
"""


def iter_corpus_rows(db_path: Path, batch_size: int = READ_BATCH_SIZE) -> Iterator[MessageRecord]:
    """Every stored message ordered by chat, date and message id, ``batch_size`` rows a fetch.

    One statement in one read transaction: a consistent snapshot even while the bot writes.
    """
    uri = f"{Path(db_path).resolve().as_uri()}?mode=ro"
    conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
    try:
        cursor = conn.execute(SELECT_CORPUS_ORDERED)
        while rows := cursor.fetchmany(batch_size):
            for row in rows:
                yield _record(row)
    finally:
        conn.close()


def _record(row: tuple[object, ...]) -> MessageRecord:
    (chat_id, message_id, sender_id, sender_name, is_owner, date_utc, text, kind, reply_to_id,
     forwarded_from, via_bot, source) = row  # fmt: skip
    return MessageRecord(
        chat_id=cast(int, chat_id),
        message_id=cast(int, message_id),
        sender_id=cast("int | None", sender_id),
        sender_name=cast("str | None", sender_name),
        is_owner=bool(is_owner),
        date=from_unix(cast(int, date_utc)),
        text=cast(str, text),
        kind=cast(MessageKind, kind),
        reply_to_id=cast("int | None", reply_to_id),
        forwarded_from=cast("str | None", forwarded_from),
        via_bot=cast("str | None", via_bot),
        source=cast(MessageSource, source),
    )
