"""Live-collection state on a real SQLite file."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from storage.auto_reply import AutoReplyRecord, add_auto_reply, recent_auto_replies
from storage.collection import (
    BusinessConnectionRecord,
    collection_paused,
    count_messages,
    delete_messages,
    forget,
    get_business_connection,
    group_collection_enabled,
    save_business_connection,
    set_collection_paused,
    set_group_collection,
    update_message_text,
)
from storage.db import Database
from storage.messages import load_corpus, save_live_message
from storage.models import ChatRecord, MessageRecord

WHEN = datetime(2026, 1, 1, tzinfo=UTC)


def _message(chat_id: int, message_id: int, text: str) -> MessageRecord:
    return MessageRecord(
        chat_id=chat_id,
        message_id=message_id,
        sender_id=1,
        sender_name="Owner",
        is_owner=True,
        date=WHEN,
        text=text,
        source="live",
    )


async def test_switches_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    db = await Database.open(path)
    group = ChatRecord(chat_id=-100123, title="Group", chat_type="private_supergroup")
    await set_group_collection(db, group, True)
    await set_collection_paused(db, True)
    await save_business_connection(db, BusinessConnectionRecord("c1", 1, 1, True, True))
    await db.close()
    db = await Database.open(path)
    try:
        assert await group_collection_enabled(db, -100123)
        assert not await group_collection_enabled(db, -100999)
        assert await collection_paused(db)
        assert await get_business_connection(db, "c1") == BusinessConnectionRecord(
            "c1", 1, 1, True, True
        )
        assert await get_business_connection(db, "c2") is None
    finally:
        await db.close()


async def test_edit_delete_and_forget_one_chat(tmp_path: Path) -> None:
    db = await Database.open(tmp_path / "db.sqlite3")
    try:
        for chat_id in (10, 20):
            chat = ChatRecord(chat_id=chat_id, title=None, chat_type="personal_chat")
            for message_id in (1, 2, 3):
                await save_live_message(db, chat, _message(chat_id, message_id, f"m{message_id}"))
        assert await update_message_text(db, 10, 1, "edited", "text", WHEN)
        assert not await update_message_text(db, 10, 99, "nothing", "text", WHEN)
        assert await delete_messages(db, 10, [2, 99]) == 1
        assert await count_messages(db, 10) == 2
        assert await forget(db, 20) == 3
        corpus = await load_corpus(db)
        assert [(m.chat_id, m.message_id, m.text) for m in corpus] == [
            (10, 1, "edited"),
            (10, 3, "m3"),
        ]
        assert await forget(db, None) == 2
        assert await count_messages(db, None) == 0
    finally:
        await db.close()


async def test_auto_replies_go_with_their_deleted_message_and_with_forget(tmp_path: Path) -> None:
    db = await Database.open(tmp_path / "db.sqlite3")
    since = datetime(2025, 1, 1, tzinfo=UTC)

    async def texts(chat_id: int) -> list[str]:
        return [reply.text for reply in await recent_auto_replies(db, chat_id, since, 10)]

    try:
        for chat_id in (10, 20):
            for message_id in (1, 2, 3):
                reply = AutoReplyRecord(chat_id, message_id, f"r{message_id}", WHEN)
                await add_auto_reply(db, reply)
        assert await delete_messages(db, 10, [2]) == 0  # no collected message had that id
        assert await texts(10) == ["r1", "r3"]
        assert await recent_auto_replies(db, 10, since, 1) == [AutoReplyRecord(10, 3, "r3", WHEN)]
        await forget(db, 20)
        assert (await texts(10), await texts(20)) == (["r1", "r3"], [])
        await forget(db, None)
        assert await texts(10) == []
    finally:
        await db.close()
