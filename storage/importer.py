"""Import a Telegram Desktop export into the corpus: all of it in one transaction, or nothing.

Parsing is synchronous, so it runs in a worker thread one batch at a time while the event
loop keeps serving; rows go to SQLite as tuples, one ``executemany`` per batch, inside the
single import transaction.
Re-importing the same export inserts nothing (``(chat_id, message_id)`` is unique).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
from collections import Counter
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from datetime import UTC, tzinfo
from pathlib import Path
from typing import Any, Protocol

import aiosqlite

from storage import errors
from storage.db import Database, now_unix
from storage.export_archive import inspect_export
from storage.export_format import SKIP_REASONS, skip_reason
from storage.export_html import HtmlExportParser
from storage.export_parser import ExportParser, Item
from storage.messages import save_chats
from storage.models import ChatRecord, ImportProgress, ImportReport

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

INSERT_EXPORT_MESSAGE = """
    INSERT OR IGNORE INTO messages (
        chat_id, message_id, sender_id, sender_name, is_owner, date_utc, text, kind,
        reply_to_id, forwarded_from, via_bot, import_id, source
    )
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'export')
"""


class Parser(Protocol):
    """What the importer reads from either export format."""

    owner_id: int | None
    file_owner_id: int | None
    unreadable_messages: int
    bytes_read: int

    @property
    def bytes_total(self) -> int: ...

    def items(self) -> Generator[Item, None, None]: ...


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
    sha256 = await asyncio.to_thread(file_sha256, path)
    source = await asyncio.to_thread(inspect_export, path, name)
    parser: Parser
    if source.format == "html":
        parser = HtmlExportParser(
            path,
            source,
            owner_name=owner_name,
            owner_id=owner_id,
            file_name=name,
            local_tz=local_tz,
        )
    else:
        parser = ExportParser(
            path, owner_id=owner_id, file_name=name, local_tz=local_tz, source=source
        )
    tally = _Tally()
    items = parser.items()
    try:
        async with db.transaction() as conn:
            import_id = await _insert_import(conn, sha256, name, owner_id)
            while batch := await asyncio.to_thread(
                _next_batch, parser, items, (import_id,), tally
            ):
                await save_chats(conn, batch.chats)
                tally.new_messages += await _insert_rows(conn, batch.rows)
                _report(progress, batch.bytes_read, parser.bytes_total, tally)
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
            items.close()
    _report(progress, parser.bytes_total, parser.bytes_total, tally)
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
    """Running counts of one import (updated by the worker thread between batches)."""

    def __init__(self) -> None:
        self.chats = 0
        self.messages = 0
        self.owner_messages = 0
        self.new_messages = 0
        self.skipped: Counter[str] = Counter()


@dataclass(frozen=True)
class _Batch:
    """The next rows to write: new chats first, then message rows ending in the import id."""

    chats: list[ChatRecord]
    rows: list[tuple[Any, ...]]
    bytes_read: int


def _check_not_empty(path: Path, name: str) -> None:
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise FileNotFoundError(f"export file {path} does not exist") from None
    if size == 0:
        raise errors.EmptyExportError(name)


def _next_batch(
    parser: Parser, items: Iterator[Item], suffix: tuple[int], tally: _Tally
) -> _Batch | None:
    """Parse up to IMPORT_BATCH_SIZE messages and count them (runs in a worker thread)."""
    chats: list[ChatRecord] = []
    rows: list[tuple[Any, ...]] = []
    append = rows.append
    owner = 0
    skipped = tally.skipped
    for item in items:
        if isinstance(item, ChatRecord):
            chats.append(item)
            continue
        append(item + suffix)
        _, _, _, _, is_owner, _, text, kind, _, forwarded_from, via_bot = item
        owner += is_owner
        reason = skip_reason(kind, text, forwarded_from, via_bot)
        if reason is not None:
            skipped[reason] += 1
        if len(rows) >= IMPORT_BATCH_SIZE:
            break
    if not chats and not rows:
        return None
    tally.chats += len(chats)
    tally.messages += len(rows)
    tally.owner_messages += owner
    return _Batch(chats, rows, parser.bytes_read)


async def _insert_rows(conn: aiosqlite.Connection, rows: list[tuple[Any, ...]]) -> int:
    """Insert message rows not stored yet; return how many were new."""
    before = conn.total_changes
    try:
        await conn.executemany(INSERT_EXPORT_MESSAGE, rows)
    except UnicodeEncodeError:
        # A lone surrogate ("\ud800" in the JSON) cannot be stored as UTF-8: store "?" for
        # it. Rows before the bad one are in already; INSERT OR IGNORE skips them.
        await conn.executemany(INSERT_EXPORT_MESSAGE, [_encodable(row) for row in rows])
    return conn.total_changes - before


def _encodable(row: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(
        value.encode("utf-8", "replace").decode("utf-8") if isinstance(value, str) else value
        for value in row
    )


def _report(
    progress: Callable[[ImportProgress], None] | None, done: int, total: int, tally: _Tally
) -> None:
    if progress is not None:
        progress(ImportProgress(done, total, tally.messages, tally.chats))


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
