"""Per-message conversion: ids, text segments, dates and kinds across export eras."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from storage.export_format import (
    _USER_PEERS,
    bot_api_chat_id,
    join_text,
    message_date,
    peer_id,
    to_message_record,
    to_message_row,
    training_skip_reason,
)

OWNER = 11111111


def raw(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"id": 7, "type": "message", "date_unixtime": "1665499755"}
    return base | fields


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (11111111, 11111111),  # 2020 era: a bare integer
        ("user11111111", 11111111),
        ("channel1234567890", -1001234567890),
        ("channel123", -1000000000123),
        ("chat123", -123),
        ("5", 5),
        ("group42", None),
        (None, None),
        (True, None),
        ("-5", -5),
        ("--5", None),
        ("²", None),  # a digit to isdigit(), not to int()
        ("user²", None),
        ("user-5", None),
    ],
)
def test_peer_id(value: object, expected: int | None) -> None:
    assert peer_id(value) == expected


def test_integer_and_string_from_id_give_the_same_sender() -> None:
    old = to_message_record(raw(from_id=OWNER, text="hi"), 1, OWNER)
    new = to_message_record(raw(from_id=f"user{OWNER}", text="hi"), 1, OWNER)
    assert old is not None and new is not None
    assert old.sender_id == new.sender_id == OWNER
    assert old.is_owner and new.is_owner


@pytest.mark.parametrize("latin1", [False, True])
def test_senders_read_again_from_the_cache_are_the_same(latin1: bool) -> None:
    """The second message of a sender comes from the id cache; other peers never enter it."""
    peers = ["user42", "user42", f"user{OWNER}", f"user{OWNER}", "channel77", "channel77",
             "user4x2", "user", "user-5"]  # fmt: skip
    rows = [
        to_message_row(raw(id=i, from_id=peer, text="hi"), 1, OWNER, latin1=latin1)
        for i, peer in enumerate(peers)
    ]
    assert [row[2] if row else "unread" for row in rows] == [
        42, 42, OWNER, OWNER, -1000000000077, -1000000000077, None, None, None
    ]  # fmt: skip
    assert [row[4] if row else None for row in rows] == [0, 0, 1, 1, 0, 0, 0, 0, 0]
    assert "channel77" not in _USER_PEERS and "user4x2" not in _USER_PEERS


@pytest.mark.parametrize(
    ("chat_type", "expected"),
    [
        ("personal_chat", 123),
        ("bot_chat", 123),
        ("saved_messages", 123),
        ("private_group", -123),
        ("private_supergroup", -1000000000123),
        ("public_supergroup", -1000000000123),
        ("private_channel", -1000000000123),
        ("public_channel", -1000000000123),
    ],
)
def test_bot_api_chat_id(chat_type: str, expected: int) -> None:
    assert bot_api_chat_id(123, chat_type) == expected


def test_supergroup_id_matches_bot_api_form() -> None:
    assert str(bot_api_chat_id(1234567890, "private_supergroup")) == "-1001234567890"


def test_text_segments_are_joined_exactly() -> None:
    text = [
        "this contains a lot of stuff: ",
        {"type": "custom_emoji", "text": "😁", "document_id": "x.webp"},
        {"type": "link", "text": "http://mylink.org/"},
        {"type": "spoiler", "text": "HIDE ME"},
        {"type": "brand_new_entity", "text": "!", "whatever": [1, 2]},
        {"type": "no_text_here"},
        "",
    ]
    assert join_text(text) == "this contains a lot of stuff: 😁http://mylink.org/HIDE ME!"
    assert join_text("  plain\n") == "  plain\n"
    assert join_text(None) == ""


def test_date_unixtime_wins_over_local_date() -> None:
    date = message_date({"date": "2022-10-11T00:00:00", "date_unixtime": "1665499755"})
    assert date == datetime(2022, 10, 11, 14, 49, 15, tzinfo=UTC)


def test_local_date_is_read_in_the_given_zone() -> None:
    message = {"date": "2016-11-09T00:26:24"}
    assert message_date(message) == datetime(2016, 11, 9, 0, 26, 24, tzinfo=UTC)
    plus5 = message_date(message, timezone(timedelta(hours=5)))
    assert plus5 == datetime(2016, 11, 8, 19, 26, 24, tzinfo=UTC)
    berlin = message_date({"date": "2016-07-01T12:00:00"}, ZoneInfo("Europe/Berlin"))
    assert berlin == datetime(2016, 7, 1, 10, 0, tzinfo=UTC)
    assert berlin is not None and berlin.tzinfo is UTC


@pytest.mark.parametrize(
    ("fields", "kind", "text"),
    [
        ({"text": "hello"}, "text", "hello"),
        ({"type": "service", "action": "pin_message", "text": ""}, "service", ""),
        ({"type": "service", "action": "phone_call", "text": ""}, "call", ""),
        ({"photo": "a.jpg", "text": ""}, "media", ""),
        ({"photo": "a.jpg", "text": "caption"}, "text", "caption"),
        ({"file": "a.pdf", "media_type": "voice_message", "text": ""}, "media", ""),
        ({"media_type": "sticker", "sticker_emoji": "😆", "text": ""}, "sticker", "😆"),
        ({"poll": {"question": "Why?", "answers": []}, "text": ""}, "poll", "Why?"),
        ({"contact_information": {"first_name": "A"}, "text": ""}, "text", ""),
    ],
)
def test_kinds(fields: dict[str, Any], kind: str, text: str) -> None:
    record = to_message_record(raw(from_id="user1", **fields), 1, OWNER)
    assert record is not None
    assert (record.kind, record.text) == (kind, text)


def test_service_sender_is_the_actor() -> None:
    record = to_message_record(
        raw(type="service", actor="Me", actor_id=f"user{OWNER}", action="pin_message"), 1, OWNER
    )
    assert record is not None
    assert (record.sender_id, record.sender_name, record.is_owner) == (OWNER, "Me", True)


def test_forward_via_bot_and_replies() -> None:
    record = to_message_record(
        raw(
            from_id="user1", forwarded_from="Chan", via_bot="@gif", reply_to_message_id=3, text="x"
        ),
        1,
        OWNER,
    )
    assert record is not None
    assert (record.forwarded_from, record.via_bot, record.reply_to_id) == ("Chan", "@gif", 3)
    hidden = to_message_record(raw(from_id="user1", forwarded_from=None, text="x"), 1, OWNER)
    assert hidden is not None and hidden.forwarded_from is not None
    cross_chat = to_message_record(
        raw(from_id="user1", reply_to_message_id=3, reply_to_peer_id="channel9", text="x"),
        1,
        OWNER,
    )
    assert cross_chat is not None and cross_chat.reply_to_id is None


def test_messages_without_id_or_date_are_unreadable() -> None:
    assert to_message_record({"type": "message", "date": "nonsense"}, 1, OWNER) is None
    assert to_message_record({"id": "7", "date_unixtime": "1"}, 1, OWNER) is None


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"text": "words"}, None),
        ({"type": "service", "action": "pin_message"}, "service"),
        ({"photo": "a.jpg", "text": ""}, "media_only"),
        ({"forwarded_from": "X", "text": "words"}, "forwarded"),
        ({"via_bot": "@gif", "text": "words"}, "via_bot"),
        ({"text": "   "}, "empty"),
        ({"media_type": "sticker", "sticker_emoji": "👍"}, None),
    ],
)
def test_training_skip_reason(fields: dict[str, Any], reason: str | None) -> None:
    record = to_message_record(raw(from_id="user1", **fields), 1, OWNER)
    assert record is not None
    assert training_skip_reason(record) == reason
