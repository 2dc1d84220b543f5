"""Live collection state: Business connections, group opt-ins, pause, edits, deletes, forget."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from storage.db import Database, now_unix, to_unix
from storage.messages import save_chats
from storage.models import ChatRecord

UPSERT_CONNECTION = """
    INSERT INTO business_connections (
        connection_id, user_id, user_chat_id, can_reply, is_enabled, updated_at
    )
    VALUES (?, ?, ?, ?, ?, ?)
    ON CONFLICT (connection_id) DO UPDATE SET
        user_id = excluded.user_id,
        user_chat_id = excluded.user_chat_id,
        can_reply = excluded.can_reply,
        is_enabled = excluded.is_enabled,
        updated_at = excluded.updated_at
"""

SELECT_CONNECTION = """
    SELECT connection_id, user_id, user_chat_id, can_reply, is_enabled
    FROM business_connections
    WHERE connection_id = ?
"""

SET_CHAT_COLLECT = """
    UPDATE chats SET collect = ? WHERE chat_id = ?
"""

SELECT_CHAT_COLLECT = """
    SELECT collect FROM chats WHERE chat_id = ?
"""

UPSERT_FLAG = """
    INSERT INTO bot_flags (name, value, updated_at) VALUES (?, ?, ?)
    ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at
"""

SELECT_FLAG = """
    SELECT value FROM bot_flags WHERE name = ?
"""

UPDATE_MESSAGE_TEXT = """
    UPDATE messages SET text = ?, kind = ?, edited_at = ?
    WHERE chat_id = ? AND message_id = ?
"""

DELETE_MESSAGES = """
    DELETE FROM messages WHERE chat_id = ? AND message_id = ?
"""

DELETE_AUTO_REPLIES = """
    DELETE FROM auto_replies WHERE chat_id = ? AND message_id = ?
"""

COUNT_CHAT_MESSAGES = """
    SELECT COUNT(*) FROM messages WHERE chat_id = ?
"""

COUNT_ALL_MESSAGES = """
    SELECT COUNT(*) FROM messages
"""

FORGET_CHAT = (
    "DELETE FROM messages WHERE chat_id = ?",
    "DELETE FROM chats WHERE chat_id = ?",
    # A correction or a label holds copies of that chat's conversation with the clone.
    "DELETE FROM corrections WHERE chat_id = ?",
    "DELETE FROM reply_labels WHERE chat_id = ?",
    "DELETE FROM auto_replies WHERE chat_id = ?",
)

FORGET_EVERYTHING = (
    "DELETE FROM messages",
    "DELETE FROM chats",
    "DELETE FROM imports",
    "DELETE FROM business_connections",
    "DELETE FROM corrections",
    "DELETE FROM reply_labels",
    "DELETE FROM auto_replies",
)

PAUSED_FLAG = "collection_paused"


@dataclass(frozen=True)
class BusinessConnectionRecord:
    """A Telegram Business connection of some account to this bot."""

    connection_id: str
    user_id: int
    user_chat_id: int
    can_reply: bool
    is_enabled: bool


async def save_business_connection(db: Database, connection: BusinessConnectionRecord) -> None:
    """Record (or update) a Business connection."""
    async with db.transaction() as conn:
        await conn.execute(
            UPSERT_CONNECTION,
            (
                connection.connection_id,
                connection.user_id,
                connection.user_chat_id,
                int(connection.can_reply),
                int(connection.is_enabled),
                now_unix(),
            ),
        )


async def get_business_connection(
    db: Database, connection_id: str
) -> BusinessConnectionRecord | None:
    """The stored connection with that id, if any."""
    async with db.read() as conn, conn.execute(SELECT_CONNECTION, (connection_id,)) as cursor:
        row = await cursor.fetchone()
    if row is None:
        return None
    return BusinessConnectionRecord(
        connection_id=str(row[0]),
        user_id=int(row[1]),
        user_chat_id=int(row[2]),
        can_reply=bool(row[3]),
        is_enabled=bool(row[4]),
    )


async def set_group_collection(db: Database, chat: ChatRecord, enabled: bool) -> None:
    """Switch collection of a group's messages on or off (the chat is recorded if new)."""
    async with db.transaction() as conn:
        await save_chats(conn, [chat])
        await conn.execute(SET_CHAT_COLLECT, (int(enabled), chat.chat_id))


async def group_collection_enabled(db: Database, chat_id: int) -> bool:
    """Whether the owner switched collection on for this group."""
    async with db.read() as conn, conn.execute(SELECT_CHAT_COLLECT, (chat_id,)) as cursor:
        row = await cursor.fetchone()
    return bool(row and row[0])


async def set_flag(db: Database, name: str, value: bool) -> None:
    """Remember one of the owner's switches (it outlives a restart)."""
    async with db.transaction() as conn:
        await conn.execute(UPSERT_FLAG, (name, int(value), now_unix()))


async def get_flag(db: Database, name: str) -> bool | None:
    """One of the owner's switches, or None if it was never set."""
    async with db.read() as conn, conn.execute(SELECT_FLAG, (name,)) as cursor:
        row = await cursor.fetchone()
    return None if row is None else bool(row[0])


async def set_collection_paused(db: Database, paused: bool) -> None:
    """Pause or resume all live collection."""
    await set_flag(db, PAUSED_FLAG, paused)


async def collection_paused(db: Database) -> bool:
    """Whether the owner paused live collection."""
    return bool(await get_flag(db, PAUSED_FLAG))


async def update_message_text(
    db: Database, chat_id: int, message_id: int, text: str, kind: str, edited_at: datetime
) -> bool:
    """Apply an edit to a stored message; False if that message is not stored."""
    async with db.transaction() as conn:
        cursor = await conn.execute(
            UPDATE_MESSAGE_TEXT, (text, kind, to_unix(edited_at), chat_id, message_id)
        )
        return cursor.rowcount == 1


async def delete_messages(db: Database, chat_id: int, message_ids: list[int]) -> int:
    """Remove messages deleted in Telegram; returns how many were stored.

    An auto-reply whose first message is deleted is forgotten too.
    """
    keys = [(chat_id, message_id) for message_id in message_ids]
    async with db.transaction() as conn:
        # rowcount, not total_changes: that counts the memory index's trigger writes too.
        cursor = await conn.executemany(DELETE_MESSAGES, keys)
        deleted = cursor.rowcount
        await conn.executemany(DELETE_AUTO_REPLIES, keys)
        return deleted


async def count_messages(db: Database, chat_id: int | None) -> int:
    """Messages stored for one chat, or for all chats when `chat_id` is None."""
    params: tuple[int, ...] = ()
    sql = COUNT_ALL_MESSAGES
    if chat_id is not None:
        sql, params = COUNT_CHAT_MESSAGES, (chat_id,)
    async with db.read() as conn, conn.execute(sql, params) as cursor:
        row = await cursor.fetchone()
    return int(row[0]) if row else 0


async def forget(db: Database, chat_id: int | None) -> int:
    """Delete one chat's messages (and the chat), or everything collected when None."""
    statements, params = (FORGET_EVERYTHING, ()) if chat_id is None else (FORGET_CHAT, (chat_id,))
    async with db.transaction() as conn:
        cursor = await conn.execute(statements[0], params)
        deleted = cursor.rowcount
        for statement in statements[1:]:
            await conn.execute(statement, params)
        return deleted
