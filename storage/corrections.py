"""The owner's corrections of clone replies (/fix): preferred answers for the next training run.

Each correction keeps the conversation before the corrected reply, so the next run can train
the better answer in the context it should have been given in.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, TypedDict

from storage.db import Database, from_unix, to_unix

UPSERT_CORRECTION = """
    INSERT INTO corrections (chat_id, turn_id, context, clone_text, better_text, created_at)
    VALUES (?, ?, ?, ?, ?, ?)
    ON CONFLICT (chat_id, turn_id, clone_text) DO UPDATE SET
        context = excluded.context,
        better_text = excluded.better_text,
        created_at = excluded.created_at
    RETURNING id
"""

SELECT_CORRECTIONS = """
    SELECT id, chat_id, turn_id, context, clone_text, better_text, created_at
    FROM corrections
    ORDER BY id
"""

COUNT_CORRECTIONS = """
    SELECT COUNT(*) FROM corrections
"""


class ContextTurn(TypedDict):
    """One message of the prompt a clone reply answered: its system message (the system
    prompt with the memory block, as the clone saw it) first, then the conversation's turns."""

    role: Literal["system", "user", "assistant"]
    content: str


@dataclass(frozen=True)
class Correction:
    """A clone reply the owner corrected, with what came before it."""

    correction_id: int
    chat_id: int
    turn_id: int
    context: list[ContextTurn]
    clone_text: str
    better_text: str
    created_at: datetime


def turns_json(turns: Sequence[ContextTurn]) -> str:
    """Turns as stored: a JSON list of ``{role, content}`` (other keys left out)."""
    return json.dumps(
        [{"role": t["role"], "content": t["content"]} for t in turns], ensure_ascii=False
    )


def turns_from_json(text: str) -> list[ContextTurn]:
    """Inverse of ``turns_json``."""
    return [
        {
            "role": turn["role"] if turn["role"] in ("system", "assistant") else "user",
            "content": turn["content"],
        }
        for turn in json.loads(text)
    ]


async def add_correction(
    db: Database,
    chat_id: int,
    turn_id: int,
    context: Sequence[ContextTurn],
    clone_text: str,
    better_text: str,
    created_at: datetime,
) -> int:
    """Store the owner's better answer to clone turn ``turn_id``; return the correction's id.

    Correcting the same reply again replaces the earlier correction.
    """
    if not better_text.strip():
        raise ValueError("a correction needs the better text")
    payload = turns_json(context)
    async with db.transaction() as conn:
        cursor = await conn.execute(
            UPSERT_CORRECTION,
            (chat_id, turn_id, payload, clone_text, better_text, to_unix(created_at)),
        )
        row = await cursor.fetchone()
    assert row is not None  # RETURNING always gives the inserted or updated row
    return int(row[0])


async def load_corrections(db: Database) -> list[Correction]:
    """Every stored correction, oldest first."""
    async with db.read() as conn, conn.execute(SELECT_CORRECTIONS) as cursor:
        rows = await cursor.fetchall()
    return [_correction(row) for row in rows]


async def count_corrections(db: Database) -> int:
    """How many corrections wait for the next training run (for /stats)."""
    async with db.read() as conn, conn.execute(COUNT_CORRECTIONS) as cursor:
        row = await cursor.fetchone()
    return int(row[0]) if row else 0


def _correction(row: Any) -> Correction:
    return Correction(
        correction_id=int(row["id"]),
        chat_id=int(row["chat_id"]),
        turn_id=int(row["turn_id"]),
        context=turns_from_json(row["context"]),
        clone_text=row["clone_text"],
        better_text=row["better_text"],
        created_at=from_unix(row["created_at"]),
    )
