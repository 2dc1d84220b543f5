"""The owner's verdicts on clone replies (a reaction or a label button): good or bad.

Each label keeps its own copy of the reply and of the turns it answered, so it outlives a
/reset of the chat; the next training run's preference stage learns from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, cast

from storage.corrections import ContextTurn, turns_from_json, turns_json
from storage.db import Database, from_unix, to_unix

Label = Literal["good", "bad"]
LabelSource = Literal["reaction", "button"]
LABELS: tuple[Label, ...] = ("good", "bad")
SOURCES: tuple[LabelSource, ...] = ("reaction", "button")

UPSERT_LABEL = """
    INSERT INTO reply_labels (chat_id, turn_id, label, source, context, reply_text, updated_at)
    VALUES (?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (chat_id, turn_id) DO UPDATE SET
        label = excluded.label,
        source = excluded.source,
        context = excluded.context,
        reply_text = excluded.reply_text,
        updated_at = excluded.updated_at
"""

DELETE_LABEL = """
    DELETE FROM reply_labels WHERE chat_id = ? AND turn_id = ?
"""

SELECT_LABELS = """
    SELECT chat_id, turn_id, label, source, context, reply_text, updated_at
    FROM reply_labels
    ORDER BY updated_at, chat_id, turn_id
"""

COUNT_LABELS = """
    SELECT label, COUNT(*) FROM reply_labels GROUP BY label
"""


@dataclass(frozen=True)
class ReplyLabel:
    """A clone reply the owner marked good or bad, with what it answered."""

    chat_id: int
    turn_id: int
    label: Label
    source: LabelSource
    context: list[ContextTurn]
    reply_text: str
    updated_at: datetime


async def set_label(db: Database, label: ReplyLabel) -> None:
    """Store the owner's label of a reply; a later label of the same reply replaces it."""
    if label.label not in LABELS:
        raise ValueError(f"label must be one of {LABELS}, got {label.label!r}")
    if label.source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}, got {label.source!r}")
    if not label.context or label.context[-1]["role"] != "user":
        raise ValueError("a labelled reply needs the turns it answered, ending on a user turn")
    row = (
        label.chat_id,
        label.turn_id,
        label.label,
        label.source,
        turns_json(label.context),
        label.reply_text,
        to_unix(label.updated_at),
    )
    async with db.transaction() as conn:
        await conn.execute(UPSERT_LABEL, row)


async def remove_label(db: Database, chat_id: int, turn_id: int) -> bool:
    """Forget the label of a reply (its reaction was taken back); False if it had none."""
    async with db.transaction() as conn:
        cursor = await conn.execute(DELETE_LABEL, (chat_id, turn_id))
        return cursor.rowcount > 0


async def load_labels(db: Database) -> list[ReplyLabel]:
    """Every label, oldest change first."""
    async with db.read() as conn, conn.execute(SELECT_LABELS) as cursor:
        rows = await cursor.fetchall()
    return [_label(row) for row in rows]


async def count_labels(db: Database) -> dict[Label, int]:
    """How many replies are marked good and bad (for /stats)."""
    counts: dict[Label, int] = {"good": 0, "bad": 0}
    async with db.read() as conn, conn.execute(COUNT_LABELS) as cursor:
        for row in await cursor.fetchall():
            counts[cast(Label, row[0])] = int(row[1])
    return counts


def _label(row: Any) -> ReplyLabel:
    return ReplyLabel(
        chat_id=int(row["chat_id"]),
        turn_id=int(row["turn_id"]),
        label=cast(Label, row["label"]),
        source=cast(LabelSource, row["source"]),
        context=turns_from_json(row["context"]),
        reply_text=row["reply_text"],
        updated_at=from_unix(row["updated_at"]),
    )
