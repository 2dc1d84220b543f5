"""One Telegram message kept current: edited as work goes on, throttled, edits in order."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable

from telegram import Message
from telegram.error import BadRequest, TelegramError

EDIT_INTERVAL_SECONDS = 3.0
"""Telegram tolerates about one edit a second per chat; progress needs far fewer."""


class StatusMessage:
    """Shows progress in one message: `message` to edit, or `send` for the first show.

    `show` is synchronous and never waits for Telegram; edits run in order in the
    background, at most one per `interval`. `finish` waits for them and shows its text.
    """

    def __init__(
        self,
        *,
        message: Message | None = None,
        send: Callable[[str], Awaitable[Message]] | None = None,
        interval: float = EDIT_INTERVAL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if (message is None) == (send is None):
            raise ValueError("give the message to edit, or how to send it, not both")
        self._message = message
        self._send = send
        self._interval = interval
        self._clock = clock
        self._last = clock() if message is not None else float("-inf")
        self._pending: asyncio.Task[None] | None = None

    def show(self, text: str) -> None:
        """Show `text` unless the last update was less than `interval` ago."""
        now = self._clock()
        if now - self._last < self._interval:
            return
        self._last = now
        previous = self._pending
        self._pending = asyncio.get_running_loop().create_task(self._put(text, previous))

    async def finish(self, text: str) -> None:
        """Wait for the pending updates, then show `text` whatever the throttle says."""
        if self._pending is not None:
            await self._pending
        await self._put(text, None)

    async def _put(self, text: str, previous: asyncio.Task[None] | None) -> None:
        if previous is not None:
            await previous
        # A status line that cannot be shown ("not modified", a flood limit) is not an error.
        with contextlib.suppress(BadRequest, TelegramError):
            if self._message is None:
                assert self._send is not None
                self._message = await self._send(text)
            else:
                await self._message.edit_text(text)
