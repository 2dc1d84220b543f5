"""Live Telegram messages as storage records, shaped like the ones an export import writes."""

from __future__ import annotations

from datetime import UTC, datetime

from telegram import (
    Chat,
    Message,
    MessageOriginChannel,
    MessageOriginChat,
    MessageOriginHiddenUser,
    MessageOriginUser,
)

from storage.models import ChatRecord, MessageKind, MessageRecord

MEDIA_ATTRIBUTES = (
    "photo",
    "video",
    "document",
    "audio",
    "voice",
    "video_note",
    "animation",
    "contact",
    "location",
    "venue",
    "dice",
    "game",
    "story",
)


def chat_record(chat: Chat) -> ChatRecord:
    """The chat under the export's chat-type names (personal_chat, private_supergroup, ...)."""
    if chat.type == Chat.PRIVATE:
        chat_type = "personal_chat"
    elif chat.type == Chat.GROUP:
        chat_type = "private_group"
    elif chat.type == Chat.SUPERGROUP:
        chat_type = "public_supergroup" if chat.username else "private_supergroup"
    else:
        chat_type = "public_channel" if chat.username else "private_channel"
    return ChatRecord(chat_id=chat.id, title=chat.title or chat.full_name, chat_type=chat_type)


def _forwarded_from(message: Message) -> str | None:
    origin = message.forward_origin
    if origin is None:
        return None
    if isinstance(origin, MessageOriginUser):
        return origin.sender_user.full_name
    if isinstance(origin, MessageOriginHiddenUser):
        return origin.sender_user_name
    if isinstance(origin, MessageOriginChat):
        return origin.sender_chat.title or "chat"
    if isinstance(origin, MessageOriginChannel):
        return origin.chat.title or "channel"
    return "unknown"


def text_and_kind(message: Message) -> tuple[str, MessageKind]:
    """The message's plain text and what kind of message it is."""
    text = message.text or message.caption or ""
    if message.text is not None:
        return text, "text"
    if message.sticker is not None:
        return message.sticker.emoji or "", "sticker"
    if message.poll is not None:
        return message.poll.question, "poll"
    if any(getattr(message, name, None) for name in MEDIA_ATTRIBUTES):
        return text, "text" if text else "media"
    return text, "other"


def message_record(message: Message, *, owner_id: int) -> MessageRecord:
    """One live message; `owner_id` decides whose words it is."""
    sender = message.from_user
    sender_id = sender.id if sender else (message.sender_chat.id if message.sender_chat else None)
    sender_name = (
        sender.full_name
        if sender
        else (message.sender_chat.title if message.sender_chat else None)
    )
    reply = message.reply_to_message
    text, kind = text_and_kind(message)
    date = message.date if message.date.tzinfo else message.date.replace(tzinfo=UTC)
    return MessageRecord(
        chat_id=message.chat.id,
        message_id=message.message_id,
        sender_id=sender_id,
        sender_name=sender_name,
        is_owner=sender_id == owner_id,
        date=date.astimezone(UTC),
        text=text,
        kind=kind,
        reply_to_id=reply.message_id if reply is not None else None,
        forwarded_from=_forwarded_from(message),
        via_bot=message.via_bot.username if message.via_bot else None,
        source="live",
    )


def edit_time(message: Message) -> datetime:
    """When the message was last edited (now, if Telegram did not say)."""
    edited = message.edit_date or datetime.now(UTC)
    return edited if edited.tzinfo else edited.replace(tzinfo=UTC)
