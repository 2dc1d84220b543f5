"""Talking with the clone: each burst of a user's messages gets one reply, in order."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from telegram import Bot, Update

from bot.context import CloneContext
from bot.engine import NoAdapterError
from bot.reply_pipeline import CUT_NOTICE, Delivery, answer, failure_text
from bot.services import Services
from storage.clone_turns import Exchange, add_clone_turn
from storage.messages import recent_chat_messages
from storage.models import CloneTurn, MessageRecord
from training.turns import is_group

logger = logging.getLogger(__name__)

HISTORY_READ_LIMIT = 200
"""Stored messages read per reply at most; the turn shaper keeps what fits the prompt."""
_EPOCH = datetime.fromtimestamp(0, UTC)


async def reply_as_clone(update: Update, context: CloneContext) -> None:
    """Store the message; the chat's reply follows once the user has paused."""
    message = update.effective_message
    if message is None or not message.text:
        return
    await queue_reply(update, context, message.text)


async def queue_reply(
    update: Update, context: CloneContext, text: str, *, reply_to: int | None = None
) -> None:
    """Put `text` in its chat's inbox; the burst is answered after the quiet period.

    Private chats see the reply stream as a draft, other chats as an edited message. In a
    group the reply answers the burst's last message (``reply_to``).
    """
    message = update.effective_message
    chat = update.effective_chat
    user = update.effective_user
    if message is None or chat is None or user is None:
        return
    services = context.services
    is_admin = services.settings.is_admin(user.id)
    if not services.engine.has_adapter:
        notice = failure_text(
            NoAdapterError("no adapter"), is_admin=is_admin, learning=services.retrain.busy
        )
        assert notice is not None
        await message.reply_text(notice)
        return
    application = context.application
    bot = context.bot
    incoming = CloneTurn(
        chat_id=chat.id,
        role="user",
        text=text,
        date=message.date,
        message_id=message.message_id,
        sender_id=user.id,
        sender_name=user.full_name,
    )

    async def reply(new_turns: list[CloneTurn]) -> None:
        try:
            await reply_to_burst(services, bot, chat.id, new_turns, reply_to, is_admin)
        except Exception as exc:
            # A background task has no handler above it: hand the error to the app's one
            # error handler, as if it had happened in this update's handler.
            await application.process_error(update, exc)

    services.replies.add(chat.id, incoming, reply)


async def reply_to_burst(
    services: Services,
    bot: Bot,
    chat_id: int,
    new_turns: list[CloneTurn],
    reply_to: int | None,
    is_admin: bool,
) -> None:
    """Answer `new_turns` with the chat's stored history; store them and the reply.

    The reply streams (``REPLY_STREAMING``: a draft in a private chat, an edited message in
    a group) or is sent whole. The new turns are stored even when the reply fails; a failure
    the user should hear of (``failure_text``) is told in the chat, any other is raised.
    """
    settings = services.settings
    delivery = Delivery(
        chat_id,
        streaming=settings.reply_streaming,
        drafts=not is_group(chat_id),
        split_lines=settings.reply_split_lines,
        interval=settings.stream_edit_interval,
        reply_to=reply_to,
    )
    stored = await services.history.recent(chat_id, HISTORY_READ_LIMIT, _EPOCH)
    records = await chat_records(services, chat_id, [*stored, *new_turns])
    try:
        answered = await answer(services.engine, bot, records, delivery)
    except asyncio.CancelledError:
        raise  # shutting down: the database may be closed already
    except Exception as exc:
        await _store_user_turns(services, new_turns)  # a failed reply keeps them
        notice = failure_text(exc, is_admin=is_admin, learning=services.retrain.busy)
        if notice is None:
            raise
        await bot.send_message(chat_id, notice)
        return
    if answered is None:
        await _store_user_turns(services, new_turns)
        return
    if answered.cut:
        await bot.send_message(chat_id, CUT_NOTICE)
    sent = answered.sent
    reply = CloneTurn(
        chat_id=chat_id,
        role="assistant",
        text=sent.text,
        # Telegram dates messages in whole seconds when it takes them: about now.
        date=datetime.now(UTC).replace(microsecond=0),
        message_id=sent.message_ids[0] if sent.message_ids else None,
    )
    # Stored only now, in one transaction, so that no write delays any reply's first words.
    await services.history.save(Exchange(chat_id, new_turns, reply, sent.message_ids))


async def chat_records(
    services: Services, chat_id: int, turns: list[CloneTurn]
) -> list[MessageRecord]:
    """A chat's turns with the clone as the turn shaper reads messages, oldest first.

    In a group whose messages are collected, the group's stored messages up to the last turn
    (what training sees) come with them; a turn that is also a stored message is taken once,
    as stored.
    """
    records = [turn.as_record() for turn in turns]
    if not is_group(chat_id) or not records:
        return records
    corpus = await recent_chat_messages(services.db, chat_id, _EPOCH, HISTORY_READ_LIMIT)
    until = records[-1].date
    collected = [record for record in corpus if record.date <= until]
    ids = {record.message_id for record in collected}
    clone_only = [r for r in records if r.is_owner or r.message_id not in ids]
    return sorted([*collected, *clone_only], key=lambda r: (r.date, r.message_id))


async def _store_user_turns(services: Services, turns: list[CloneTurn]) -> None:
    for turn in turns:
        await add_clone_turn(services.db, turn)
