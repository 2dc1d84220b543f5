"""The one error handler: traceback to the log, a short line to the user, a note to the owner.

Neither the log nor the owner's note carries message text. Exception messages may quote it
(a library error echoing its input), so they appear only for our own exception classes and
Telegram's errors (whose texts come from the Bot API); other errors are named by type alone.
Nor do they carry the bot token (or another secret of the settings): it is taken out of both.
"""

from __future__ import annotations

import logging
import traceback
from pathlib import Path

from telegram import Update
from telegram.error import TelegramError

from bot.context import SERVICES_KEY, CloneContext, Services
from bot.process.logs import redact

logger = logging.getLogger(__name__)

USER_ERROR_TEXT = "Sorry, something went wrong on my side. Please try again in a moment."

PROJECT_ROOT = Path(__file__).resolve().parents[2]
OUR_PACKAGES = ("bot", "storage", "training")
OWNER_NOTE_FRAMES = 4
"""Frames of our own code in the owner's note, the innermost last."""


def _is_ours(filename: str) -> bool:
    path = Path(filename).resolve()
    return path.is_relative_to(PROJECT_ROOT) and "site-packages" not in path.parts


def _where(filename: str) -> str:
    path = Path(filename).resolve()
    return str(path.relative_to(PROJECT_ROOT)) if path.is_relative_to(PROJECT_ROOT) else filename


def safe_summary(error: BaseException) -> str:
    """The exception's type, and its message only where it cannot hold message text."""
    name = type(error).__name__
    module = type(error).__module__.split(".", 1)[0]
    if module in OUR_PACKAGES or isinstance(error, TelegramError):
        text = str(error).strip()
        return f"{name}: {text}" if text else name
    return name


def _chain(error: BaseException) -> list[BaseException]:
    """The error and what caused it, innermost cause first (as Python prints them)."""
    chain: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or (
            None if current.__suppress_context__ else current.__context__
        )
    return chain[::-1]


def traceback_text(error: BaseException) -> str:
    """The full traceback, every frame with its source line, without unsafe messages."""
    blocks = []
    for link in _chain(error):
        frames = traceback.extract_tb(link.__traceback__)
        lines = "".join(traceback.format_list(frames))
        blocks.append(f"Traceback (most recent call last):\n{lines}{safe_summary(link)}")
    return "\n\nwhich led to:\n\n".join(blocks)


def condensed_traceback(error: BaseException, frames: int = OWNER_NOTE_FRAMES) -> str:
    """The error's type and the last few frames of our code as ``file:line in function``."""
    ours = [
        f"{_where(frame.filename)}:{frame.lineno} in {frame.name}"
        for frame in traceback.extract_tb(error.__traceback__)
        if _is_ours(frame.filename)
    ]
    lines = [safe_summary(error), *ours[-frames:]]
    causes = _chain(error)[:-1]
    if causes:
        lines.append("caused by " + " ← ".join(type(cause).__name__ for cause in causes[::-1]))
    return "\n".join(lines)


def _secrets(context: CloneContext) -> tuple[str, ...]:
    """The bot's token, and the settings' other secrets once the services run."""
    services = context.application.bot_data.get(SERVICES_KEY)
    more = services.settings.secrets() if isinstance(services, Services) else ()
    return (context.bot.token, *more)


async def on_error(update: object, context: CloneContext) -> None:
    """Log the traceback; tell the chat in one line and the owner in a few."""
    error = context.error
    if error is None:
        return
    secrets = _secrets(context)
    logger.error("error while handling an update\n%s", redact(traceback_text(error), secrets))
    if not isinstance(update, Update):
        return
    chat = update.effective_chat
    settings = context.services.settings
    note = redact(condensed_traceback(error), secrets)
    try:
        if chat is not None:
            await context.bot.send_message(chat.id, USER_ERROR_TEXT)
        where = f" in chat {chat.id}" if chat is not None else ""
        await context.bot.send_message(settings.owner_id, f"The bot hit an error{where}:\n{note}")
    except TelegramError:
        logger.warning("could not report the error to the chat", exc_info=True)
