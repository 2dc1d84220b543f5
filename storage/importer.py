"""Import a Telegram Desktop export into the corpus: all of it in one transaction, or nothing.

Parsing is synchronous, so it runs in a worker thread, or for a big JSON export in a child
process (see :mod:`storage.import_pipeline`), while the event loop keeps serving; the next
batch is read while the last one is written. Rows go to SQLite as the parser made them, one
``executemany`` per batch, inside the single import transaction: this process, which
writes, does no work per row in Python.
Re-importing the same export inserts nothing (``(chat_id, message_id)`` is unique).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections import Counter
from collections.abc import Callable
from datetime import UTC, tzinfo
from pathlib import Path
from typing import Any

import aiosqlite

from storage import errors, import_pipeline
from storage.db import Database, now_unix
from storage.export_archive import ExportSource, inspect_export
from storage.export_format import SKIP_REASONS, MessageRow
from storage.export_html import HtmlExportParser
from storage.export_parser import ExportParser
from storage.import_pipeline import (
    IMPORT_BATCH_SIZE,
    BatchSource,
    ChildSource,
    InProcessSource,
    RowBatch,
)
from storage.memory import index_new_messages, last_message_rowid
from storage.messages import save_chats
from storage.models import ImportProgress, ImportReport

logger = logging.getLogger(__name__)

__all__ = ["IMPORT_BATCH_SIZE", "file_sha256", "import_export", "insert_export_message"]

HASH_CHUNK_BYTES = 1 << 20

INSERT_IMPORT = """
    INSERT INTO imports (file_sha256, file_name, owner_id, started_at)
    VALUES (?, ?, ?, ?)
"""

FINISH_IMPORT = """
    UPDATE imports
    SET file_sha256 = ?, owner_id = ?, finished_at = ?, counts = ?
    WHERE import_id = ?
"""

INSERT_EXPORT_MESSAGE = """
    INSERT OR IGNORE INTO messages (
        chat_id, message_id, sender_id, sender_name, is_owner, date_utc, text, kind,
        reply_to_id, forwarded_from, via_bot, import_id, source
    )
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, {import_id:d}, 'export')
"""
"""Formatted with the import's id (an int, see :func:`insert_export_message`): the same for
every row, so that rows need no copy with one more value to bind."""


SAVEPOINT = "SAVEPOINT import_batch"
ROLLBACK_TO_SAVEPOINT = "ROLLBACK TO import_batch"
RELEASE_SAVEPOINT = "RELEASE import_batch"


def insert_export_message(import_id: int) -> str:
    """The statement that inserts one export row (a MessageRow) of import ``import_id``."""
    return INSERT_EXPORT_MESSAGE.format(import_id=int(import_id))


async def import_export(
    db: Database,
    path: Path,
    *,
    owner_id: int | None = None,
    owner_name: str | None = None,
    file_name: str | None = None,
    local_tz: tzinfo = UTC,
    progress: Callable[[ImportProgress], None] | None = None,
) -> ImportReport:
    """Import the export at ``path``: result.json, HTML pages, or a .zip of either.

    Args:
        db: the database; the whole import is one of its transactions.
        path: the export file.
        owner_id: the owner's Telegram user id. Required for single-chat exports (except
            saved messages); for an account export it must match the exported account.
        owner_name: the owner's name as an HTML export signs messages (HTML has no ids).
        file_name: the name to record and to show in errors (the uploaded file's name).
        local_tz: the zone of the ``date`` field of old exports without ``date_unixtime``.
        progress: called on the event loop after each batch and once at the end, with the
            bytes of the export's JSON read so far (of ``bytes_total``: the file's size, or
            the uncompressed size of the result.json in a .zip) and the counts so far.

    Raises:
        ExportError: the file cannot be imported; ``str()`` tells the owner why and what to
            do. The database is then exactly as before.
    """
    name = file_name or path.name
    _check_not_empty(path, name)
    source = await asyncio.to_thread(inspect_export, path, name)
    rows = _open_rows(path, source, owner_id, owner_name, name, local_tz)
    # The file is hashed while it is imported: waiting for the hash first left the parser
    # process idle for a tenth of a big import.
    hashing = asyncio.ensure_future(asyncio.to_thread(file_sha256, path))
    try:
        report = await _import_rows(db, rows, hashing, name, owner_id, progress)
    finally:
        hashing.add_done_callback(_ignore_outcome)  # when the import failed first
        await asyncio.to_thread(rows.close)
    logger.info(
        "Imported %s (import %d): %d chats, %d messages (%d new, %d owner's), skipped %s",
        name,
        report.import_id,
        report.chats,
        report.messages,
        report.new_messages,
        report.owner_messages,
        report.skipped,
    )
    return report


def _open_rows(
    path: Path,
    source: ExportSource,
    owner_id: int | None,
    owner_name: str | None,
    name: str,
    local_tz: tzinfo,
) -> BatchSource:
    """The parser for the export's format: big JSON in a child process, the rest here."""
    if source.format == "html":
        html = HtmlExportParser(
            path,
            source,
            owner_name=owner_name,
            owner_id=owner_id,
            file_name=name,
            local_tz=local_tz,
        )
        return InProcessSource(html)
    if source.uncompressed_size >= import_pipeline.PIPELINE_MIN_BYTES:
        return ChildSource(path, source, owner_id=owner_id, file_name=name, local_tz=local_tz)
    json_parser = ExportParser(
        path, owner_id=owner_id, file_name=name, local_tz=local_tz, source=source
    )
    return InProcessSource(json_parser)


