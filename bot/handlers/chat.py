"""Talking with the clone."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from telegram import Update
from telegram.constants import ChatAction

from bot.context import CloneContext
from bot.engine import NoAdapterError
from bot.history import history_messages
from bot.replies import split_message
from storage.clone_turns import add_clone_turn, recent_clone_turns

logger = logging.getLogger(__name__)

NO_ADAPTER_OWNER = (
    "I can't answer as you yet: no adapter has been trained. Send me your Telegram export "
    "(Settings → Advanced → Export Telegram data, JSON), then /retrain."
)
NO_ADAPTER_USER = "I can't answer yet: my owner has not trained me. Please try again later."


async def reply_as_clone(update: Update, context: CloneContext) -> None:
    """Answer a text message the way the owner would, from the chat's recent history."""
    message = update.effective_message
    chat = update.effective_chat
    user = update.effective_user
    if message is None or chat is None or user is None or not message.text:
        return
    services = context.services
    if not services.engine.has_adapter:
        is_owner = user.id == services.settings.owner_id
        await message.reply_text(NO_ADAPTER_OWNER if is_owner else NO_ADAPTER_USER)
        return
    now = datetime.now(UTC)
    await add_clone_turn(services.db, chat.id, "user", message.text, message.date or now)
    since = now - services.settings.session_gap
    turns = await recent_clone_turns(
        services.db, chat.id, limit=services.settings.history_turns + 1, since=since
    )
    await context.bot.send_chat_action(chat.id, ChatAction.TYPING)
    try:
        reply = await services.engine.generate(history_messages(turns))
    except NoAdapterError:
        await message.reply_text(NO_ADAPTER_USER)
        return
    if not reply:
        logger.info("empty generation in chat %s", chat.id)
        reply = "…"
    await add_clone_turn(services.db, chat.id, "assistant", reply, datetime.now(UTC))
    for chunk in split_message(reply):
        await message.reply_text(chunk, do_quote=False)
