"""The clone's conversations in SQLite, read and written in batches across chats.

The bot reads through one connection and writes through another, each one operation at a
time. With hundreds of chats answered at once, a history read per reply would queue behind
every other chat's reads, and the reply's first words with it. Requests that arrive while a
batch runs are served together by the next one: one query for all waiting chats' histories,
one transaction for all finished exchanges. A chat never has two replies at once
(``ReplyScheduler``), so its reads and writes stay in order.

Writes go through ``Database.write_soon``: while an import holds the database they wait
behind it, and the bot answers meanwhile from what it has not stored yet (an exchange is
part of its chat's history from the moment it is saved, committed or not).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

from storage.clone_turns import (
    Exchange,
    clear_clone_turns,
    recent_clone_turns_of_chats,
    save_exchanges,
)
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
        self._writes: _Batcher[Exchange, int | None] = _Batcher(self._write_batch)
        self._unsaved: dict[int, list[Exchange]] = {}
        """Exchanges saved but not committed yet, per chat."""
        self._clearing: dict[int, int] = {}
        """Chats whose stored turns are being forgotten (/reset not committed yet)."""
        self._committed: dict[int, asyncio.Event] = {}
        """Set when a chat's last unsaved exchange is committed (for ``committed``)."""

    async def recent(self, chat_id: int, limit: int, since: datetime) -> list[CloneTurn]:
        """The chat's last ``limit`` turns at or after ``since``, oldest first."""
        unsaved = [turn for exchange in self._unsaved.get(chat_id, []) for turn in exchange.turns]
        stored = await self._reads.submit(_Read(chat_id, limit, since))
        if chat_id in self._clearing:
            stored = []  # every stored turn predates the /reset waiting to be committed
        # An exchange committed during the read is in both: take it once.
        seen = {_identity(turn) for turn in stored}
        turns = [*stored, *(t for t in unsaved if _identity(t) not in seen and t.date >= since)]
        return turns[-limit:] if limit else []

    async def save(self, exchange: Exchange) -> None:
        """Store an exchange: committed when this returns, or while an import holds the
        database, queued (``recent`` includes it meanwhile)."""
        pending = self._unsaved.setdefault(exchange.chat_id, [])
        pending.append(exchange)

        async def write() -> None:
            try:
                await self._writes.submit(exchange)
            finally:
                pending.remove(exchange)
                if not pending:  # a /reset may have dropped the list meanwhile
                    if self._unsaved.get(exchange.chat_id) is pending:
                        del self._unsaved[exchange.chat_id]
                    event = self._committed.pop(exchange.chat_id, None)
                    if event is not None:
                        event.set()

        await self._db.write_soon(write)

    async def committed(self, chat_id: int) -> None:
        """Return once every exchange of the chat saved so far is committed (behind an
        import, once it has committed)."""
        while chat_id in self._unsaved:
            await self._committed.setdefault(chat_id, asyncio.Event()).wait()

    async def clear(self, chat_id: int) -> None:
        """Forget the chat's conversation (/reset), after the exchanges saved before."""
        self._unsaved.pop(chat_id, None)
        self._clearing[chat_id] = self._clearing.get(chat_id, 0) + 1

        async def write() -> None:
            try:
                await clear_clone_turns(self._db, chat_id)
            finally:
                self._clearing[chat_id] -= 1
                if not self._clearing[chat_id]:
                    del self._clearing[chat_id]

        await self._db.write_soon(write)

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

    async def _write_batch(self, exchanges: list[Exchange]) -> list[int | None]:
        return await save_exchanges(self._db, exchanges)


def _identity(turn: CloneTurn) -> tuple[object, ...]:
    """What tells one turn from another across the store and memory."""
    return (turn.role, turn.message_id, turn.date, turn.text)
