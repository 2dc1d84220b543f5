"""One reply per burst and chat, in order, with no state kept for chats that are done."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from bot.replies.inbox import ReplyScheduler


class Replies:
    """Records each reply's messages; a reply takes ``seconds``."""

    def __init__(self, seconds: float = 0.0) -> None:
        self.seconds = seconds
        self.made: list[tuple[int, list[str]]] = []
        self.running: set[int] = set()
        self.overlapped = False

    def for_chat(self, chat_id: int) -> Callable[[list[str]], Awaitable[None]]:
        async def reply(items: list[str]) -> None:
            self.overlapped |= chat_id in self.running
            self.running.add(chat_id)
            await asyncio.sleep(self.seconds)
            self.running.discard(chat_id)
            self.made.append((chat_id, items))

        return reply


async def _until_idle(scheduler: ReplyScheduler[str]) -> None:
    for _ in range(500):
        if not scheduler.active_chats:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{scheduler.active_chats} chats still active")


async def test_a_burst_within_the_quiet_period_is_one_reply() -> None:
    scheduler: ReplyScheduler[str] = ReplyScheduler(quiet_seconds=0.05)
    replies = Replies()
    for text in ("a", "b", "c"):
        scheduler.add(1, text, replies.for_chat(1))
        await asyncio.sleep(0.01)
    await _until_idle(scheduler)
    assert replies.made == [(1, ["a", "b", "c"])]


async def test_messages_during_a_reply_are_the_next_reply_never_overlapping() -> None:
    scheduler: ReplyScheduler[str] = ReplyScheduler(quiet_seconds=0.0)
    replies = Replies(seconds=0.05)
    scheduler.add(1, "first", replies.for_chat(1))
    await asyncio.sleep(0.02)  # the first reply is being made
    scheduler.add(1, "second", replies.for_chat(1))
    await asyncio.sleep(0.01)
    scheduler.add(1, "third", replies.for_chat(1))
    await _until_idle(scheduler)
    assert replies.made == [(1, ["first"]), (1, ["second", "third"])]
    assert not replies.overlapped


async def test_no_state_is_kept_for_chats_that_are_done() -> None:
    scheduler: ReplyScheduler[str] = ReplyScheduler(quiet_seconds=0.0)
    replies = Replies(seconds=0.01)
    for chat_id in range(300):
        scheduler.add(chat_id, f"hi {chat_id}", replies.for_chat(chat_id))
    assert scheduler.active_chats == 300
    await _until_idle(scheduler)  # each chat's inbox, quiet period and lock went with its reply
    assert sorted(chat_id for chat_id, _ in replies.made) == list(range(300))


async def test_close_cancels_waiting_and_running_replies() -> None:
    scheduler: ReplyScheduler[str] = ReplyScheduler(quiet_seconds=10.0)
    replies = Replies(seconds=10.0)
    scheduler.add(1, "waits", replies.for_chat(1))
    fast: ReplyScheduler[str] = ReplyScheduler(quiet_seconds=0.0)
    fast.add(2, "runs", replies.for_chat(2))
    await asyncio.sleep(0.01)
    assert replies.running == {2}
    await asyncio.wait_for(asyncio.gather(scheduler.close(), fast.close()), timeout=1)
    assert replies.made == []


async def test_settled_returns_once_the_chats_reply_in_progress_is_done() -> None:
    replies = Replies(seconds=0.3)
    scheduler: ReplyScheduler[str] = ReplyScheduler(quiet_seconds=0.01)
    await scheduler.settled(1)  # nothing in progress: at once
    scheduler.add(1, "hi", replies.for_chat(1))
    await asyncio.sleep(0.1)
    assert replies.running == {1}
    await asyncio.wait_for(scheduler.settled(2), timeout=0.05)  # another chat: at once
    await scheduler.settled(1)
    assert replies.made == [(1, ["hi"])], "the reply was done before settled returned"
    await _until_idle(scheduler)
