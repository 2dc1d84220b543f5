"""One Telegram Desktop export message (a JSON object) → one :class:`MessageRecord`.

The shapes differ by era (checked against exports from 2020 to 2025):

* ``from_id`` / ``actor_id``: an integer (2020 era) or ``"user123"``, ``"channel123"``,
  ``"chat123"`` (2021 on);
* ``date_unixtime`` (2021 on) or only ``date``, a local time without zone (older);
* ``text``: a string, or a list of strings and ``{"type": ..., "text": ...}`` entities.

Ids are mapped to the Bot API convention, so export rows and live rows meet: users keep
their positive id, basic groups are ``-id``, supergroups and channels ``-(10**12 + id)``
(the familiar ``-100`` prefix).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, tzinfo
from typing import Any

from storage.models import MessageKind, MessageRecord

logger = logging.getLogger(__name__)

CHANNEL_ID_OFFSET = 1_000_000_000_000
"""Bot API channel/supergroup ids are ``-(CHANNEL_ID_OFFSET + id)``: -100 then the id."""

USER_CHAT_TYPES = frozenset({"personal_chat", "bot_chat", "saved_messages"})
GROUP_CHAT_TYPES = frozenset({"private_group"})
CHANNEL_CHAT_TYPES = frozenset(
    {"private_supergroup", "public_supergroup", "private_channel", "public_channel"}
)
CALL_ACTIONS = frozenset({"phone_call", "group_call"})
MEDIA_KEYS = ("media_type", "photo", "file")
HIDDEN_FORWARD = "(hidden)"

SKIP_REASONS = ("service", "media_only", "forwarded", "via_bot", "empty")


def bot_api_chat_id(export_id: int, chat_type: str) -> int:
    """The Bot API id of an export chat (``id`` and ``type`` of a chat in the export)."""
    if chat_type in GROUP_CHAT_TYPES:
        return -export_id
    if chat_type in CHANNEL_CHAT_TYPES or "supergroup" in chat_type or "channel" in chat_type:
        return -(CHANNEL_ID_OFFSET + export_id)
    if chat_type not in USER_CHAT_TYPES:
        logger.warning("Unknown export chat type %r: keeping its id as is", chat_type)
    return export_id


def peer_id(value: object) -> int | None:
    """Bot API id of a ``from_id``/``actor_id``: ``"user1"`` → 1, ``"chat1"`` → -1,
    ``"channel1"`` → -1000000000001, an integer (2020 era) → itself, anything else → None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if not isinstance(value, str):
        return None
    digits = value.lstrip("abcdefghijklmnopqrstuvwxyz")
    prefix = value[: len(value) - len(digits)]
    if prefix and digits.isdigit():
        number = int(digits)
        if prefix == "user":
            return number
        if prefix == "channel":
            return -(CHANNEL_ID_OFFSET + number)
        if prefix == "chat":
            return -number
        return None
    return int(value) if value.lstrip("-").isdigit() else None


def join_text(value: object) -> str:
    """Plain text of a ``text`` field: a string, or strings and entities joined exactly."""
    if isinstance(value, str):
        return value
    if not isinstance(value, list):
        return ""
    parts: list[str] = []
    for segment in value:
        if isinstance(segment, str):
            parts.append(segment)
        elif isinstance(segment, dict) and isinstance(segment.get("text"), str):
            parts.append(segment["text"])
    return "".join(parts)


def message_date(raw: dict[str, Any], local_tz: tzinfo = UTC) -> datetime | None:
    """UTC date of a message: ``date_unixtime`` if present, else ``date`` read in ``local_tz``."""
    unix = raw.get("date_unixtime")
    if isinstance(unix, int | str) and str(unix).lstrip("-").isdigit():
        return datetime.fromtimestamp(int(unix), UTC)
    text = raw.get("date")
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=local_tz)
    return moment.astimezone(UTC)


def message_kind(raw: dict[str, Any], text: str) -> MessageKind:
    """What kind of message this is; only ``text`` and ``sticker`` can give training text."""
    if raw.get("type") == "service":
        return "call" if raw.get("action") in CALL_ACTIONS else "service"
    media_type = raw.get("media_type")
    if media_type == "sticker":
        return "sticker"
    if media_type in CALL_ACTIONS:
        return "call"
    if "poll" in raw:
        return "poll"
    has_media = any(raw.get(key) is not None for key in MEDIA_KEYS)
    if has_media and not text.strip():
        return "media"
    return "text"


def to_message_record(
    raw: dict[str, Any], chat_id: int, owner_id: int, local_tz: tzinfo = UTC
) -> MessageRecord | None:
    """The record of one export message, or None when it has no usable id or date."""
    message_id = raw.get("id")
    date = message_date(raw, local_tz)
    if not isinstance(message_id, int) or isinstance(message_id, bool) or date is None:
        return None
    is_service = raw.get("type") == "service"
    sender_id = peer_id(raw.get("actor_id") if is_service else raw.get("from_id"))
    sender_name = raw.get("actor") if is_service else raw.get("from")
    text = join_text(raw.get("text"))
    kind = message_kind(raw, text)
    if kind == "sticker":
        text = _string(raw.get("sticker_emoji")) or text
    elif kind == "poll" and not text:
        poll = raw.get("poll")
        text = _string(poll.get("question")) if isinstance(poll, dict) else ""
    reply_to = raw.get("reply_to_message_id")
    if "reply_to_peer_id" in raw or not isinstance(reply_to, int):
        reply_to = None  # a reply to another chat's message cannot be followed here
    forwarded_from: str | None = None
    if "forwarded_from" in raw:
        forwarded_from = _string(raw["forwarded_from"]) or HIDDEN_FORWARD
    via_bot = _string(raw.get("via_bot")) or None
    return MessageRecord(
        chat_id=chat_id,
        message_id=message_id,
        sender_id=sender_id,
        sender_name=sender_name if isinstance(sender_name, str) else None,
        is_owner=sender_id is not None and sender_id == owner_id,
        date=date,
        text=text,
        kind=kind,
        reply_to_id=reply_to,
        forwarded_from=forwarded_from,
        via_bot=via_bot,
        source="export",
    )


def training_skip_reason(message: MessageRecord) -> str | None:
    """Why a stored message gives no training text (one of SKIP_REASONS), or None."""
    if message.kind in ("service", "call"):
        return "service"
    if message.kind not in ("text", "sticker"):
        return "media_only"
    if message.forwarded_from is not None:
        return "forwarded"
    if message.via_bot is not None:
        return "via_bot"
    if not message.text.strip():
        return "empty"
    return None


def _string(value: object) -> str:
    return value if isinstance(value, str) else ""
