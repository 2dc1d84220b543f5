"""/fix: the owner replies to a clone message with a better answer, kept for the next run."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from telegram import Update

from bot.context import CloneContext
from bot.engine.base import NoAdapterError
from bot.replies.chats import clone_reply, prompt_of_reply
from storage.corrections import add_correction

logger = logging.getLogger(__name__)

NOTED = "Noted — I'll learn this next time."
NOT_A_REPLY = (
    "Reply to one of my messages with /fix and the answer you would have given, e.g. "
    "/fix sure, see you at 7"
)
EMPTY_FIX = "Write the better answer after /fix, e.g. /fix sure, see you at 7"
NO_ADAPTER = "No adapter is serving right now, so I cannot tell what that reply answered."
NOT_A_CLONE_MESSAGE = (
    "That message is not one of my replies as your clone, so there is nothing to correct. "
    "Reply with /fix to a message I wrote."
)


def _better_text(text: str | None) -> str:
    """What follows the command (its own lines kept), stripped."""
    parts = (text or "").split(maxsplit=1)
    return parts[1].strip() if len(parts) == 2 else ""


async def fix(update: Update, context: CloneContext) -> None:
    """Store the owner's better answer to the clone message this command replies to."""
    message = update.effective_message
    chat = update.effective_chat
    if message is None or chat is None:
        return
    replied = message.reply_to_message
    if replied is None:
        await message.reply_text(NOT_A_REPLY)
        return
    better = _better_text(message.text)
    if not better:
        await message.reply_text(EMPTY_FIX)
        return
    services = context.services
    stored = await clone_reply(services, chat.id, replied.message_id)
    if stored is None:
        await message.reply_text(NOT_A_CLONE_MESSAGE)
        return
    try:
        context_turns = await prompt_of_reply(services, chat.id, stored)
    except NoAdapterError:
        await message.reply_text(NO_ADAPTER)
        return
    correction_id = await add_correction(
        services.db,
        chat.id,
        stored.turn_id,
        context_turns,
        stored.turn.text,
        better,
        datetime.now(UTC),
    )
    logger.info("stored correction %s of clone turn %s", correction_id, stored.turn_id)
    await message.reply_text(NOTED)
