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

import functools
import logging
from datetime import UTC, datetime, tzinfo
from typing import Any, cast

from storage.export_text import utf8
from storage.models import MessageKind, MessageRecord

logger = logging.getLogger(__name__)

CHANNEL_ID_OFFSET = 1_000_000_000_000
"""Bot API channel/supergroup ids are ``-(CHANNEL_ID_OFFSET + id)``: -100 then the id."""

USER_CHAT_TYPES = frozenset({"personal_chat", "bot_chat", "saved_messages"})
GROUP_CHAT_TYPES = frozenset({"private_group"})
CHANNEL_CHAT_TYPES = frozenset(
    {"private_supergroup", "public_supergroup", "private_channel", "public_channel"}
)
CALL_ACTIONS = ("phone_call", "group_call")
"""A tuple, not a set: a list or an object in ``action`` must compare unequal, not fail to
hash."""
MEDIA_KEYS = ("media_type", "photo", "file")
HIDDEN_FORWARD = "(hidden)"

SKIP_REASONS = ("service", "media_only", "forwarded", "via_bot", "empty")
_ABSENT: Any = object()

ID_LIMIT = 10**15
"""Ids of messages, users and chats have an absolute value below this. Telegram's stay below
2**52; the limit keeps an export's ids clear of SQLite's 64 bits and of the HTML reader's
synthetic ids (at least 2**60)."""
ID_DIGITS = len(str(ID_LIMIT)) - 1
EXPECTED_ID = f"an integer of at most {ID_DIGITS} digits"
DATE_MIN = 0
DATE_LIMIT = 4_102_444_800
"""Dates are unix seconds in [DATE_MIN, DATE_LIMIT): from 1970 to the end of 2099."""
DATE_DIGITS = len(str(DATE_LIMIT))
EXPECTED_DATE = "a date between 1970 and 2099"


class BadValue(Exception):
    """A value of one message that no export holds: the parser adds the chat and message."""

    def __init__(self, field: str, value: object, expected: str) -> None:
        super().__init__(field)
        self.field = field
        self.value = value
        self.expected = expected


def bot_api_chat_id(export_id: int, chat_type: str) -> int:
    """The Bot API id of an export chat (``id`` and ``type`` of a chat in the export)."""
    if chat_type in GROUP_CHAT_TYPES:
        return -export_id
    if chat_type in CHANNEL_CHAT_TYPES or "supergroup" in chat_type or "channel" in chat_type:
        return -(CHANNEL_ID_OFFSET + export_id)
    if chat_type not in USER_CHAT_TYPES:
        logger.warning("Unknown export chat type %.60r: keeping its id as is", chat_type)
    return export_id


def peer_id(value: object, field: str = "from_id") -> int | None:
    """Bot API id of a ``from_id``/``actor_id``: ``"user1"`` → 1, ``"chat1"`` → -1,
    ``"channel1"`` → -1000000000001, an integer (2020 era) → itself, anything else → None.

    Raises BadValue (naming ``field``) for an id of more than ID_DIGITS digits.
    """
    if type(value) is int:  # not a bool
        if not -ID_LIMIT < value < ID_LIMIT:
            raise BadValue(field, value, EXPECTED_ID)
        return value
    if not isinstance(value, str):
        return None
    digits = value.lstrip("abcdefghijklmnopqrstuvwxyz")
    prefix = value[: len(value) - len(digits)]
    sign = -1 if not prefix and digits.startswith("-") else 1
    if sign < 0:
        digits = digits[1:]
    if not digits.isdecimal():  # not isdigit(): "²" is a digit that int() refuses
        return None
    if len(digits) > ID_DIGITS:
        raise BadValue(field, value, EXPECTED_ID)
    number = int(digits)
    if prefix == "user":
        return number
    if prefix == "channel":
        return -(CHANNEL_ID_OFFSET + number)
    if prefix == "chat":
        return -number
    return sign * number if not prefix else None


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
    """UTC date of a message: ``date_unixtime`` if present, else ``date`` read in ``local_tz``.

    None when neither is a date; raises BadValue for a date outside 1970-2099.
    """
    unix = raw.get("date_unixtime")
    if isinstance(unix, int | str) and str(unix).removeprefix("-").isdecimal():
        if len(str(unix)) > DATE_DIGITS or not DATE_MIN <= int(unix) < DATE_LIMIT:
            raise BadValue("date_unixtime", unix, EXPECTED_DATE)
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
    try:
        utc = moment.astimezone(UTC)
    except OverflowError:  # the first or the last day of year 1 or 9999, moved by the zone
        raise BadValue("date", moment, EXPECTED_DATE) from None
    if not DATE_MIN <= utc.timestamp() < DATE_LIMIT:
        raise BadValue("date", utc, EXPECTED_DATE)
    return utc


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
    # The MEDIA_KEYS, spelled out: a generator here cost more than the rest of the function.
    has_media = (
        media_type is not None or raw.get("photo") is not None or raw.get("file") is not None
    )
    if has_media and not text.strip():
        return "media"
    return "text"


