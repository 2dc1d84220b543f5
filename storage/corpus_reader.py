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

from storage.messages import SELECT_CORPUS, corpus_record
from storage.models import MessageRecord

READ_BATCH_SIZE = 10_000


def iter_corpus_rows(db_path: Path, batch_size: int = READ_BATCH_SIZE) -> Iterator[MessageRecord]:
    """Every stored message ordered by chat, date and message id, ``batch_size`` rows a fetch.

    One statement in one read transaction: a consistent snapshot even while the bot writes.
    """
    uri = f"{Path(db_path).resolve().as_uri()}?mode=ro"
    conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
    try:
        cursor = conn.execute(SELECT_CORPUS)
        while rows := cursor.fetchmany(batch_size):
            for row in rows:
                yield corpus_record(row)
    finally:
        conn.close()
