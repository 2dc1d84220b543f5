"""The clone's conversations in SQLite, read and written in batches across chats.

The bot has one database connection, one operation at a time. With hundreds of chats answered
at once, a history read per reply would queue behind every other chat's reads and writes, and
the reply's first words with it. Requests that arrive while a batch runs are served together by
the next one: one query for all waiting chats' histories, one transaction for all finished
exchanges. A chat never has two replies at once (``ReplyScheduler``), so its reads and writes
stay in order.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

from storage.clone_turns import Exchange, recent_clone_turns_of_chats, save_exchanges
from storage.db import Database, to_unix
from storage.models import CloneTurn

Request = TypeVar("Request")
Result = TypeVar("Result")


class _Batcher(Generic[Request, Result]):
    """Runs ``run`` on every request that arrived while the previous batch was running."""

    def __init__(self, run: Callable[[list[Request]], Awaitable[list[Result]]]) -> None:
        self._run = run
        self._pending: list[tuple[Request, asyncio.Future[Result]]] = []
        self._task: asyncio.Task[None] | None = None

    async def submit(self, request: Request) -> Result:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Result] = loop.create_future()
        self._pending.append((request, future))
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                results = await self._run([request for request, _ in batch])
            except BaseException as exc:
                # The batch's failure is each waiter's failure; a cancellation cancels them.
                for _, future in batch:
                    if future.done():
                        continue
                    if isinstance(exc, Exception):
                        future.set_exception(exc)
                    else:
                        future.cancel()
                if not isinstance(exc, Exception):
                    raise
                continue
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)

    async def close(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


@dataclass(frozen=True)
class _Read:
    chat_id: int
    limit: int
    since: datetime


class ChatHistory:
    """Batched access to ``clone_turns`` for the chat handlers."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._reads: _Batcher[_Read, list[CloneTurn]] = _Batcher(self._read_batch)
        self._writes: _Batcher[Exchange, int] = _Batcher(self._write_batch)

    async def recent(self, chat_id: int, limit: int, since: datetime) -> list[CloneTurn]:
        """The chat's last ``limit`` turns at or after ``since``, oldest first."""
        return await self._reads.submit(_Read(chat_id, limit, since))

    async def save(self, exchange: Exchange) -> int:
        """Store an exchange (committed when this returns); the reply's turn id."""
        return await self._writes.submit(exchange)

    async def close(self) -> None:
        """Stop the batches in flight (before the database closes)."""
        await self._reads.close()
        await self._writes.close()

    async def _read_batch(self, reads: list[_Read]) -> list[list[CloneTurn]]:
        found = await recent_clone_turns_of_chats(
            self._db,
            [read.chat_id for read in reads],
            limit=max(read.limit for read in reads),
            since=min(read.since for read in reads),
        )
        results = []
        for read in reads:
            since = to_unix(read.since)  # whole seconds, as the query compares
            turns = [turn for turn in found[read.chat_id] if to_unix(turn.date) >= since]
            results.append(turns[-read.limit :] if read.limit else [])
        return results

    async def _write_batch(self, exchanges: list[Exchange]) -> list[int]:
        return await save_exchanges(self._db, exchanges)
