"""Conversations of users WITH the clone: serving history, kept apart from the corpus.

These rows never become training data; the owner's corpus lives in ``messages``.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import cast

from storage.db import Database, from_unix, to_unix
from storage.models import CloneRole, CloneTurn

logger = logging.getLogger(__name__)

CLONE_ROLES: frozenset[str] = frozenset({"user", "assistant"})

INSERT_TURN = """
    INSERT INTO clone_turns (chat_id, role, text, date_utc)
    VALUES (?, ?, ?, ?)
"""

SELECT_RECENT_TURNS = """
    SELECT chat_id, role, text, date_utc
    FROM (
        SELECT id, chat_id, role, text, date_utc
        FROM clone_turns
        WHERE chat_id = ? AND date_utc >= ?
        ORDER BY id DESC
        LIMIT ?
    )
    ORDER BY id
"""

DELETE_TURNS = """
    DELETE FROM clone_turns WHERE chat_id = ?
"""


async def add_clone_turn(
    db: Database, chat_id: int, role: CloneRole, text: str, date: datetime
) -> int:
    """Append one turn of a conversation with the clone; return its id."""
    if role not in CLONE_ROLES:
        raise ValueError(f"role must be 'user' or 'assistant', got {role!r}")
    async with db.transaction() as conn:
        cursor = await conn.execute(INSERT_TURN, (chat_id, role, text, to_unix(date)))
        turn_id = cursor.lastrowid
    assert turn_id is not None
    return turn_id


async def recent_clone_turns(
    db: Database, chat_id: int, limit: int, since: datetime | None = None
) -> list[CloneTurn]:
    """The last ``limit`` turns of a chat (at or after ``since`` when given), oldest first."""
    since_unix = to_unix(since) if since is not None else -(2**62)
    async with (
        db.read() as conn,
        conn.execute(SELECT_RECENT_TURNS, (chat_id, since_unix, limit)) as cursor,
    ):
        rows = await cursor.fetchall()
    return [
        CloneTurn(
            chat_id=row["chat_id"],
            role=cast(CloneRole, row["role"]),
            text=row["text"],
            date=from_unix(row["date_utc"]),
        )
        for row in rows
    ]


async def clear_clone_turns(db: Database, chat_id: int) -> int:
    """Forget a chat's conversation with the clone; return how many turns were deleted."""
    async with db.transaction() as conn:
        cursor = await conn.execute(DELETE_TURNS, (chat_id,))
        return cursor.rowcount