async def _import_rows(
    db: Database,
    rows: BatchSource,
    hashing: asyncio.Future[str],
    name: str,
    owner_id: int | None,
    progress: Callable[[ImportProgress], None] | None,
) -> ImportReport:
    """Write every batch of ``rows`` in one transaction; the next batch is read meanwhile."""
    tally = _Tally()
    # Each batch brings its chats before their messages, and the import's row is first.
    # bulk: the bot's reads go on beside it, and its writes queue behind it (storage.db).
    async with db.transaction(check_foreign_keys=False, bulk=True) as conn:
        import_id = await _insert_import(conn, name, owner_id)
        insert = insert_export_message(import_id)
        last = await last_message_rowid(conn)
        reading = asyncio.ensure_future(asyncio.to_thread(rows.next_batch))
        try:
            while batch := await reading:
                reading = asyncio.ensure_future(asyncio.to_thread(rows.next_batch))
                await save_chats(conn, batch.chats)
                tally.add(batch)
                tally.new_messages += await _insert_rows(conn, insert, batch.rows)
                last = await index_new_messages(conn, last)  # the owner's words, for memory
                _report(progress, batch.bytes_read, rows.bytes_total, tally)
        finally:
            # A worker thread still reading ends on its own (the caller's close() ends it);
            # an error it raised after a failed write is not the one to report.
            reading.cancel()
            reading.add_done_callback(_ignore_outcome)
        assert rows.owner_id is not None  # the parser raises when it cannot tell
        if tally.owner_messages == 0 and rows.file_owner_id is None:
            # Single-chat export: a wrong --owner-id is the likely cause.
            raise errors.NoOwnerMessagesError(name, rows.owner_id, tally.messages)
        report = ImportReport(
            import_id=import_id,
            file_sha256=await hashing,
            chats=tally.chats,
            messages=tally.messages,
            owner_messages=tally.owner_messages,
            new_messages=tally.new_messages,
            already_present=tally.messages - tally.new_messages,
            skipped={reason: tally.skipped[reason] for reason in SKIP_REASONS},
        )
        await _finish_import(conn, report, rows.owner_id, rows.unreadable_messages)
    _report(progress, rows.bytes_total, rows.bytes_total, tally)
    return report


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(HASH_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


class _Tally:
    """Running counts of one import (updated on the event loop, one batch at a time)."""

    def __init__(self) -> None:
        self.chats = 0
        self.messages = 0
        self.owner_messages = 0
        self.new_messages = 0
        self.skipped: Counter[str] = Counter()

    def add(self, batch: RowBatch) -> None:
        self.chats += len(batch.chats)
        self.messages += len(batch.rows)
        self.owner_messages += batch.owner_messages
        self.skipped.update(batch.skipped)


def _check_not_empty(path: Path, name: str) -> None:
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise FileNotFoundError(f"export file {path} does not exist") from None
    if size == 0:
        raise errors.EmptyExportError(name)


async def _insert_rows(conn: aiosqlite.Connection, insert: str, rows: list[MessageRow]) -> int:
    """Insert message rows not stored yet; return how many were new.

    The count is the statements' own (``rowcount``): ``total_changes`` would add the rows the
    memory index's triggers write.
    """
    await conn.execute(SAVEPOINT)
    try:
        cursor = await conn.executemany(insert, rows)
    except UnicodeEncodeError:
        # A lone surrogate ("\ud800" in the JSON) cannot be stored as UTF-8: store "?" for
        # it. The rows before the bad one are undone first, so that all are counted once.
        await conn.execute(ROLLBACK_TO_SAVEPOINT)
        cursor = await conn.executemany(insert, [_encodable(row) for row in rows])
    await conn.execute(RELEASE_SAVEPOINT)
    return cursor.rowcount


def _encodable(row: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(
        value.encode("utf-8", "replace").decode("utf-8") if isinstance(value, str) else value
        for value in row
    )


def _ignore_outcome(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()  # marks it retrieved: no "exception was never retrieved" log


def _report(
    progress: Callable[[ImportProgress], None] | None, done: int, total: int, tally: _Tally
) -> None:
    if progress is not None:
        progress(ImportProgress(done, total, tally.messages, tally.chats))


async def _insert_import(conn: aiosqlite.Connection, name: str, owner_id: int | None) -> int:
    # owner_id and the file's hash are final only at the end (the same transaction):
    # 0 and '' stand for "not known yet" until then.
    cursor = await conn.execute(INSERT_IMPORT, ("", name, owner_id or 0, now_unix()))
    assert cursor.lastrowid is not None
    return cursor.lastrowid


async def _finish_import(
    conn: aiosqlite.Connection, report: ImportReport, owner_id: int, unreadable: int
) -> None:
    counts = {
        "chats": report.chats,
        "messages": report.messages,
        "owner_messages": report.owner_messages,
        "new_messages": report.new_messages,
        "already_present": report.already_present,
        "unreadable": unreadable,
        "skipped": report.skipped,
    }
    await conn.execute(
        FINISH_IMPORT,
        (report.file_sha256, owner_id, now_unix(), json.dumps(counts), report.import_id),
    )
