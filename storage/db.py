"""The one database handle: one connection that writes, one that reads, both in WAL mode.

Every write goes through :meth:`Database.transaction` (``BEGIN IMMEDIATE`` under an
``asyncio.Lock``). Reads go through :meth:`Database.read`: a connection of their own that
only reads, and sees committed data only, so they never wait for a write, not even for an
import's transaction of a million rows (WAL lets readers go on beside the writer).
Writes that cannot wait that long (what the bot stores while it answers) go through
:meth:`Database.write_soon`: in order, and queued behind a bulk load instead of waiting for
it. Transactions are not re-entrant: a query function either takes ``db`` and opens its own,
or takes the ``conn`` of a transaction its caller opened.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import aiosqlite

from storage.memory import MemoryReader
from storage.migrations import MIGRATIONS, Migration, apply_migrations
from storage.private_files import create_private_file, private_dir

logger = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 5_000
PAGE_SIZE = 16_384


Write = Callable[[], Awaitable[object]]
"""A write that opens its own transaction (``functools.partial(save_x, db, ...)``)."""


class Database:
    """One SQLite file: one connection that writes (one writer at a time), one that reads."""

    def __init__(
        self, path: Path, conn: aiosqlite.Connection, reader: aiosqlite.Connection
    ) -> None:
        self.path = path
        self._conn = conn
        self._reader = reader
        self._lock = asyncio.Lock()
        self._memory: MemoryReader | None = None
        self._bulk = False
        self._queued: deque[tuple[Write, asyncio.Future[None]]] = deque()
        self._draining: asyncio.Task[None] | None = None
        self._reports: set[asyncio.Future[object]] = set()
        self.on_queued_error: Callable[[Exception], Awaitable[object]] | None = None
        """Told of a write of ``write_soon`` that failed after its caller went on (the bot's
        error handler); without it the failure is logged."""

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
            reader = await _open_reader(path)
        except BaseException:
            await conn.close()
            raise
        if applied:
            logger.info("Applied migrations %s to %s", ", ".join(applied), path)
        return cls(path, conn, reader)

    async def close(self) -> None:
        """Run the queued writes, then close (waits for a running transaction to finish)."""
        while self._draining is not None and not self._draining.done():
            await asyncio.gather(self._draining, return_exceptions=True)
        await self._reader.close()
        async with self._lock:
            await self._conn.close()
            if self._memory is not None:
                self._memory.close()

    def memory(self) -> MemoryReader:
        """The read-only connection that searches the owner's words (``storage.memory``),
        opened on first use."""
        if self._memory is None:
            self._memory = MemoryReader(self.path, snapshot=False)
        return self._memory

    @property
    def conn(self) -> aiosqlite.Connection:
        """The connection, for the query modules of this package."""
        return self._conn

    @property
    def bulk_loading(self) -> bool:
        """A bulk load (an import) holds the writer, for seconds or minutes."""
        return self._bulk

    def transaction(
        self, *, check_foreign_keys: bool = True, bulk: bool = False
    ) -> AbstractAsyncContextManager[aiosqlite.Connection]:
        """Serialised write transaction: COMMIT on success, ROLLBACK on any exception.

        ``check_foreign_keys=False`` is for bulk loads whose code inserts every parent row
        before its children (an export import: a sixth of its time went to the checks);
        the checks are back on when the transaction ends, however it ends. ``bulk``: a long
        transaction (an import); ``write_soon`` queues behind it instead of waiting.
        """
        return self._transaction(check_foreign_keys, bulk)

    def read(self) -> AbstractAsyncContextManager[aiosqlite.Connection]:
        """The reading connection: committed data only, never waiting for a write."""
        return self._read()

    async def write_soon(self, write: Write) -> None:
        """Run ``write`` after the writes queued before it; return once it is committed, or
        at once while a bulk load holds the writer (it is queued behind it, and a failure
        goes to ``on_queued_error``)."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queued.append((write, done))
        if self._draining is None or self._draining.done():
            self._draining = asyncio.get_running_loop().create_task(self._drain())
        if self._bulk:
            done.add_done_callback(self._report_queued)
            return
        try:
            await asyncio.shield(done)  # a caller that goes away does not take its write along
        except asyncio.CancelledError:
            done.add_done_callback(self._report_queued)
            raise

    async def checkpoint(self) -> None:
        """Copy the write-ahead log into the database file and truncate it."""
        async with self._lock:
            await self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    async def _drain(self) -> None:
        """Run the queued writes one by one, in the order they came."""
        while self._queued:
            write, done = self._queued[0]
            try:
                await write()
            except Exception as exc:
                if not done.done():
                    done.set_exception(exc)
            else:
                if not done.done():
                    done.set_result(None)
            finally:
                self._queued.popleft()

    def _report_queued(self, done: asyncio.Future[None]) -> None:
        if done.cancelled() or done.exception() is None:
            return
        error = done.exception()
        assert isinstance(error, Exception)
        if self.on_queued_error is not None:
            reporting = asyncio.ensure_future(self.on_queued_error(error))
            self._reports.add(reporting)
            reporting.add_done_callback(self._reports.discard)
        else:
            logger.error("a queued write failed", exc_info=error)

    @asynccontextmanager
    async def _transaction(
        self, check_foreign_keys: bool, bulk: bool
    ) -> AsyncIterator[aiosqlite.Connection]:
        async with self._lock:
            if not check_foreign_keys:
                # A no-op inside a transaction: it must come before BEGIN.
                await self._conn.execute("PRAGMA foreign_keys=OFF")
            self._bulk = bulk
            try:
                await self._conn.execute("BEGIN IMMEDIATE")
                try:
                    yield self._conn
                except BaseException:
                    await self._conn.execute("ROLLBACK")
                    raise
                await self._conn.execute("COMMIT")
            finally:
                self._bulk = False
                if not check_foreign_keys:
                    await self._conn.execute("PRAGMA foreign_keys=ON")

    @asynccontextmanager
    async def _read(self) -> AsyncIterator[aiosqlite.Connection]:
        yield self._reader


async def _open_reader(path: Path) -> aiosqlite.Connection:
    """The connection for reads: it may not write, and never waits for the writer (WAL)."""
    reader = await aiosqlite.connect(path, isolation_level=None)
    try:
        await reader.execute("PRAGMA query_only=ON")
        await reader.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        reader.row_factory = aiosqlite.Row
    except BaseException:
        await reader.close()
        raise
    return reader


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
