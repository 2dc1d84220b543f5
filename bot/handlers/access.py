"""The access gate: one early handler decides who may do what; later handlers never check ids."""

from __future__ import annotations

import logging

from telegram import Update
from telegram.ext import ApplicationHandlerStop

from bot.const import OWNER_COMMANDS
from bot.context import CloneContext

logger = logging.getLogger(__name__)

REFUSE_OWNER_ONLY = "Sorry, only the owner of this clone can do that."
REFUSE_STRANGER = (
    "Sorry, this is a private clone of its owner and it only talks to people the owner "
    "has allowed. Ask the owner to add your Telegram id."
)


def _command_name(update: Update) -> str | None:
    message = update.effective_message
    if message is None or not message.text or not message.text.startswith("/"):
        return None
    return message.text[1:].split(maxsplit=1)[0].split("@", 1)[0].lower()


def _is_owner_only(update: Update) -> bool:
    if update.callback_query is not None:
        return True  # every button the bot shows belongs to an owner command
    message = update.effective_message
    if message is not None and message.document is not None:
        return True
    return _command_name(update) in OWNER_COMMANDS


async def gate(update: Update, context: CloneContext) -> None:
    """Let the owner through; let allowed users chat; refuse everyone else and stop."""
    settings = context.services.settings
    user = update.effective_user
    if user is None:
        raise ApplicationHandlerStop
    if user.id == settings.owner_id:
        return
    message = update.effective_message
    if _is_owner_only(update):
        logger.info("refused owner-only action to user %s", user.id)
        if update.callback_query is not None:
            await update.callback_query.answer(REFUSE_OWNER_ONLY, show_alert=True)
        elif message is not None:
            await message.reply_text(REFUSE_OWNER_ONLY)
        raise ApplicationHandlerStop
    if user.id in settings.allowed_user_ids:
        return
    logger.info("refused user %s", user.id)
    if message is not None and update.effective_chat and update.effective_chat.type == "private":
        await message.reply_text(REFUSE_STRANGER)
    raise ApplicationHandlerStop
