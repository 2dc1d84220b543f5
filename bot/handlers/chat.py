"""Talking with the clone: each burst of a user's messages gets one reply, in order."""

from __future__ import annotations

from telegram import Update

from bot.context import CloneContext
from bot.engine.base import NoAdapterError
from bot.replies.chats import reply_to_burst
from bot.replies.pipeline import failure_text
from storage.models import CloneTurn


async def reply_as_clone(update: Update, context: CloneContext) -> None:
    """Store the message; the chat's reply follows once the user has paused."""
    message = update.effective_message
    if message is None or not message.text:
        return
    await queue_reply(update, context, message.text)


TEXT_ONLY = "I can only read text for now: tell me in words?"
"""The answer to a sticker, photo, voice message or other media without a caption."""


async def reply_to_media(update: Update, context: CloneContext) -> None:
    """A captioned photo (or other media) is answered like text; media without words gets a
    one-line note that the clone reads text only, instead of silence."""
    message = update.effective_message
    if message is None:
        return
    if message.caption:
        await queue_reply(update, context, message.caption)
        return
    await message.reply_text(TEXT_ONLY)


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
