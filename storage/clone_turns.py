"""Conversations of users WITH the clone: serving history, kept apart from the corpus.

These rows never become training data; the owner's corpus lives in ``messages``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from storage.corrections import ContextTurn, turns_from_json, turns_json
from storage.db import Database, from_unix, to_unix
from storage.models import CloneRole, CloneTurn, StoredCloneTurn

logger = logging.getLogger(__name__)

CLONE_ROLES: frozenset[str] = frozenset({"user", "assistant"})

INSERT_TURN = """
    INSERT INTO clone_turns (chat_id, role, text, date_utc, message_id, sender_id, sender_name)
    VALUES (?, ?, ?, ?, ?, ?, ?)
"""

TURN_COLUMNS = "chat_id, role, text, date_utc, message_id, sender_id, sender_name"

INSERT_SENT_MESSAGE = """
    INSERT OR IGNORE INTO clone_messages (chat_id, message_id, turn_id) VALUES (?, ?, ?)
"""

INSERT_PROMPT = """
    INSERT OR REPLACE INTO clone_prompts (turn_id, turns) VALUES (?, ?)
"""

SELECT_PROMPT = """
    SELECT turns FROM clone_prompts WHERE turn_id = ?
"""

SELECT_TURN_BY_MESSAGE = """
    SELECT t.id, t.chat_id, t.role, t.text, t.date_utc, t.message_id, t.sender_id,
           t.sender_name
    FROM clone_messages AS m
    JOIN clone_turns AS t ON t.id = m.turn_id
    WHERE m.chat_id = ? AND m.message_id = ?
"""

SELECT_TURNS_BEFORE = f"""
    SELECT {TURN_COLUMNS}
    FROM (
        SELECT id, {TURN_COLUMNS}
        FROM clone_turns
        WHERE chat_id = ? AND id < ? AND date_utc >= ?
        ORDER BY id DESC
        LIMIT ?
    )
    ORDER BY id
"""

SELECT_RECENT_TURNS_OF_CHATS = f"""
    SELECT {TURN_COLUMNS}
    FROM (
        SELECT id, {TURN_COLUMNS},
               ROW_NUMBER() OVER (PARTITION BY chat_id ORDER BY id DESC) AS newness
        FROM clone_turns
        WHERE chat_id IN (SELECT value FROM json_each(?)) AND date_utc >= ?
    )
    WHERE newness <= ?
    ORDER BY chat_id, id
"""

DELETE_TURNS = """
    DELETE FROM clone_turns WHERE chat_id = ?
"""


def _turn_row(turn: CloneTurn) -> tuple[object, ...]:
    if turn.role not in CLONE_ROLES:
        raise ValueError(f"role must be 'user' or 'assistant', got {turn.role!r}")
    return (
        turn.chat_id,
        turn.role,
        turn.text,
        to_unix(turn.date),
        turn.message_id,
        turn.sender_id,
        turn.sender_name,
    )


async def add_clone_turn(db: Database, turn: CloneTurn) -> int:
    """Append one turn of a conversation with the clone; return its id."""
    async with db.transaction() as conn:
        cursor = await conn.execute(INSERT_TURN, _turn_row(turn))
        turn_id = cursor.lastrowid
    assert turn_id is not None
    return turn_id


async def recent_clone_turns(
    db: Database, chat_id: int, limit: int, since: datetime | None = None
) -> list[CloneTurn]:
    """The last ``limit`` turns of a chat (at or after ``since`` when given), oldest first."""
    return (await recent_clone_turns_of_chats(db, [chat_id], limit, since))[chat_id]


async def clear_clone_turns(db: Database, chat_id: int) -> int:
    """Forget a chat's conversation with the clone; return how many turns were deleted."""
    async with db.transaction() as conn:
        cursor = await conn.execute(DELETE_TURNS, (chat_id,))
        return cursor.rowcount


async def link_sent_messages(
    db: Database, chat_id: int, turn_id: int, message_ids: Sequence[int]
) -> None:
    """Record the Telegram messages that carried clone turn ``turn_id``."""
    async with db.transaction() as conn:
        await conn.executemany(
            INSERT_SENT_MESSAGE, [(chat_id, message_id, turn_id) for message_id in message_ids]
        )


