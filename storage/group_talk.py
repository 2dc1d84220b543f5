"""Groups where the owner let the clone talk (``/talk on|off``), kept apart from collection."""

from __future__ import annotations

from storage.db import Database, now_unix

UPSERT_TALK_GROUP = """
    INSERT INTO talk_groups (chat_id, enabled, updated_at) VALUES (?, ?, ?)
    ON CONFLICT (chat_id) DO UPDATE SET
        enabled = excluded.enabled,
        updated_at = excluded.updated_at
"""

SELECT_TALK_GROUP = """
    SELECT enabled FROM talk_groups WHERE chat_id = ?
"""


async def set_group_talk(db: Database, chat_id: int, enabled: bool) -> None:
    """Let the clone answer in group ``chat_id`` (when mentioned or replied to), or stop it."""
    async with db.transaction() as conn:
        await conn.execute(UPSERT_TALK_GROUP, (chat_id, int(enabled), now_unix()))


async def group_talk_enabled(db: Database, chat_id: int) -> bool:
    """Whether the owner switched talking on for this group (off until they do)."""
    async with db.read() as conn, conn.execute(SELECT_TALK_GROUP, (chat_id,)) as cursor:
        row = await cursor.fetchone()
    return bool(row and row[0])
