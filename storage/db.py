"""The one database handle: a single aiosqlite connection that is the only writer.

Every write goes through :meth:`Database.transaction` (``BEGIN IMMEDIATE`` under an
``asyncio.Lock``). Reads that must not see another task's uncommitted rows (the connection
is shared) go through :meth:`Database.read`, which takes the same lock without opening a
transaction. Both are not re-entrant: a query function either takes ``db`` and opens its
own, or takes the ``conn`` of a transaction its caller opened.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import aiosqlite

from storage.migrations import MIGRATIONS, Migration, apply_migrations
from storage.private_files import create_private_file, private_dir

logger = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 5_000
PAGE_SIZE = 16_384


class Database:
    """One SQLite file, one connection, one writer at a time."""

    def __init__(self, path: Path, conn: aiosqlite.Connection) -> None:
        self.path = path
        self._conn = conn
        self._lock = asyncio.Lock()

    @classmethod
    async def open(cls, path: Path, *, migrations: tuple[Migration, ...] = MIGRATIONS) -> Database:
        """Open (creating if needed) the database at ``path`` and bring its schema up to date.

        Args:
            path: the SQLite file; it and its parent directory are created owner-only
                (SQLite gives its -wal and -shm files the database file's mode).
            migrations: the ordered migrations to apply (tests pass a prefix or an extension).
        """
        private_dir(path.parent)
        create_private_file(path)
        # isolation_level=None: the sqlite3 module never opens transactions on its own;
        # transaction() issues BEGIN IMMEDIATE / COMMIT / ROLLBACK itself.
        conn = await aiosqlite.connect(path, isolation_level=None)
        try:
            # Only a new file takes it (before WAL): 16 KiB pages write a bulk import's
            # rows in a quarter of the pages, and the log's frames, of 4 KiB ones.
            await conn.execute(f"PRAGMA page_size={PAGE_SIZE}")
            await conn.execute("PRAGMA journal_mode=WAL")
            await conn.execute("PRAGMA foreign_keys=ON")
            await conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            conn.row_factory = aiosqlite.Row
            applied = await apply_migrations(conn, migrations)
        except BaseException:
            await conn.close()
            raise
        if applied:
            logger.info("Applied migrations %s to %s", ", ".join(applied), path)
        return cls(path, conn)

    async def close(self) -> None:
        """Close the connection (waits for a running transaction to finish)."""
        async with self._lock:
            await self._conn.close()

    @property
    def conn(self) -> aiosqlite.Connection:
        """The connection, for the query modules of this package."""
        return self._conn

    def transaction(
        self, *, check_foreign_keys: bool = True
    ) -> AbstractAsyncContextManager[aiosqlite.Connection]:
        """Serialised write transaction: COMMIT on success, ROLLBACK on any exception.

        ``check_foreign_keys=False`` is for bulk loads whose code inserts every parent row
        before its children (an export import: a sixth of its time went to the checks);
        the checks are back on when the transaction ends, however it ends.
        """
        return self._transaction(check_foreign_keys)

    def read(self) -> AbstractAsyncContextManager[aiosqlite.Connection]:
        """The connection while no transaction of another task is open (committed data only)."""
        return self._read()

    async def checkpoint(self) -> None:
        """Copy the write-ahead log into the database file and truncate it."""
        async with self._lock:
            await self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    @asynccontextmanager
    async def _transaction(self, check_foreign_keys: bool) -> AsyncIterator[aiosqlite.Connection]:
        async with self._lock:
            if not check_foreign_keys:
                # A no-op inside a transaction: it must come before BEGIN.
                await self._conn.execute("PRAGMA foreign_keys=OFF")
            try:
                await self._conn.execute("BEGIN IMMEDIATE")
                try:
                    yield self._conn
                except BaseException:
                    await self._conn.execute("ROLLBACK")
                    raise
                await self._conn.execute("COMMIT")
            finally:
                if not check_foreign_keys:
                    await self._conn.execute("PRAGMA foreign_keys=ON")

    @asynccontextmanager
    async def _read(self) -> AsyncIterator[aiosqlite.Connection]:
        async with self._lock:
            yield self._conn


def to_unix(moment: datetime) -> int:
    """Unix seconds of a timezone-aware datetime (naive ones are refused, not guessed)."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"naive datetime {moment!r}: storage takes timezone-aware UTC datetimes")
    return int(moment.timestamp())


def from_unix(seconds: int) -> datetime:
    """Timezone-aware UTC datetime of unix seconds."""
    return datetime.fromtimestamp(seconds, UTC)


def now_unix() -> int:
    """The current time in unix seconds."""
    return to_unix(datetime.now(UTC))
