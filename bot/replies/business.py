"""Business auto-reply: the clone answers as the owner in the owner's connected private chats.

Off by default (``AUTO_REPLY``); the owner switches it with ``/autoreply on|off``. A message
from the other side of a chat whose Business connection is enabled and may reply waits for
the same quiet period as a chat with the clone, then gets one reply, sent on the owner's
behalf through the connection, by the one reply pipeline (``bot.replies.pipeline``). The
history is the chat's stored messages (the owner's as the assistant, the other side's as the
user) plus the replies sent here lately, shaped by the serving adapter's turn shaper exactly
as its training samples were. The replies come back as business messages with
``sender_business_bot`` and are never stored as the owner's words (nor trained on); they are
kept in a table of their own (``auto_replies``), so a restarted bot still sees them.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from functools import partial
from typing import Any

from telegram import Bot, Message

from bot.engine.base import ReplyEngine
from bot.replies.inbox import ReplyScheduler
from bot.replies.pipeline import Delivery, answer, failure_text
from bot.settings import Settings
from bot.telegram.records import message_record
from storage.auto_reply import (
    AutoReplyRecord,
    add_auto_reply,
    auto_reply_switch,
    recent_auto_replies,
)
from storage.collection import BusinessConnectionRecord
from storage.db import Database
from storage.messages import recent_chat_messages
from storage.models import MessageRecord

logger = logging.getLogger(__name__)

STORED_MESSAGES_LIMIT = 200
"""Stored messages read per reply at most; the turn shaper keeps what fits the prompt."""
_EPOCH = datetime.fromtimestamp(0, UTC)


async def auto_reply_on(db: Database, settings: Settings) -> bool:
    """Whether auto-reply is on: the owner's last /autoreply, else the AUTO_REPLY setting."""
    switch = await auto_reply_switch(db)
    return settings.auto_reply if switch is None else switch


class AutoReplier:
    """Queues, generates and sends auto-replies; one per burst of the other side's messages.

    Its reply scheduler is its own: Business chat ids are the other people's user ids, the
    same ids as their private chats with the bot, which the chat scheduler keys by.
    """

    def __init__(
        self,
        settings: Settings,
        db: Database,
        engine: ReplyEngine,
        bot: Bot,
        on_error: Callable[[Exception], Awaitable[Any]],
    ) -> None:
        self._settings = settings
        self._db = db
        self._engine = engine
        self._bot = bot
        self._on_error = on_error
        self._scheduler: ReplyScheduler[MessageRecord] = ReplyScheduler(
            settings.reply_quiet_seconds
        )

    async def consider(self, message: Message, connection: BusinessConnectionRecord) -> bool:
        """Queue a reply to a new business message if auto-reply applies; True if queued."""
        sender = message.from_user
        if sender is None or sender.is_bot or sender.id == connection.user_id:
            return False  # the owner's own words, or another bot
        if message.sender_business_bot is not None:
            return False
        if not (connection.is_enabled and connection.can_reply):
            return False
        if not await auto_reply_on(self._db, self._settings):
            return False
        if not self._engine.has_adapter:
            logger.info("auto-reply skipped in chat %s: no adapter yet", message.chat.id)
            return False
        record = message_record(message, owner_id=connection.user_id)
        if not record.text:
            return False
        reply = partial(self._reply, connection.connection_id, record.chat_id)
        self._scheduler.add(record.chat_id, record, reply)
        return True

    async def close(self) -> None:
        """Cancel replies still waiting for their quiet period."""
        await self._scheduler.close()

    async def _reply(self, connection_id: str, chat_id: int, new: list[MessageRecord]) -> None:
        try:
            await self._answer(connection_id, chat_id, new)
        except Exception as exc:
            if failure_text(exc, is_admin=False, learning=False) is not None:
                # Nobody is told: the other side must not hear the bot's troubles as the
                # owner's words, and the owner can answer themselves.
                logger.info("auto-reply skipped in chat %s: %s", chat_id, type(exc).__name__)
                return
            # A background task has no handler above it: the app's error handler logs it.
            await self._on_error(exc)

    async def _answer(self, connection_id: str, chat_id: int, new: list[MessageRecord]) -> None:
        delivery = Delivery(
            chat_id,
            streaming=False,
            drafts=False,
            split_lines=self._settings.reply_split_lines,
            business_connection_id=connection_id,
        )
        records = await self._history(chat_id, new)
        answered = await answer(self._engine, self._bot, records, delivery, db=self._db)
        if answered is None:
            logger.info("auto-reply skipped in chat %s: nothing to answer", chat_id)
            return
        # Telegram dates the messages in whole seconds when it takes them: about now.
        sent_at = datetime.now(UTC).replace(microsecond=0)
        sent = answered.sent
        record = AutoReplyRecord(chat_id, sent.message_ids[0], sent.text, sent_at)
        await self._db.write_soon(partial(add_auto_reply, self._db, record))

    async def _history(self, chat_id: int, new: list[MessageRecord]) -> list[MessageRecord]:
        """The chat's stored messages and the auto-replies sent there, in time order."""
        stored = await recent_chat_messages(self._db, chat_id, _EPOCH, STORED_MESSAGES_LIMIT)
        sent = await recent_auto_replies(self._db, chat_id, _EPOCH, STORED_MESSAGES_LIMIT)
        seen = {m.message_id for m in stored}
        # With collection paused the new messages are not stored; they still get the reply.
        replies = [
            MessageRecord(
                chat_id=chat_id,
                message_id=s.message_id,
                sender_id=None,
                sender_name=None,
                is_owner=True,
                date=s.date,
                text=s.text,
                source="live",
            )
            for s in sent
        ]
        messages = [*stored, *(m for m in new if m.message_id not in seen), *replies]
        # Telegram dates have whole seconds; message ids order what happened within one.
        return sorted(messages, key=lambda m: (m.date, m.message_id))
