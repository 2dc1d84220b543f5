"""The owner's verdict on a clone reply: a reaction (👍 ❤ 🔥 good, 👎 💩 bad), or a label button
where Telegram does not deliver reactions (REPLY_LABEL_BUTTONS).

The label is stored with the reply and the turns it answered; taking the reaction back (or
changing it to another emoji) removes it. The next run's preference stage learns from them.
The access gate lets only the owner's reactions and presses through.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import cast

from telegram import ReactionType, ReactionTypeEmoji, Update

from bot.context import CloneContext, Services
from bot.engine.base import NoAdapterError
from bot.replies.chats import clone_reply, prompt_of_reply
from bot.telegram.const import BAD_REACTIONS, GOOD_REACTIONS, LABEL_CALLBACK_PREFIX
from storage.reply_labels import Label, LabelSource, ReplyLabel, remove_label, set_label

logger = logging.getLogger(__name__)

LABEL_NOTED: dict[Label, str] = {
    "good": "Noted: a good reply.",
    "bad": "Noted: not how you'd answer.",
}
LABEL_GONE = "That reply can no longer be labelled."


def label_of_reactions(reactions: Sequence[ReactionType]) -> Label | None:
    """The label the owner's reactions give (the last one of ours); None: none of ours."""
    for reaction in reversed(reactions):
        if not isinstance(reaction, ReactionTypeEmoji):
            continue
        if reaction.emoji in GOOD_REACTIONS:
            return "good"
        if reaction.emoji in BAD_REACTIONS:
            return "bad"
    return None


async def on_reaction(update: Update, context: CloneContext) -> None:
    """Mark the clone reply the owner reacted to good or bad, or unmark it."""
    reaction = update.message_reaction
    if reaction is None:
        return
    label = label_of_reactions(reaction.new_reaction)
    await label_reply(context.services, reaction.chat.id, reaction.message_id, label, "reaction")


async def on_label_button(update: Update, context: CloneContext) -> None:
    """Mark the clone reply under which the owner pressed 👍 or 👎."""
    query = update.callback_query
    if query is None or query.data is None:
        return
    data = query.data.removeprefix(LABEL_CALLBACK_PREFIX)
    message = query.message
    if data not in LABEL_NOTED or message is None:
        await query.answer(LABEL_GONE)
        return
    label = cast(Label, data)
    chat_id, message_id = message.chat.id, message.message_id
    stored = await label_reply(context.services, chat_id, message_id, label, "button")
    await query.answer(LABEL_NOTED[label] if stored else LABEL_GONE)


async def label_reply(
    services: Services, chat_id: int, message_id: int, label: Label | None, source: LabelSource
) -> bool:
    """Store (or, with ``label`` None, remove) the label of the clone reply that Telegram
    message carried; False when it is no clone reply (or its prompt is lost)."""
    stored = await clone_reply(services, chat_id, message_id)
    if stored is None:
        return False
    if label is None:
        await remove_label(services.db, chat_id, stored.turn_id)
        return True
    try:
        prompt = await prompt_of_reply(services, chat_id, stored)
    except NoAdapterError:
        return False  # an old reply, and no adapter to shape its prompt again with
    if not prompt or prompt[-1]["role"] != "user":
        return False
    now = datetime.now(UTC)
    reply = ReplyLabel(chat_id, stored.turn_id, label, source, prompt, stored.turn.text, now)
    await set_label(services.db, reply)
    logger.info("clone turn %s labelled %s (%s)", stored.turn_id, label, source)
    return True
