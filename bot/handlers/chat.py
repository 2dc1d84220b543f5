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
from bot.engine import EngineBusyError, EnginePausedError, EngineUnavailableError
from bot.history import history_messages
from bot.services import Services
from bot.streaming import EMPTY_REPLY, ReplyActivity, ReplyStream, SentReply, send_reply
from storage.clone_turns import Exchange, add_clone_turn
from storage.models import CloneTurn

logger = logging.getLogger(__name__)

TYPING_RENEW_SECONDS = 4.0
"""Telegram shows 'typing…' for about 5 s per chat action."""
TYPING_AFTER_SECONDS = 0.3
"""Show 'typing…' only when the chat has seen nothing of the reply this long."""

NO_ADAPTER_OWNER = (
    "I can't answer as you yet: no adapter has been trained. Send me your Telegram export "
    "(Settings → Advanced → Export Telegram data, JSON), then /retrain."
)
NO_ADAPTER_USER = "I can't answer yet: my owner has not trained me. Please try again later."
LEARNING_TEXT = "I'm learning right now — back soon."
"""The answer while the engine has lent the accelerator to a training run."""
BUSY_TEXT = "Too many people are talking to me at once — please write again in a minute."
"""The answer when the engine's queue is full."""
UNAVAILABLE_TEXT = "I can't think right now (my model server is down). Please try again later."
"""The answer when ENGINE=openai cannot reach its server."""


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
    if not services.engine.has_adapter:
        is_admin = services.settings.is_admin(user.id)
        await message.reply_text(NO_ADAPTER_OWNER if is_admin else NO_ADAPTER_USER)
        return
    application = context.application
    bot = context.bot
    incoming = CloneTurn(chat_id=chat.id, role="user", text=text, date=message.date)
    private = chat.type == "private"

    async def reply(new_turns: list[CloneTurn]) -> None:
        try:
            try:
                await answer(services, bot, chat.id, new_turns, drafts=private, reply_to=reply_to)
            except EnginePausedError:
                await bot.send_message(chat.id, LEARNING_TEXT)
            except EngineBusyError:
                await bot.send_message(chat.id, BUSY_TEXT)
            except EngineUnavailableError:
                logger.warning("the model server is unavailable (chat %s)", chat.id)
                await bot.send_message(chat.id, UNAVAILABLE_TEXT)
        except Exception as exc:
            # A background task has no handler above it: hand the error to the app's one
            # error handler, as if it had happened in this update's handler.
            await application.process_error(update, exc)

    services.replies.add(chat.id, incoming, reply)


@contextlib.asynccontextmanager
async def typing(
    bot: Bot, chat_id: int, requests: asyncio.Lock, activity: ReplyActivity
) -> AsyncIterator[None]:
    """Keep 'typing…' showing in the chat while the block runs and shows nothing new.

    The first action waits `TYPING_AFTER_SECONDS`, then one is due every
    `TYPING_RENEW_SECONDS`; each is skipped when the chat saw more of the reply (a draft,
    an edit, a message: `activity`) within the last `TYPING_RENEW_SECONDS`, since the
    text shows that the clone is writing. A reply whose first piece comes quickly needs
    none, and under load those requests would delay the replies themselves. Each action
    is sent holding `requests`, the chat's one-request-at-a-time lock; the block never
    waits for it.
    """

    async def keep_typing() -> None:
        await asyncio.sleep(TYPING_AFTER_SECONDS)
        while True:
            if activity.quiet_for(TYPING_RENEW_SECONDS):
                with contextlib.suppress(TelegramError):
                    async with requests:
                        await bot.send_chat_action(chat_id, ChatAction.TYPING)
            await asyncio.sleep(TYPING_RENEW_SECONDS)

    task = asyncio.get_running_loop().create_task(keep_typing())
    try:
        yield
    finally:
        task.cancel()


async def answer(
    services: Services,
    bot: Bot,
    chat_id: int,
    new_turns: list[CloneTurn],
    *,
    drafts: bool,
    reply_to: int | None = None,
) -> SentReply:
    """Reply to `new_turns`, with the chat's stored history within the session gap.

    The reply streams (``REPLY_STREAMING``; ``drafts`` for a private chat) or is sent whole.
    The new turns and the reply are stored afterwards, the reply linked to the messages that
    carry it; the new turns are stored even when generation fails. Raises what the engine
    raises (``EnginePausedError`` while it is lent to a training run).
    """
    settings = services.settings
    since = datetime.now(UTC) - settings.session_gap
    stored = await services.history.recent(chat_id, settings.history_turns, since)
    history = history_messages([*stored, *new_turns])
    requests = asyncio.Lock()  # one Bot API request at a time in this chat
    activity = ReplyActivity()
    try:
        async with typing(bot, chat_id, requests, activity):
            if settings.reply_streaming:
                stream = ReplyStream(
                    bot,
                    chat_id,
                    drafts=drafts,
                    split_lines=settings.reply_split_lines,
                    interval=settings.stream_edit_interval,
                    reply_to=reply_to,
                    requests=requests,
                    activity=activity,
                )
                sent = await stream.run(services.engine.stream(history))
            else:
                text = await services.engine.generate(history)
                sent = await send_reply(
                    bot,
                    chat_id,
                    text,
                    split_lines=settings.reply_split_lines,
                    reply_to=reply_to,
                    requests=requests,
                    activity=activity,
                )
    except asyncio.CancelledError:
        raise  # shutting down: the database may be closed already
    except BaseException:
        await _store_user_turns(services, chat_id, new_turns)  # a failed reply keeps them
        raise
    if sent.text == EMPTY_REPLY:
        logger.info("empty generation in chat %s", chat_id)
    # Stored only now, in one transaction, so that no write delays any reply's first words.
    reply = CloneTurn(chat_id=chat_id, role="assistant", text=sent.text, date=datetime.now(UTC))
    await services.history.save(Exchange(chat_id, new_turns, reply, sent.message_ids))
    return sent


async def _store_user_turns(services: Services, chat_id: int, turns: list[CloneTurn]) -> None:
    for turn in turns:
        await add_clone_turn(services.db, chat_id, "user", turn.text, turn.date)
