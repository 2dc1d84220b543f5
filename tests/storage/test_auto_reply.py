"""Auto-reply storage: its switch, the owner's replying connections, a chat's recent talk."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from storage.auto_reply import auto_reply_switch, replying_connections, set_auto_reply
from storage.collection import BusinessConnectionRecord, save_business_connection
from storage.db import Database
from storage.messages import recent_chat_messages, save_live_message
from storage.models import ChatRecord, MessageRecord

OWNER = 1
CHAT = ChatRecord(chat_id=500, title="Friend", chat_type="personal_chat")
NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


async def test_switch_is_unset_until_the_owner_chooses(db: Database) -> None:
    assert await auto_reply_switch(db) is None
    await set_auto_reply(db, True)
    assert await auto_reply_switch(db) is True
    await set_auto_reply(db, False)
    assert await auto_reply_switch(db) is False


async def test_only_the_owners_enabled_connections_with_reply_rights_count(db: Database) -> None:
    for connection_id, user_id, can_reply, enabled in [
        ("a", OWNER, True, True),
        ("b", OWNER, False, True),
        ("c", OWNER, True, False),
        ("d", 2, True, True),
    ]:
        record = BusinessConnectionRecord(connection_id, user_id, user_id, can_reply, enabled)
        await save_business_connection(db, record)
    assert await replying_connections(db, OWNER) == 1
    assert await replying_connections(db, 3) == 0


async def test_recent_chat_messages_window_limit_and_order(db: Database) -> None:
    def message(message_id: int, minutes_ago: int, text: str) -> MessageRecord:
        return MessageRecord(
            chat_id=CHAT.chat_id,
            message_id=message_id,
            sender_id=OWNER if message_id % 2 else 2,
            sender_name=None,
            is_owner=bool(message_id % 2),
            date=NOW - timedelta(minutes=minutes_ago),
            text=text,
            source="live",
        )

    for record in [
        message(1, 90, "too old"),
        message(2, 20, "a"),
        message(3, 10, ""),  # a photo without caption: nothing to answer
        message(4, 10, "b"),
        message(5, 5, "c"),
    ]:
        await save_live_message(db, CHAT, record)
    since = NOW - timedelta(minutes=30)
    recent = await recent_chat_messages(db, CHAT.chat_id, since, limit=10)
    assert [m.text for m in recent] == ["a", "b", "c"]
    assert [m.is_owner for m in recent] == [False, False, True]
    last_two = await recent_chat_messages(db, CHAT.chat_id, since, limit=2)
    assert [m.text for m in last_two] == ["b", "c"]
    assert await recent_chat_messages(db, 999, since, limit=10) == []
