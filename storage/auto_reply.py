"""What Business auto-reply needs from storage: its switch, reply rights, and the replies it
sent (a chat's recent messages are ``storage.messages.recent_chat_messages``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from storage.collection import get_flag, set_flag
from storage.db import Database, from_unix, to_unix

AUTO_REPLY_FLAG = "auto_reply"

COUNT_REPLYING_CONNECTIONS = """
    SELECT COUNT(*) FROM business_connections
    WHERE user_id = ? AND is_enabled = 1 AND can_reply = 1
"""

INSERT_AUTO_REPLY = """
    INSERT OR REPLACE INTO auto_replies (chat_id, message_id, text, date_utc)
    VALUES (?, ?, ?, ?)
"""

SELECT_RECENT_AUTO_REPLIES = """
    SELECT chat_id, message_id, text, date_utc
    FROM (
        SELECT chat_id, message_id, text, date_utc
        FROM auto_replies
        WHERE chat_id = ? AND date_utc >= ?
        ORDER BY date_utc DESC, message_id DESC
        LIMIT ?
    )
    ORDER BY date_utc, message_id
"""


@dataclass(frozen=True)
class AutoReplyRecord:
    """A reply sent as the owner: the chat, its first message's id, its whole text, when."""

    chat_id: int
    message_id: int
    text: str
    date: datetime


async def set_auto_reply(db: Database, enabled: bool) -> None:
    """Switch Business auto-reply on or off (outlives a restart)."""
    await set_flag(db, AUTO_REPLY_FLAG, enabled)


async def auto_reply_switch(db: Database) -> bool | None:
    """The owner's last /autoreply choice, or None if the owner never chose."""
    return await get_flag(db, AUTO_REPLY_FLAG)


async def replying_connections(db: Database, owner_id: int) -> int:
    """The owner's enabled Business connections whose rights allow replying."""
    async with (
        db.read() as conn,
        conn.execute(COUNT_REPLYING_CONNECTIONS, (owner_id,)) as cursor,
    ):
        row = await cursor.fetchone()
    return int(row[0]) if row else 0


async def add_auto_reply(db: Database, reply: AutoReplyRecord) -> None:
    """Remember a reply sent as the owner (the next auto-reply's history)."""
    row = (reply.chat_id, reply.message_id, reply.text, to_unix(reply.date))
    async with db.transaction() as conn:
        await conn.execute(INSERT_AUTO_REPLY, row)


async def recent_auto_replies(
    db: Database, chat_id: int, since: datetime, limit: int
) -> list[AutoReplyRecord]:
    """The chat's last ``limit`` auto-replies sent at or after ``since``, oldest first."""
    params = (chat_id, to_unix(since), limit)
    async with (
        db.read() as conn,
        conn.execute(SELECT_RECENT_AUTO_REPLIES, params) as cursor,
    ):
        rows = await cursor.fetchall()
    return [
        AutoReplyRecord(int(row[0]), int(row[1]), str(row[2]), from_unix(int(row[3])))
        for row in rows
    ]
