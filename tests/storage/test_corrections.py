"""Corrections (m007): stored, replaced on a second /fix, counted, forgotten; the migration."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from storage.collection import forget
from storage.corrections import (
    ContextTurn,
    add_correction,
    count_corrections,
    load_corrections,
)
from storage.db import Database
from storage.migrations import MIGRATIONS, schema_versions

WHEN = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
CONTEXT: list[ContextTurn] = [
    {"role": "user", "content": "Привет! Пойдём в кино?"},
    {"role": "assistant", "content": "Может быть"},
    {"role": "user", "content": "В семь?"},
]


async def test_correction_round_trip(db: Database) -> None:
    correction_id = await add_correction(db, 42, 7, CONTEXT, "не знаю", "давай, в семь", WHEN)
    [stored] = await load_corrections(db)
    assert stored.correction_id == correction_id
    assert (stored.chat_id, stored.turn_id) == (42, 7)
    assert stored.context == CONTEXT
    assert (stored.clone_text, stored.better_text) == ("не знаю", "давай, в семь")
    assert stored.created_at == WHEN
    assert await count_corrections(db) == 1


async def test_second_fix_of_the_same_reply_replaces_the_first(db: Database) -> None:
    first = await add_correction(db, 42, 7, CONTEXT, "не знаю", "да", WHEN)
    second = await add_correction(db, 42, 7, CONTEXT, "не знаю", "давай, в семь", WHEN)
    other = await add_correction(db, 42, 9, CONTEXT[:1], "ок", "ага", WHEN)
    assert first == second != other
    stored = await load_corrections(db)
    assert [(c.turn_id, c.better_text) for c in stored] == [(7, "давай, в семь"), (9, "ага")]


async def test_empty_better_text_is_refused(db: Database) -> None:
    with pytest.raises(ValueError, match="better text"):
        await add_correction(db, 42, 7, CONTEXT, "не знаю", "  ", WHEN)
    assert await count_corrections(db) == 0


async def test_migration_applies_to_a_database_from_before_it(tmp_path: Path) -> None:
    path = tmp_path / "older.sqlite3"
    before = next(i for i, m in enumerate(MIGRATIONS) if m.name == "m007_corrections")
    older = await Database.open(path, migrations=MIGRATIONS[:before])
    await older.close()
    db = await Database.open(path)
    try:
        assert await schema_versions(db.conn) == [m.version for m in MIGRATIONS]
        await add_correction(db, 1, 1, CONTEXT, "a", "b", WHEN)
        assert await count_corrections(db) == 1
    finally:
        await db.close()


async def test_forgetting_a_chat_forgets_its_corrections(db: Database) -> None:
    await add_correction(db, 1, 1, CONTEXT, "a", "b", WHEN)
    await add_correction(db, 2, 2, CONTEXT, "a", "b", WHEN)
    await forget(db, 2)
    assert [c.chat_id for c in await load_corrections(db)] == [1]
    await forget(db, None)
    assert await count_corrections(db) == 0
