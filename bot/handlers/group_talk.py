"""The clone in groups: the owner's /talk on|off, and answers when mentioned or replied to."""

from __future__ import annotations

import re

from telegram import Message, MessageEntity, Update

from bot.context import CloneContext
from bot.handlers.chat import queue_reply
from storage.group_talk import group_talk_enabled, set_group_talk

TALK_USAGE = (
    "Use /talk on (or off) inside a group, to let me answer there when someone mentions me "
    "or replies to one of my messages."
)
TALK_ON = "I'll answer here when someone mentions me or replies to one of my messages."
TALK_OFF = "I stopped answering in this group."

GROUP_TYPES = frozenset({"group", "supergroup"})


async def talk(update: Update, context: CloneContext) -> None:
    """Let the clone answer in this group (when mentioned or replied to), or stop it."""
    message = update.effective_message
    chat = update.effective_chat
    if message is None or chat is None:
        return
    args = [arg.lower() for arg in context.args or []]
    if chat.type not in GROUP_TYPES or args not in (["on"], ["off"]):
        await message.reply_text(TALK_USAGE)
        return
    enabled = args == ["on"]
    await set_group_talk(context.services.db, chat.id, enabled)
    await message.reply_text(TALK_ON if enabled else TALK_OFF)


def addressed_text(message: Message, bot_id: int, bot_username: str | None) -> str | None:
    """The text of a message meant for the bot, without the bot's mention; None if not meant.

    A message is meant for the bot when it mentions it (``@username`` or a ``text_mention``
    of the bot) or replies to one of its messages.
    """
    if not message.text:
        return None
    own_mentions = [
        entity
        for entity, value in message.parse_entities(
            [MessageEntity.MENTION, MessageEntity.TEXT_MENTION]
        ).items()
        if (entity.type == MessageEntity.TEXT_MENTION and entity.user and entity.user.id == bot_id)
        or (
            entity.type == MessageEntity.MENTION
            and bot_username is not None
            and value.lower() == f"@{bot_username.lower()}"
        )
    ]
    replied = message.reply_to_message
    is_reply = (
        replied is not None and replied.from_user is not None and (replied.from_user.id == bot_id)
    )
    if not own_mentions and not is_reply:
        return None
    # Entity offsets count UTF-16 code units; cut the mentions out from the end backwards.
    units = message.text.encode("utf-16-le")
    for entity in sorted(own_mentions, key=lambda e: e.offset, reverse=True):
        units = units[: entity.offset * 2] + units[(entity.offset + entity.length) * 2 :]
    return re.sub(r"[ \t]{2,}", " ", units.decode("utf-16-le")).strip()


async def reply_in_group(update: Update, context: CloneContext) -> None:
    """Answer a message that mentions or replies to the clone, in groups the owner enabled."""
    message = update.effective_message
    chat = update.effective_chat
    if message is None or chat is None:
        return
    text = addressed_text(message, context.bot.id, context.bot.username)
    if not text or not await group_talk_enabled(context.services.db, chat.id):
        return
    await queue_reply(update, context, text, reply_to=message.message_id)
