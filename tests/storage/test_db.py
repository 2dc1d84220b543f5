"""The single-writer handle: transactions commit, roll back, and never interleave."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from storage.db import PAGE_SIZE, Database, from_unix, to_unix

INSERT_CHAT = "INSERT INTO chats (chat_id, title, chat_type, first_seen) VALUES (?, 'c', 'x', 0)"


async def chat_ids(db: Database) -> list[int]:
    async with db.read() as conn, conn.execute("SELECT chat_id FROM chats ORDER BY 1") as cur:
        return [row[0] for row in await cur.fetchall()]


async def test_transaction_commits(db: Database) -> None:
    async with db.transaction() as conn:
        await conn.execute(INSERT_CHAT, (1,))
    assert await chat_ids(db) == [1]


async def test_transaction_rolls_back_and_reraises(db: Database) -> None:
    with pytest.raises(RuntimeError, match="boom"):
        async with db.transaction() as conn:
            await conn.execute(INSERT_CHAT, (1,))
            raise RuntimeError("boom")
    assert await chat_ids(db) == []
    async with db.transaction() as conn:  # the connection is usable again
        await conn.execute(INSERT_CHAT, (2,))
    assert await chat_ids(db) == [2]


async def test_transactions_are_serialised(db: Database) -> None:
    order: list[str] = []

    async def writer(name: str, chat_id: int) -> None:
        async with db.transaction() as conn:
            order.append(f"{name} begin")
            await conn.execute(INSERT_CHAT, (chat_id,))
            await asyncio.sleep(0.01)
            order.append(f"{name} end")

    await asyncio.gather(writer("a", 1), writer("b", 2))
    assert order == ["a begin", "a end", "b begin", "b end"]
    assert await chat_ids(db) == [1, 2]


async def test_reads_never_wait_for_a_write_and_see_committed_rows_only(db: Database) -> None:
    inside = asyncio.Event()
    release = asyncio.Event()

    async def slow_writer() -> None:
        async with db.transaction() as conn:
            await conn.execute(INSERT_CHAT, (1,))
            inside.set()
            await release.wait()
            raise RuntimeError("abandon")

    task = asyncio.create_task(slow_writer())
    await inside.wait()
    try:
        # Answered while the writer holds its transaction, without the row it has not committed.
        assert await asyncio.wait_for(chat_ids(db), timeout=5) == []
    finally:
        release.set()
        with pytest.raises(RuntimeError):
            await task
    assert await chat_ids(db) == []
    async with db.transaction() as conn:
        await conn.execute(INSERT_CHAT, (2,))
    assert await chat_ids(db) == [2], "a commit is seen by the next read"


async def test_the_reading_connection_cannot_write(db: Database) -> None:
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        async with db.read() as conn:
            await conn.execute(INSERT_CHAT, (1,))


async def _insert_chat(db: Database, chat_id: int, done: list[int]) -> None:
    async with db.transaction() as conn:
        await conn.execute(INSERT_CHAT, (chat_id,))
    done.append(chat_id)


async def test_write_soon_commits_before_returning_when_nothing_holds_the_writer(
    db: Database,
) -> None:
    done: list[int] = []
    await db.write_soon(lambda: _insert_chat(db, 1, done))
    assert done == [1] and await chat_ids(db) == [1]


async def test_writes_queue_behind_a_bulk_load_in_order_and_survive_its_rollback(
    db: Database,
) -> None:
    inside = asyncio.Event()
    release = asyncio.Event()
    failures: list[Exception] = []

    async def told(error: Exception) -> None:
        failures.append(error)

    db.on_queued_error = told

    async def bulk_load() -> None:
        async with db.transaction(check_foreign_keys=False, bulk=True) as conn:
            await conn.execute(INSERT_CHAT, (100,))
            inside.set()
            await release.wait()
            raise RuntimeError("a bad export")

    loading = asyncio.create_task(bulk_load())
    await inside.wait()
    done: list[int] = []

    async def failing() -> None:
        async with db.transaction() as conn:
            await conn.execute(INSERT_CHAT, (1,))  # a duplicate: fails, once it runs

    try:
        assert db.bulk_loading
        for chat_id in (1, 2, 3):
            # Each returns at once: it is queued, not waiting for the load.
            await asyncio.wait_for(db.write_soon(lambda c=chat_id: _insert_chat(db, c, done)), 1)
        await asyncio.wait_for(db.write_soon(failing), timeout=1)
        assert done == [] and await chat_ids(db) == []
    finally:
        release.set()
        with pytest.raises(RuntimeError):
            await loading
    await db.write_soon(lambda: _insert_chat(db, 4, done))  # behind the queued ones
    assert done == [1, 2, 3, 4]
    assert await chat_ids(db) == [1, 2, 3, 4], "the load rolled back, the queued writes did not"
    await asyncio.sleep(0)
    assert len(failures) == 1 and isinstance(failures[0], sqlite3.IntegrityError)


async def test_foreign_keys_are_enforced(db: Database) -> None:
    with pytest.raises(Exception, match="FOREIGN KEY"):
        async with db.transaction() as conn:
            await conn.execute(
                "INSERT INTO messages (chat_id, message_id, is_owner, date_utc, source) "
                "VALUES (999, 1, 0, 0, 'live')"
            )


ORPHAN_MESSAGE = (
    "INSERT INTO messages (chat_id, message_id, is_owner, date_utc, source) "
    "VALUES (999, 1, 0, 0, 'live')"
)


async def foreign_keys_on(db: Database) -> bool:
    """The writing connection's setting (the reading one never writes)."""
    async with db.transaction() as conn, conn.execute("PRAGMA foreign_keys") as cursor:
        row = await cursor.fetchone()
    assert row is not None
    return bool(row[0])