MessageRow = tuple[
    int, int, int | None, str | None, int, int, str, str, int | None, str | None, str | None
]
"""An export message as stored: chat_id, message_id, sender_id, sender_name, is_owner (0/1),
date_utc (unix seconds), text, kind, reply_to_id, forwarded_from, via_bot."""


def to_message_row(
    raw: dict[str, Any],
    chat_id: int,
    owner_id: int,
    local_tz: tzinfo = UTC,
    *,
    latin1: bool = False,
) -> MessageRow | None:
    """The stored row of one export message, or None when it has no usable id or date.

    This runs once per message of every import, so the common shapes (``date_unixtime``,
    ``"user123"`` senders, string text) take short paths; everything else goes through the
    general functions above.

    With ``latin1``, the strings of ``raw`` are UTF-8 bytes read as Latin-1 (how the export
    parser reads; see :mod:`storage.export_text`): each string that counts is made text
    before it is looked at, so the row is the same as for the decoded object. Raises
    UnicodeDecodeError when one of them is not UTF-8, and :class:`BadValue` for an id or a
    date that no export holds (a wrong type instead is ignored, as a missing key is).
    """
    get = raw.get
    message_id = get("id")
    if type(message_id) is not int:  # also refuses bool, a subclass of int
        return None
    if not -ID_LIMIT < message_id < ID_LIMIT:
        raise BadValue("id", message_id, EXPECTED_ID)
    unix = get("date_unixtime")
    # No Latin-1 character is a decimal digit; the length keeps int() from a huge number.
    if type(unix) is str and unix.isdecimal() and len(unix) <= DATE_DIGITS:
        date = int(unix)
        if date >= DATE_LIMIT:
            raise BadValue("date_unixtime", unix, EXPECTED_DATE)
    else:
        dated = _with_text(raw, ("date_unixtime", "date")) if latin1 else raw
        moment = message_date(dated, local_tz)
        if moment is None:
            return None
        date = int(moment.timestamp())
    is_service = get("type") == "service"
    peer = get("actor_id") if is_service else get("from_id")
    sender_id: int | None
    if type(peer) is str and (sender_id := _USER_PEERS.get(peer)) is not None:
        pass  # a sender seen before: one lookup instead of parsing "user123"
    elif type(peer) is str and peer.startswith("user") and peer[4:].isdecimal():
        sender_id = peer_id(peer, "actor_id" if is_service else "from_id")
        if sender_id is not None and len(_USER_PEERS) < USER_PEERS_MAX:
            _USER_PEERS[peer] = sender_id
    else:
        peer = utf8(peer) if latin1 and type(peer) is str else peer
        sender_id = peer_id(peer, "actor_id" if is_service else "from_id")
    sender_name = get("actor") if is_service else get("from")
    if type(sender_name) is str:
        if latin1 and not sender_name.isascii():
            sender_name = _name_text(sender_name)
    else:
        sender_name = None
    text = get("text")
    if type(text) is not str:
        text = join_text(text)  # joined as bytes, then decoded: the same text
    if latin1 and not text.isascii():
        text = text.encode("latin-1").decode("utf-8")  # utf8(), inlined: once per message
    # Only ASCII values of these keys count, and those read the same as Latin-1.
    if is_service or "media_type" in raw or "photo" in raw or "file" in raw or "poll" in raw:
        kind = message_kind(raw, text)
    else:
        kind = "text"  # what message_kind says for a message with none of those keys
    if kind == "sticker":
        text = _string(get("sticker_emoji"), latin1) or text
    elif kind == "poll" and not text:
        poll = get("poll")
        text = _string(poll.get("question"), latin1) if isinstance(poll, dict) else ""
    reply_to = get("reply_to_message_id")
    if reply_to is not None:
        if "reply_to_peer_id" in raw or type(reply_to) is not int:
            reply_to = None  # a reply to another chat's message cannot be followed here
        elif not -ID_LIMIT < reply_to < ID_LIMIT:
            raise BadValue("reply_to_message_id", reply_to, EXPECTED_ID)
    forwarded_from = get("forwarded_from", _ABSENT)
    if forwarded_from is not _ABSENT:
        forwarded_from = _string(forwarded_from, latin1) or HIDDEN_FORWARD
    via_bot = get("via_bot")
    return (
        chat_id,
        message_id,
        sender_id,
        sender_name,
        sender_id == owner_id,  # a bool is an int: SQLite stores 1 or 0
        date,
        text,
        kind,
        reply_to,
        None if forwarded_from is _ABSENT else forwarded_from,
        (_string(via_bot, latin1) or None) if via_bot is not None else None,
    )


