"""One reply per burst: a chat's new messages wait in its inbox and are answered together.

A new message during the quiet period restarts it; one that arrives while a reply is being
generated stays in the inbox for the next reply. Replies in a chat never overlap, and each
takes exactly the messages that came before it, so history is stored in the order it happened.
A burst is answered by the callback that came with its last message.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")

Reply = Callable[[list[T]], Awaitable[None]]


class ReplyScheduler(Generic[T]):
    """Per-chat inboxes, debounced, drained by one reply at a time per chat."""

    def __init__(self, quiet_seconds: float) -> None:
        self._quiet = quiet_seconds
        self._inbox: dict[int, list[T]] = {}
        self._latest: dict[int, Reply[T]] = {}
        self._waiting: dict[int, asyncio.Task[None]] = {}
        self._locks: dict[int, asyncio.Lock] = {}  # while a task holds or awaits it
        self._lock_users: dict[int, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()  # waiting and replying, until done

    @property
    def active_chats(self) -> int:
        """Chats with messages waiting, a quiet period running or a reply being generated;
        a chat's state is dropped once its reply is done (none is kept per chat ever seen)."""
        return len(self._inbox.keys() | self._waiting.keys() | self._locks.keys())

    def add(self, chat_id: int, item: T, reply: Reply[T]) -> None:
        """Put `item` in the chat's inbox and (re)start the quiet period before `reply`."""
        self._inbox.setdefault(chat_id, []).append(item)
        self._latest[chat_id] = reply
        waiting = self._waiting.get(chat_id)
        if waiting is not None and not waiting.done():
            waiting.cancel()
        task = asyncio.get_running_loop().create_task(self._after_quiet(chat_id))
        self._waiting[chat_id] = task
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _after_quiet(self, chat_id: int) -> None:
        await asyncio.sleep(self._quiet)  # a cancel here is the debounce
        if self._waiting.get(chat_id) is asyncio.current_task():
            del self._waiting[chat_id]
        lock = self._locks.setdefault(chat_id, asyncio.Lock())
        self._lock_users[chat_id] = self._lock_users.get(chat_id, 0) + 1
        try:
            async with lock:
                items = self._inbox.pop(chat_id, [])
                reply = self._latest.pop(chat_id, None)
                if items and reply is not None:
                    await reply(items)
        finally:
            self._lock_users[chat_id] -= 1
            if not self._lock_users[chat_id]:
                del self._lock_users[chat_id], self._locks[chat_id]

    async def settled(self, chat_id: int) -> None:
        """Return once the chat's reply in progress, if any, has been sent and stored (one
        still waiting for its quiet period is not waited for)."""
        lock = self._locks.get(chat_id)
        if lock is not None and lock.locked():
            async with lock:
                pass

    async def close(self) -> None:
        """Cancel replies waiting for their quiet period or still being generated, and wait
        until they have stopped (before the database they write to closes)."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._waiting.clear()
