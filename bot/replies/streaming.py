"""Showing a reply while it is generated: a draft in private chats, an edited message elsewhere.

The reply ends up as exactly the messages ``reply_parts`` gives for the whole text. While it
grows, each part that no further text can change (``settled_parts``: with line splitting, a
finished line) is sent as its own message at once, and the part in progress is shown as a
draft (``sendMessageDraft``, private chats) or as a message that is edited as it grows and
becomes that part's message. Updates to one chat are at least ``interval`` seconds apart; the
first one goes out as soon as the first piece arrives. Flood control (``RetryAfter``) is the
rate limiter's job (``AIORateLimiter`` in ``build_application``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from telegram import Bot, ReplyParameters
from telegram.error import BadRequest, TelegramError

from bot.replies.parts import reply_parts, settled_parts

logger = logging.getLogger(__name__)

EMPTY_REPLY = "…"
"""Sent (and stored) when the model generated nothing but blanks."""


@dataclass(frozen=True)
class SentReply:
    """A reply as stored, and the Telegram messages that carry it, in order."""

    text: str
    message_ids: list[int]


class ReplyActivity:
    """When the chat last saw its reply's text (a draft, an edit or a message).

    The typing action is for a chat that sees nothing happen: once text shows, it is only
    needed again when the text stops changing for a while.
    """

    def __init__(self) -> None:
        self._last_shown: float | None = None

    def shown(self) -> None:
        """The chat has just been shown (more of) the reply."""
        self._last_shown = time.monotonic()

    def quiet_for(self, seconds: float) -> bool:
        """Whether the chat has seen none of the reply in the last ``seconds``."""
        return self._last_shown is None or time.monotonic() - self._last_shown >= seconds


def final_parts(text: str, *, split_lines: bool) -> list[str]:
    """The messages a finished reply is sent as (``EMPTY_REPLY`` for a blank one)."""
    return reply_parts(text, split_lines=split_lines) or [EMPTY_REPLY]


async def send_reply(
    bot: Bot,
    chat_id: int,
    text: str,
    *,
    split_lines: bool,
    reply_to: int | None = None,
    requests: asyncio.Lock | None = None,
    activity: ReplyActivity | None = None,
    business_connection_id: str | None = None,
) -> SentReply:
    """Send a finished reply at once (no streaming); the first message answers ``reply_to``.

    ``requests`` and ``activity`` as for ``ReplyStream``; ``business_connection_id`` sends
    it as the owner in a Telegram Business chat.
    """
    text = text.strip()
    requests = requests or asyncio.Lock()
    message_ids = []
    for index, part in enumerate(final_parts(text, split_lines=split_lines)):
        async with requests:
            message = await bot.send_message(
                chat_id,
                part,
                reply_parameters=_reply_parameters(reply_to if index == 0 else None),
                business_connection_id=business_connection_id,
            )
        message_ids.append(message.message_id)
        if activity is not None:
            activity.shown()
    return SentReply(text or EMPTY_REPLY, message_ids)


class ReplyStream:
    """Streams one reply into one chat; ``run`` returns once its final messages are sent.

    Args:
        bot: the application's bot (with its rate limiter).
        chat_id: where the reply goes.
        drafts: show the part in progress as a draft (private chats only); otherwise as a
            message that is edited while it grows.
        split_lines: ``REPLY_SPLIT_LINES``: one message per line of the reply.
        interval: least seconds between two updates (draft, edit or new message) in the chat.
        reply_to: the message the reply's first message answers (groups), if any.
        requests: held around each Bot API call, shared with the chat's typing action: one
            request at a time per chat, so that a busy bot's connections are never all
            taken by a few chats.
        activity: told each time the chat is shown more of the reply (for the typing action).
    """

    def __init__(
        self,
        bot: Bot,
        chat_id: int,
        *,
        drafts: bool,
        split_lines: bool,
        interval: float,
        reply_to: int | None = None,
        requests: asyncio.Lock | None = None,
        activity: ReplyActivity | None = None,
    ) -> None:
        self._bot = bot
        self._chat_id = chat_id
        self._drafts = drafts
        self._split_lines = split_lines
        self._interval = interval
        self._reply_to = reply_to
        self._requests = requests or asyncio.Lock()
        self._activity = activity or ReplyActivity()
        self._settled: list[str] = []  # parts already sent as their final messages
        self._message_ids: list[int] = []
        self._live_id: int | None = None  # edit mode: the message showing the part in progress
        self._shown = ""  # the text of the draft or of the live message
        self._draft_id = secrets.randbelow(2**31 - 2**16) + 1  # non-zero; one per part
        self._next_update = 0.0

    async def run(self, pieces: AsyncIterator[str]) -> SentReply:
        """Show ``pieces`` (text whose concatenation is the reply) as they come, then send it."""
        loop = asyncio.get_running_loop()
        received: list[str] = []
        changed = asyncio.Event()

        async def consume() -> None:
            async for piece in pieces:
                received.append(piece)
                changed.set()

        producer = asyncio.ensure_future(consume())
        try:
            while not producer.done():
                waiter = asyncio.ensure_future(changed.wait())
                await asyncio.wait({producer, waiter}, return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
                if producer.done():
                    break
                hold = self._next_update - loop.time()
                if hold > 0:  # the chat had an update less than `interval` ago
                    await asyncio.wait({producer}, timeout=hold)
                    if producer.done():
                        break
                changed.clear()
                await self._show("".join(received))
            await producer  # the engine's error, if it failed
        except BaseException:
            producer.cancel()
            await self._abandon()
            raise
        return await self._finish("".join(received).strip())

    async def _show(self, text: str) -> None:
        """Send the parts `text` settles, then show the part in progress."""
        before = (len(self._settled), self._shown)
        settled = settled_parts(text, split_lines=self._split_lines)
        for part in settled[len(self._settled) :]:
            await self._settle(part)
        pending = reply_parts(text, split_lines=self._split_lines)[len(self._settled) :]
        if pending and pending[0] != self._shown:
            await self._preview(pending[0])
        if (len(self._settled), self._shown) != before:
            self._next_update = asyncio.get_running_loop().time() + self._interval

    async def _preview(self, text: str) -> None:
        if self._drafts:
            try:
                async with self._requests:
                    await self._bot.send_message_draft(self._chat_id, self._draft_id, text)
                self._shown = text
                self._activity.shown()
                return
            except BadRequest:
                # A server without drafts (an older self-hosted Bot API): edit instead.
                logger.info("drafts refused in chat %s; streaming by edits", self._chat_id)
                self._drafts = False
        if self._live_id is None:
            self._live_id = await self._send(text)
        else:
            try:
                async with self._requests:
                    await self._bot.edit_message_text(text, self._chat_id, self._live_id)
            except BadRequest:
                # The message is gone (deleted by someone): the part will be sent anew.
                logger.info("could not edit the reply in chat %s", self._chat_id)
                self._live_id = None
                return
        self._shown = text
        self._activity.shown()

    async def _settle(self, part: str) -> None:
        """Make `part` a final message: the live message edited to it, or a new message."""
        message_id = None
        if self._live_id is not None:
            message_id, self._live_id = self._live_id, None
            if self._shown != part:
                try:
                    async with self._requests:
                        await self._bot.edit_message_text(part, self._chat_id, message_id)
                except BadRequest:
                    logger.info("could not edit the reply in chat %s", self._chat_id)
                    message_id = None
        if message_id is None:
            message_id = await self._send(part)
        self._message_ids.append(message_id)
        self._settled.append(part)
        self._shown = ""
        self._draft_id += 1
        self._activity.shown()

    async def _finish(self, text: str) -> SentReply:
        parts = final_parts(text, split_lines=self._split_lines)
        rest = parts[len(self._settled) :]
        if self._live_id is not None and rest and rest[0] != self._shown:
            # The last edit honours the interval too.
            hold = self._next_update - asyncio.get_running_loop().time()
            if hold > 0:
                await asyncio.sleep(hold)
        for part in rest:
            await self._settle(part)
        return SentReply(text or EMPTY_REPLY, list(self._message_ids))

    async def _send(self, text: str) -> int:
        reply_to = None if self._message_ids or self._live_id else self._reply_to
        async with self._requests:
            message = await self._bot.send_message(
                self._chat_id, text, reply_parameters=_reply_parameters(reply_to)
            )
        return message.message_id

    async def _abandon(self) -> None:
        """After a failure: remove the half-shown part (a draft just expires)."""
        if self._live_id is None:
            return
        with contextlib.suppress(TelegramError):
            async with self._requests:
                await self._bot.delete_message(self._chat_id, self._live_id)
        self._live_id = None


def _reply_parameters(message_id: int | None) -> ReplyParameters | None:
    if message_id is None:
        return None
    return ReplyParameters(message_id, allow_sending_without_reply=True)
