"""The single-writer handle: transactions commit, roll back, and never interleave."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone

import pytest

from storage.db import Database, from_unix, to_unix

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


async def test_reads_do_not_see_another_tasks_open_transaction(db: Database) -> None:
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
    reader = asyncio.create_task(chat_ids(db))
    await asyncio.sleep(0.01)
    assert not reader.done()  # waits for the writer instead of reading its rows
    release.set()
    with pytest.raises(RuntimeError):
        await task
    assert await reader == []


async def test_foreign_keys_are_enforced(db: Database) -> None:
    with pytest.raises(Exception, match="FOREIGN KEY"):
        async with db.transaction() as conn:
            await conn.execute(
                "INSERT INTO messages (chat_id, message_id, is_owner, date_utc, source) "
                "VALUES (999, 1, 0, 0, 'live')"
            )


def test_unix_conversion_is_utc_and_refuses_naive() -> None:
    moment = datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=5)))
    assert from_unix(to_unix(moment)) == moment
    assert from_unix(to_unix(moment)).tzinfo is UTC
    with pytest.raises(ValueError, match="naive"):
        to_unix(datetime(2024, 1, 2))
