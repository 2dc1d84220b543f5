"""Talking with the clone: each burst of a user's messages gets one reply, in order."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime

from telegram import Bot, Update
from telegram.constants import ChatAction
from telegram.error import TelegramError

from bot.context import CloneContext
from bot.history import history_messages
from bot.replies import reply_parts
from bot.services import Services
from storage.clone_turns import add_clone_turn, recent_clone_turns
from storage.models import CloneTurn

logger = logging.getLogger(__name__)

TYPING_RENEW_SECONDS = 4.0
"""Telegram shows 'typing…' for about 5 s per chat action."""

NO_ADAPTER_OWNER = (
    "I can't answer as you yet: no adapter has been trained. Send me your Telegram export "
    "(Settings → Advanced → Export Telegram data, JSON), then /retrain."
)
NO_ADAPTER_USER = "I can't answer yet: my owner has not trained me. Please try again later."


async def reply_as_clone(update: Update, context: CloneContext) -> None:
    """Store the message; the chat's reply follows once the user has paused."""
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
    application = context.application
    incoming = CloneTurn(chat_id=chat.id, role="user", text=message.text, date=message.date)

    async def reply(new_turns: list[CloneTurn]) -> None:
        try:
            await answer(services, context.bot, chat.id, new_turns)
        except Exception as exc:
            # A background task has no handler above it: hand the error to the app's one
            # error handler, as if it had happened in this update's handler.
            await application.process_error(update, exc)

    services.replies.add(chat.id, incoming, reply)


@contextlib.asynccontextmanager
async def typing(bot: Bot, chat_id: int) -> AsyncIterator[None]:
    """Keep 'typing…' showing in the chat while the block runs."""

    async def send() -> None:
        with contextlib.suppress(TelegramError):
            await bot.send_chat_action(chat_id, ChatAction.TYPING)

    async def renew() -> None:
        while True:
            await asyncio.sleep(TYPING_RENEW_SECONDS)
            await send()

    await send()
    task = asyncio.get_running_loop().create_task(renew())
    try:
        yield
    finally:
        task.cancel()


async def answer(services: Services, bot: Bot, chat_id: int, new_turns: list[CloneTurn]) -> None:
    """Reply to `new_turns`, with the chat's stored history within the session gap."""
    since = datetime.now(UTC) - services.settings.session_gap
    for turn in new_turns:
        await add_clone_turn(services.db, chat_id, "user", turn.text, turn.date)
    turns = await recent_clone_turns(
        services.db, chat_id, limit=services.settings.history_turns + len(new_turns), since=since
    )
    history = history_messages(turns)
    async with typing(bot, chat_id):
        reply = await services.engine.generate(history)
    if not reply:
        logger.info("empty generation in chat %s", chat_id)
        reply = "…"
    await add_clone_turn(services.db, chat_id, "assistant", reply, datetime.now(UTC))
    for part in reply_parts(reply, split_lines=services.settings.reply_split_lines):
        await bot.send_message(chat_id, part)
