"""ChatHistory: concurrent chats' reads and writes are served in batches, each chat in order."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.replies.history import ChatHistory, _Batcher
from storage.clone_turns import Exchange, recent_clone_turns
from storage.db import Database
from storage.models import CloneTurn

NOW = datetime.now(UTC)


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = await Database.open(tmp_path / "tgclone.db")
    try:
        yield database
    finally:
        await database.close()


def _turn(chat_id: int, role: str, text: str) -> CloneTurn:
    return CloneTurn(chat_id=chat_id, role=role, text=text, date=NOW)  # type: ignore[arg-type]


async def test_requests_arriving_during_a_batch_are_served_by_the_next_one() -> None:
    sizes: list[int] = []
    started = asyncio.Event()
    release = asyncio.Event()

    async def run(requests: list[int]) -> list[int]:
        sizes.append(len(requests))
        started.set()
        await release.wait()
        return [r * 10 for r in requests]

    batcher: _Batcher[int, int] = _Batcher(run)
    first = asyncio.ensure_future(batcher.submit(0))
    await started.wait()
    rest = [asyncio.ensure_future(batcher.submit(n)) for n in range(1, 50)]
    release.set()
    assert await asyncio.gather(first, *rest) == [n * 10 for n in range(50)]
    assert sizes == [1, 49]


async def test_a_failed_batch_fails_each_of_its_requests_and_the_next_batch_runs() -> None:
    async def run(requests: list[int]) -> list[int]:
        await asyncio.sleep(0)
        if 0 in requests:
            raise ValueError("zero")
        return requests

    batcher: _Batcher[int, int] = _Batcher(run)
    with pytest.raises(ValueError, match="zero"):
        await batcher.submit(0)
    assert await batcher.submit(5) == 5


async def test_many_chats_read_and_write_their_own_history(db: Database) -> None:
    history = ChatHistory(db)
    since = NOW - timedelta(minutes=30)

    async def talk(chat_id: int) -> list[str]:
        for n in range(3):
            before = await history.recent(chat_id, 12, since)
            assert len(before) == 2 * n
            user = _turn(chat_id, "user", f"{chat_id}: {n}")
            await history.save(Exchange(chat_id, [user], _turn(chat_id, "assistant", "ok"), [n]))
        return [t.text for t in await history.recent(chat_id, 4, since)]

    results = await asyncio.gather(*(talk(chat_id) for chat_id in range(1, 41)))
    assert results[6] == ["7: 1", "ok", "7: 2", "ok"]
    stored = await recent_clone_turns(db, 7, limit=100)
    assert [t.text for t in stored] == ["7: 0", "ok", "7: 1", "ok", "7: 2", "ok"]
    await history.close()


async def test_waiting_for_a_chats_saves_ends_when_they_commit_even_after_a_reset(
    db: Database,
) -> None:
    history = ChatHistory(db)
    holding, release = asyncio.Event(), asyncio.Event()

    async def hold_import() -> None:
        async with db.transaction(bulk=True):
            holding.set()
            await release.wait()

    importing = asyncio.create_task(hold_import())
    await holding.wait()
    exchange = Exchange(1, [_turn(1, "user", "hi")], _turn(1, "assistant", "hello"), [7])
    await history.save(exchange)  # queued behind the import
    waiting = asyncio.create_task(history.committed(1))
    await asyncio.sleep(0.05)
    assert not waiting.done(), "the exchange is not committed yet"
    await history.clear(1)  # a /reset while it waits
    release.set()
    await importing
    await asyncio.wait_for(waiting, timeout=5)

    async def nothing() -> None:
        pass

    await db.write_soon(nothing)  # after the queued /reset
    assert await recent_clone_turns(db, 1, limit=10) == []
    await history.close()
