"""Replies in chats with the clone (private chats, and groups where it talks): the chat's
history in, the reply out through the one pipeline, the exchange stored with the turns it
answered (what /fix, reactions and the preference stage learn from)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import UTC, datetime

from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup
from telegram.error import BadRequest

from bot.context import Services
from bot.replies.pipeline import CUT_NOTICE, Delivery, answer, failure_text
from bot.telegram.const import LABEL_CALLBACK_PREFIX
from storage.clone_turns import Exchange, prompt_of_turn, turn_for_message, turns_before
from storage.corrections import ContextTurn
from storage.db import Database
from storage.messages import recent_chat_messages
from storage.models import CloneTurn, MessageRecord, StoredCloneTurn
from training.chat_format import ChatMessage
from training.turns import is_group

logger = logging.getLogger(__name__)

HISTORY_READ_LIMIT = 200
"""Stored messages read per reply at most; the turn shaper keeps what fits the prompt."""
_EPOCH = datetime.fromtimestamp(0, UTC)


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
    records = await chat_records(services.db, chat_id, [*stored, *new_turns])
    try:
        answered = await answer(services.engine, bot, records, delivery, db=services.db)
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
    prompt = context_of(answered.turns)
    await services.history.save(Exchange(chat_id, new_turns, reply, sent.message_ids, prompt))
    if answered.cut:
        await bot.send_message(chat_id, CUT_NOTICE)
    if settings.reply_label_buttons and is_admin and sent.message_ids:
        await offer_labels(bot, chat_id, sent.message_ids[-1])


def context_of(messages: Sequence[ChatMessage]) -> list[ContextTurn]:
    """A reply's prompt as storage keeps it: its system message (memory block included) and
    its shaped turns."""
    return [{"role": m["role"], "content": m["content"]} for m in messages]


async def clone_reply(services: Services, chat_id: int, message_id: int) -> StoredCloneTurn | None:
    """The clone reply that Telegram message carried (None: no clone reply), looked up once
    the chat's reply in progress is stored: the owner may react to it at once."""
    await services.replies.settled(chat_id)
    await services.history.committed(chat_id)
    stored = await turn_for_message(services.db, chat_id, message_id)
    return stored if stored is not None and stored.turn.role == "assistant" else None


async def prompt_of_reply(
    services: Services, chat_id: int, stored: StoredCloneTurn
) -> list[ContextTurn]:
    """The turns a clone reply answered, as the clone saw them.

    Kept with the reply since it was sent; for a reply sent before that, the chat's turns
    before it are shaped again with the serving adapter's rules (NoAdapterError when none
    serves). Empty when nothing of it is left to answer.
    """
    kept = await prompt_of_turn(services.db, stored.turn_id)
    if kept is not None:
        return kept
    before = await turns_before(services.db, chat_id, stored.turn_id, limit=HISTORY_READ_LIMIT)
    prompts = await services.engine.prompts()
    records = await chat_records(services.db, chat_id, before)
    shaped = prompts.turns(records, now=stored.turn.date)
    return context_of(shaped.messages) if shaped is not None else []


async def offer_labels(bot: Bot, chat_id: int, message_id: int) -> None:
    """Put the 👍/👎 label buttons under a clone reply (REPLY_LABEL_BUTTONS)."""
    buttons = [
        InlineKeyboardButton(text, callback_data=f"{LABEL_CALLBACK_PREFIX}{label}")
        for text, label in (("👍", "good"), ("👎", "bad"))
    ]
    try:
        await bot.edit_message_reply_markup(
            chat_id, message_id, reply_markup=InlineKeyboardMarkup([buttons])
        )
    except BadRequest:  # the reply was deleted meanwhile: nothing to label
        logger.info("no label buttons in chat %s: the reply is gone", chat_id)


async def chat_records(db: Database, chat_id: int, turns: list[CloneTurn]) -> list[MessageRecord]:
    """A chat's turns with the clone as the turn shaper reads messages, oldest first.

    In a group whose messages are collected, the group's stored messages up to the last turn
    (what training sees) come with them; a turn that is also a stored message is taken once,
    as stored.
    """
    records = [turn.as_record() for turn in turns]
    if not is_group(chat_id) or not records:
        return records
    corpus = await recent_chat_messages(db, chat_id, _EPOCH, HISTORY_READ_LIMIT)
    until = records[-1].date
    collected = [record for record in corpus if record.date <= until]
    ids = {record.message_id for record in collected}
    clone_only = [r for r in records if r.is_owner or r.message_id not in ids]
    return sorted([*collected, *clone_only], key=lambda r: (r.date, r.message_id))


async def _store_user_turns(services: Services, turns: list[CloneTurn]) -> None:
    await services.history.save(Exchange(turns[0].chat_id, turns, None, []))
