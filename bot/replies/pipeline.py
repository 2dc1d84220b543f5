"""One reply pipeline for every way the clone answers: chat, group talk, Business auto-reply.

stored messages → turns (the serving adapter's turn shaper, ``PromptBuilder.turns``) → the
system message with the memory block (``PromptBuilder.with_memory``) → engine → Telegram
(streamed or whole, with 'typing…' while nothing shows) → the caller stores the exchange.
``failure_text`` is the one place where engine errors become words for a user.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from telegram import Bot
from telegram.constants import ChatAction
from telegram.error import TelegramError

from bot.engine.base import (
    EngineBusyError,
    EnginePausedError,
    EngineUnavailableError,
    NoAdapterError,
    ReplyEngine,
)
from bot.replies.streaming import EMPTY_REPLY, ReplyActivity, ReplyStream, SentReply, send_reply
from storage.db import Database
from storage.models import MessageRecord
from training.chat_format import ChatMessage

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
"""The answer while a training run (or the judging of its adapter) is on."""
BUSY_TEXT = "Too many people are talking to me at once — please write again in a minute."
"""The answer when the engine's queue is full."""
UNAVAILABLE_TEXT = "I can't think right now (my model server is down). Please try again later."
"""The answer when ENGINE=openai cannot reach its server."""
CUT_NOTICE = "That was too long for me to read whole: I answered its end."
"""Told once per chat when the incoming messages had to be cut to fit the prompt."""


def failure_text(exc: BaseException, *, is_admin: bool, learning: bool) -> str | None:
    """What a user hears when their reply failed for ``exc``; None: not an engine failure.

    ``learning``: a training run is on, so a missing adapter is coming, not forgotten.
    """
    if isinstance(exc, EnginePausedError) or (isinstance(exc, NoAdapterError) and learning):
        return LEARNING_TEXT
    if isinstance(exc, NoAdapterError):
        return NO_ADAPTER_OWNER if is_admin else NO_ADAPTER_USER
    if isinstance(exc, EngineBusyError):
        return BUSY_TEXT
    if isinstance(exc, EngineUnavailableError):
        logger.warning("the model server is unavailable: %s", type(exc).__name__)
        return UNAVAILABLE_TEXT
    return None


@dataclass(frozen=True)
class Delivery:
    """Where a reply goes and how it is shown."""

    chat_id: int
    streaming: bool
    """Show the reply while it is generated (a draft or an edited message)."""
    drafts: bool
    """Stream as a draft (private chats) rather than as an edited message."""
    split_lines: bool
    """One message per line of the reply, as the owner writes."""
    interval: float = 1.0
    """Least seconds between two updates of a streaming reply."""
    reply_to: int | None = None
    """The message the reply answers (groups quote it; the turn shaper sees it too)."""
    business_connection_id: str | None = None
    """Send as the owner through this Telegram Business connection."""


@dataclass(frozen=True)
class Answered:
    """A reply that went out: the turns it answered and the messages that carry it."""

    turns: list[ChatMessage]
    """The prompt's messages, its system message (with the memory block) first."""
    sent: SentReply
    cut: bool
    """The incoming turn was cut to fit the prompt (see ``CUT_NOTICE``)."""


@contextlib.asynccontextmanager
async def typing(
    bot: Bot, delivery: Delivery, requests: asyncio.Lock, activity: ReplyActivity
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
                        await bot.send_chat_action(
                            delivery.chat_id,
                            ChatAction.TYPING,
                            business_connection_id=delivery.business_connection_id,
                        )
            await asyncio.sleep(TYPING_RENEW_SECONDS)

    task = asyncio.get_running_loop().create_task(keep_typing())
    try:
        yield
    finally:
        task.cancel()


async def answer(
    engine: ReplyEngine,
    bot: Bot,
    records: Sequence[MessageRecord],
    delivery: Delivery,
    *,
    db: Database,
    now: datetime | None = None,
) -> Answered | None:
    """Reply in one chat to its newest messages, given the chat's stored history.

    Args:
        records: the chat's messages oldest first, the new ones last: the owner's (and the
            clone's) as ``is_owner``, everyone else's as the other side.
        db: where the memory block's search looks (the owner's messages).
        now: when the reply is written (default: now).

    Returns None, sending nothing, when there is nothing to answer (the owner spoke last, or
    nothing of the new messages survives the turn shaper), or when a reply sent as the owner
    came out blank. Raises what the engine raises
    (``failure_text`` words it); nothing is stored here.
    """
    prompts = await engine.prompts()
    shaped = prompts.turns(records, now=now or datetime.now(UTC), reply_to=delivery.reply_to)
    if shaped is None:
        return None
    history = await prompts.with_memory(shaped, db)
    requests = asyncio.Lock()  # one Bot API request at a time in this chat
    activity = ReplyActivity()
    async with typing(bot, delivery, requests, activity):
        if delivery.streaming:
            stream = ReplyStream(
                bot,
                delivery.chat_id,
                drafts=delivery.drafts,
                split_lines=delivery.split_lines,
                interval=delivery.interval,
                reply_to=delivery.reply_to,
                requests=requests,
                activity=activity,
            )
            sent = await stream.run(engine.stream(history))
        else:
            text = await engine.generate(history)
            if not text.strip() and delivery.business_connection_id is not None:
                logger.info("empty generation in chat %s: nothing sent", delivery.chat_id)
                return None  # as the owner, saying nothing beats a placeholder
            sent = await send_reply(
                bot,
                delivery.chat_id,
                text,
                split_lines=delivery.split_lines,
                reply_to=delivery.reply_to,
                requests=requests,
                activity=activity,
                business_connection_id=delivery.business_connection_id,
            )
    if sent.text == EMPTY_REPLY:
        logger.info("empty generation in chat %s", delivery.chat_id)
    return Answered(history, sent, shaped.cut)
