"""The one error handler: traceback to the log, a short line to the user, a note to the owner."""

from __future__ import annotations

import logging

from telegram import Update
from telegram.error import TelegramError

from bot.context import CloneContext

logger = logging.getLogger(__name__)

USER_ERROR_TEXT = "Sorry, something went wrong on my side. Please try again in a moment."


async def on_error(update: object, context: CloneContext) -> None:
    """Log the error with its traceback; never echo exception text to users."""
    error = context.error
    logger.error("error while handling an update", exc_info=error)
    if not isinstance(update, Update):
        return
    chat = update.effective_chat
    settings = context.services.settings
    try:
        if chat is not None:
            await context.bot.send_message(chat.id, USER_ERROR_TEXT)
        if chat is None or chat.id != settings.owner_id:
            await context.bot.send_message(
                settings.owner_id, f"The bot hit an error: {type(error).__name__}. See its log."
            )
    except TelegramError:
        logger.warning("could not report the error to the chat", exc_info=True)