async def test_a_bulk_transaction_skips_the_checks_and_turns_them_back_on(db: Database) -> None:
    async with db.transaction(check_foreign_keys=False) as conn:
        await conn.execute(ORPHAN_MESSAGE)  # the caller vouches for its order of inserts
    assert await foreign_keys_on(db)
    with pytest.raises(Exception, match="FOREIGN KEY"):
        async with db.transaction() as conn:
            await conn.execute(ORPHAN_MESSAGE.replace("1, 0, 0", "2, 0, 0"))


async def test_the_checks_come_back_after_a_failed_or_cancelled_bulk_transaction(
    db: Database,
) -> None:
    with pytest.raises(RuntimeError, match="boom"):
        async with db.transaction(check_foreign_keys=False) as conn:
            await conn.execute(INSERT_CHAT, (1,))
            raise RuntimeError("boom")
    assert await chat_ids(db) == []
    assert await foreign_keys_on(db)

    inside = asyncio.Event()

    async def bulk() -> None:
        async with db.transaction(check_foreign_keys=False) as conn:
            await conn.execute(INSERT_CHAT, (2,))
            inside.set()
            await asyncio.sleep(30)

    task = asyncio.create_task(bulk())
    await inside.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await chat_ids(db) == []
    assert await foreign_keys_on(db)


async def test_a_new_database_has_16_kib_pages_and_an_old_one_keeps_its_own(
    tmp_path: Path,
) -> None:
    new = await Database.open(tmp_path / "new.sqlite")
    try:
        async with new.read() as conn, conn.execute("PRAGMA page_size") as cursor:
            assert (await cursor.fetchone())[0] == PAGE_SIZE == 16_384  # type: ignore[index]
    finally:
        await new.close()
    old_path = tmp_path / "old.sqlite"
    with sqlite3.connect(old_path) as old:
        old.execute("PRAGMA page_size=4096")
        old.execute("PRAGMA journal_mode=WAL")
        old.execute("CREATE TABLE before_tgclone (x)")
    old.close()
    reopened = await Database.open(old_path)
    try:
        async with reopened.read() as conn, conn.execute("PRAGMA page_size") as cursor:
            assert (await cursor.fetchone())[0] == 4096  # type: ignore[index]
    finally:
        await reopened.close()


def test_unix_conversion_is_utc_and_refuses_naive() -> None:
    moment = datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=5)))
    assert from_unix(to_unix(moment)) == moment
    assert from_unix(to_unix(moment)).tzinfo is UTC
    with pytest.raises(ValueError, match="naive"):
        to_unix(datetime(2024, 1, 2))
