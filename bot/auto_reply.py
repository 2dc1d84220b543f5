"""Business auto-reply: the clone answers as the owner in the owner's connected private chats.

Off by default (``AUTO_REPLY``); the owner switches it with ``/autoreply on|off``. A message
from the other side of a chat whose Business connection is enabled and may reply waits for
the same quiet period as a chat with the clone, then gets one reply, sent on the owner's
behalf through the connection. The history is the chat's stored messages within
``SESSION_GAP`` (the owner's as the assistant, the other side's as the user) plus the
replies sent here lately. Those come back as business messages with ``sender_business_bot``
and are never stored as the owner's words (nor trained on); they are kept in a table of their
own (``auto_replies``), so a restarted bot still sees them.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from functools import partial
from typing import Any

from telegram import Bot, Message
from telegram.constants import ChatAction
from telegram.error import TelegramError
from telegram.ext import Application

from bot.engine import (
    EngineBusyError,
    EnginePausedError,
    EngineUnavailableError,
    NoAdapterError,
    ReplyEngine,
)
from bot.history import history_messages
from bot.live_records import message_record
from bot.reply_scheduler import ReplyScheduler
from bot.settings import Settings
from bot.streaming import send_reply
from storage.auto_reply import (
    AutoReplyRecord,
    add_auto_reply,
    auto_reply_switch,
    recent_auto_replies,
    recent_chat_messages,
)
from storage.collection import BusinessConnectionRecord
from storage.db import Database
from storage.models import CloneTurn, MessageRecord
from training.chat_format import ChatMessage

logger = logging.getLogger(__name__)

AnyApplication = Application[Any, Any, Any, Any, Any, Any]

AUTO_REPLIER_KEY = "auto_replier"

STORED_MESSAGES_LIMIT = 200
"""Stored messages read per reply at most; the history is cut to HISTORY_TURNS after merging."""


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
        except (NoAdapterError, EnginePausedError, EngineBusyError, EngineUnavailableError) as exc:
            logger.info("auto-reply skipped in chat %s: %s", chat_id, type(exc).__name__)
        except Exception as exc:
            # A background task has no handler above it: the app's error handler logs it.
            await self._on_error(exc)

    async def _answer(self, connection_id: str, chat_id: int, new: list[MessageRecord]) -> None:
        now = datetime.now(UTC)
        since = now - self._settings.session_gap
        history = await self._history(chat_id, since, new)
        if not history or history[-1]["role"] != "user":
            logger.info("auto-reply skipped in chat %s: the owner answered", chat_id)
            return
        with contextlib.suppress(TelegramError):
            await self._bot.send_chat_action(
                chat_id, ChatAction.TYPING, business_connection_id=connection_id
            )
        reply = await self._engine.generate(history)
        if not reply.strip():
            logger.info("auto-reply skipped in chat %s: empty generation", chat_id)
            return
        sent_reply = await send_reply(
            self._bot,
            chat_id,
            reply,
            split_lines=self._settings.reply_split_lines,
            business_connection_id=connection_id,
        )
        # Telegram dates the messages in whole seconds when it takes them: about now.
        sent_at = datetime.now(UTC).replace(microsecond=0)
        record = AutoReplyRecord(chat_id, sent_reply.message_ids[0], sent_reply.text, sent_at)
        await add_auto_reply(self._db, record)

    async def _history(
        self, chat_id: int, since: datetime, new: list[MessageRecord]
    ) -> list[ChatMessage]:
        stored = await recent_chat_messages(self._db, chat_id, since, STORED_MESSAGES_LIMIT)
        sent = await recent_auto_replies(self._db, chat_id, since, STORED_MESSAGES_LIMIT)
        seen = {m.message_id for m in stored}
        # With collection paused the new messages are not stored; they still get the reply.
        messages = [*stored, *(m for m in new if m.message_id not in seen)]
        # Telegram dates have whole seconds; message ids order what happened within one.
        ordered = [
            (
                m.date,
                m.message_id,
                CloneTurn(chat_id, "assistant" if m.is_owner else "user", m.text, m.date),
            )
            for m in messages
        ]
        ordered += [
            (s.date, s.message_id, CloneTurn(chat_id, "assistant", s.text, s.date)) for s in sent
        ]
        ordered.sort(key=lambda item: (item[0], item[1]))
        limit = self._settings.history_turns + len(new)
        return history_messages([turn for _, _, turn in ordered[-limit:]])


def install_auto_replier(application: AnyApplication, replier: AutoReplier) -> None:
    """Keep the auto-replier where the Business handler finds it."""
    application.bot_data[AUTO_REPLIER_KEY] = replier


def auto_replier(application: AnyApplication) -> AutoReplier | None:
    """The application's auto-replier (None before post_init)."""
    replier = application.bot_data.get(AUTO_REPLIER_KEY)
    return replier if isinstance(replier, AutoReplier) else None