def to_message_record(
    raw: dict[str, Any], chat_id: int, owner_id: int, local_tz: tzinfo = UTC
) -> MessageRecord | None:
    """The record of one export message, or None when it has no usable id or date."""
    row = to_message_row(raw, chat_id, owner_id, local_tz)
    return None if row is None else row_to_record(row)


def row_to_record(row: MessageRow) -> MessageRecord:
    """The :class:`MessageRecord` of a stored export row."""
    return MessageRecord(
        chat_id=row[0],
        message_id=row[1],
        sender_id=row[2],
        sender_name=row[3],
        is_owner=bool(row[4]),
        date=datetime.fromtimestamp(row[5], UTC),
        text=row[6],
        kind=cast(MessageKind, row[7]),
        reply_to_id=row[8],
        forwarded_from=row[9],
        via_bot=row[10],
        source="export",
    )


def record_to_row(record: MessageRecord) -> MessageRow:
    """The row of a :class:`MessageRecord` (the inverse of :func:`row_to_record`)."""
    return (
        record.chat_id,
        record.message_id,
        record.sender_id,
        record.sender_name,
        int(record.is_owner),
        int(record.date.timestamp()),
        record.text,
        record.kind,
        record.reply_to_id,
        record.forwarded_from,
        record.via_bot,
    )


def skip_reason(
    kind: str, text: str, forwarded_from: str | None, via_bot: str | None
) -> str | None:
    """Why a message gives no training text (one of SKIP_REASONS), or None."""
    if kind == "text" or kind == "sticker":
        if forwarded_from is not None:
            return "forwarded"
        if via_bot is not None:
            return "via_bot"
        return None if text.strip() else "empty"
    return "service" if kind in ("service", "call") else "media_only"


def training_skip_reason(message: MessageRecord) -> str | None:
    """Why a stored message gives no training text (one of SKIP_REASONS), or None."""
    return skip_reason(message.kind, message.text, message.forwarded_from, message.via_bot)


_USER_PEERS: dict[str, int] = {}
"""``"user123"`` -> 123 for the senders met so far: a chat has few, each writes many messages.
A lookup is cheaper than parsing the id (conversion of 1M messages: 1.91 s instead of
2.16 s); bounded by USER_PEERS_MAX, then it stops growing."""
USER_PEERS_MAX = 100_000

_name_text = functools.lru_cache(maxsize=4_096)(utf8)
"""utf8() of senders' names: a chat has few, and a cache hit costs less than decoding."""


def _string(value: object, latin1: bool = False) -> str:
    if not isinstance(value, str):
        return ""
    return utf8(value) if latin1 else value


def _with_text(raw: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    """``raw`` with the strings of ``keys`` made text (for the rare paths that read them)."""
    fixed = dict(raw)
    for key in keys:
        value = raw.get(key)
        if type(value) is str:
            fixed[key] = utf8(value)
    return fixed
