"""Import a Telegram Desktop export into the corpus: all of it in one transaction, or nothing.

Parsing is synchronous (ijson), so it runs in a worker thread one batch at a time while the
event loop keeps serving; rows go to SQLite in batches inside the single import transaction.
Re-importing the same export inserts nothing (``(chat_id, message_id)`` is unique).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, tzinfo
from itertools import islice
from pathlib import Path

import aiosqlite

from storage import errors
from storage.db import Database, now_unix
from storage.export_format import SKIP_REASONS, training_skip_reason
from storage.export_parser import ExportParser
from storage.messages import save_chats, save_messages
from storage.models import ChatRecord, ImportReport, MessageRecord

logger = logging.getLogger(__name__)

IMPORT_BATCH_SIZE = 5_000
HASH_CHUNK_BYTES = 1 << 20

INSERT_IMPORT = """
    INSERT INTO imports (file_sha256, file_name, owner_id, started_at)
    VALUES (?, ?, ?, ?)
"""

FINISH_IMPORT = """
    UPDATE imports
    SET owner_id = ?, finished_at = ?, counts = ?
    WHERE import_id = ?
"""

Record = ChatRecord | MessageRecord


async def import_export(
    db: Database,
    path: Path,
    *,
    owner_id: int | None = None,
    file_name: str | None = None,
    local_tz: tzinfo = UTC,
) -> ImportReport:
    """Import the export at ``path`` (``result.json`` or a ``.zip`` holding it).

    Args:
        db: the database; the whole import is one of its transactions.
        path: the export file.
        owner_id: the owner's Telegram user id. Required for single-chat exports (except
            saved messages); for an account export it must match the exported account.
        file_name: the name to record and to show in errors (the uploaded file's name).
        local_tz: the zone of the ``date`` field of old exports without ``date_unixtime``.

    Raises:
        ExportError: the file cannot be imported; ``str()`` tells the owner why and what to
            do. The database is then exactly as before.
    """
    name = file_name or path.name
    _check_not_empty(path, name)
    sha256 = await asyncio.to_thread(file_sha256, path)
    parser = ExportParser(path, owner_id=owner_id, file_name=name, local_tz=local_tz)
    tally = _Tally()
    records = parser.records()
    try:
        async with db.transaction() as conn:
            import_id = await _insert_import(conn, sha256, name, owner_id)
            while batch := await asyncio.to_thread(_next_batch, records):
                await _save_batch(conn, batch, import_id, tally)
            assert parser.owner_id is not None  # the parser raises when it cannot tell
            if tally.owner_messages == 0 and parser.file_owner_id is None:
                # Single-chat export: a wrong --owner-id is the likely cause.
                raise errors.NoOwnerMessagesError(name, parser.owner_id, tally.messages)
            report = ImportReport(
                import_id=import_id,
                file_sha256=sha256,
                chats=tally.chats,
                messages=tally.messages,
                owner_messages=tally.owner_messages,
                new_messages=tally.new_messages,
                already_present=tally.messages - tally.new_messages,
                skipped={reason: tally.skipped[reason] for reason in SKIP_REASONS},
            )
            await _finish_import(conn, report, parser.owner_id, parser.unreadable_messages)
    finally:
        # A cancelled import can leave a worker thread inside the parser; it ends on its own.
        with contextlib.suppress(ValueError):
            records.close()
    logger.info(
        "Imported %s (import %d): %d chats, %d messages (%d new, %d owner's), skipped %s",
        name,
        import_id,
        report.chats,
        report.messages,
        report.new_messages,
        report.owner_messages,
        report.skipped,
    )
    return report


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(HASH_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


class _Tally:
    """Running counts of one import."""

    def __init__(self) -> None:
        self.chats = 0
        self.messages = 0
        self.owner_messages = 0
        self.new_messages = 0
        self.skipped: Counter[str] = Counter()


def _check_not_empty(path: Path, name: str) -> None:
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise FileNotFoundError(f"export file {path} does not exist") from None
    if size == 0:
        raise errors.EmptyExportError(name)


def _next_batch(records: Iterator[Record]) -> list[Record]:
    """The next records of the parser (runs in a worker thread)."""
    return list(islice(records, IMPORT_BATCH_SIZE))


async def _save_batch(
    conn: aiosqlite.Connection, batch: list[Record], import_id: int, tally: _Tally
) -> None:
    chats = [record for record in batch if isinstance(record, ChatRecord)]
    messages = [record for record in batch if isinstance(record, MessageRecord)]
    await save_chats(conn, chats)
    tally.new_messages += await save_messages(conn, messages, import_id=import_id)
    tally.chats += len(chats)
    tally.messages += len(messages)
    for message in messages:
        tally.owner_messages += message.is_owner
        reason = training_skip_reason(message)
        if reason is not None:
            tally.skipped[reason] += 1


async def _insert_import(
    conn: aiosqlite.Connection, sha256: str, name: str, owner_id: int | None
) -> int:
    # owner_id is final only after parsing; 0 stands for "not known yet" until then.
    cursor = await conn.execute(INSERT_IMPORT, (sha256, name, owner_id or 0, now_unix()))
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
    await conn.execute(FINISH_IMPORT, (owner_id, now_unix(), json.dumps(counts), report.import_id))