@dataclass(frozen=True)
class Exchange:
    """A burst of a chat's user turns, the clone's reply (None when it failed), and the
    messages that carried the reply."""

    chat_id: int
    user_turns: Sequence[CloneTurn]
    reply: CloneTurn | None
    message_ids: Sequence[int]
    prompt: Sequence[ContextTurn] = ()
    """The turns the reply answered, as the clone saw them (empty: not known)."""

    @property
    def turns(self) -> list[CloneTurn]:
        """The exchange's turns in order."""
        return [*self.user_turns, *([self.reply] if self.reply is not None else [])]


async def save_exchanges(db: Database, exchanges: Sequence[Exchange]) -> list[int | None]:
    """Store exchanges (of any chats) in one transaction; return each reply's turn id.

    One commit for many replies keeps the single writer free when many chats talk at once.
    """
    turn_ids: list[int | None] = []
    async with db.transaction() as conn:
        for exchange in exchanges:
            turn_id = None
            for turn in exchange.turns:
                cursor = await conn.execute(INSERT_TURN, _turn_row(turn))
                turn_id = cursor.lastrowid
            if exchange.reply is None:
                turn_ids.append(None)
                continue
            assert turn_id is not None
            await conn.executemany(
                INSERT_SENT_MESSAGE,
                [(exchange.chat_id, message_id, turn_id) for message_id in exchange.message_ids],
            )
            if exchange.prompt:
                await conn.execute(INSERT_PROMPT, (turn_id, turns_json(exchange.prompt)))
            turn_ids.append(turn_id)
    return turn_ids


async def recent_clone_turns_of_chats(
    db: Database, chat_ids: Sequence[int], limit: int, since: datetime | None = None
) -> dict[int, list[CloneTurn]]:
    """``recent_clone_turns`` of several chats in one query: chat id -> turns, oldest first."""
    since_unix = to_unix(since) if since is not None else -(2**62)
    turns: dict[int, list[CloneTurn]] = {chat_id: [] for chat_id in chat_ids}
    params = (json.dumps(sorted(set(chat_ids))), since_unix, limit)
    async with db.read() as conn, conn.execute(SELECT_RECENT_TURNS_OF_CHATS, params) as cursor:
        for row in await cursor.fetchall():
            turns[row["chat_id"]].append(_turn(row))
    return turns


async def turn_for_message(db: Database, chat_id: int, message_id: int) -> StoredCloneTurn | None:
    """The clone turn that Telegram message ``message_id`` of ``chat_id`` carried, if any."""
    async with (
        db.read() as conn,
        conn.execute(SELECT_TURN_BY_MESSAGE, (chat_id, message_id)) as cursor,
    ):
        row = await cursor.fetchone()
    if row is None:
        return None
    return StoredCloneTurn(turn_id=row["id"], turn=_turn(row))


async def prompt_of_turn(db: Database, turn_id: int) -> list[ContextTurn] | None:
    """The turns clone reply ``turn_id`` answered, as the clone saw them; None if not stored
    (replies sent before the prompts were kept)."""
    async with db.read() as conn, conn.execute(SELECT_PROMPT, (turn_id,)) as cursor:
        row = await cursor.fetchone()
    return None if row is None else turns_from_json(row["turns"])


async def turns_before(
    db: Database, chat_id: int, turn_id: int, limit: int, since: datetime | None = None
) -> list[CloneTurn]:
    """Up to ``limit`` turns of the chat before turn ``turn_id`` (at or after ``since``)."""
    since_unix = to_unix(since) if since is not None else -(2**62)
    async with (
        db.read() as conn,
        conn.execute(SELECT_TURNS_BEFORE, (chat_id, turn_id, since_unix, limit)) as cursor,
    ):
        rows = await cursor.fetchall()
    return [_turn(row) for row in rows]


def _turn(row: Any) -> CloneTurn:
    return CloneTurn(
        chat_id=row["chat_id"],
        role=cast(CloneRole, row["role"]),
        text=row["text"],
        date=from_unix(row["date_utc"]),
        message_id=row["message_id"],
        sender_id=row["sender_id"],
        sender_name=row["sender_name"],
    )
