"""Migrations on an empty database, on older ones, and failures that must leave no trace."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from storage.db import Database
from storage.migrations import MIGRATIONS, Migration, SchemaTooNewError, schema_versions

TABLES = {"chats", "messages", "imports", "training_runs", "adapters", "clone_turns"}

NEXT = MIGRATIONS[-1].version + 1
ALL_VERSIONS = [m.version for m in MIGRATIONS]

next_test_nickname = Migration(
    version=NEXT,
    name=f"m{NEXT:03d}_test_nickname",
    statements=(
        """
        ALTER TABLE chats ADD COLUMN nickname TEXT
        """,
        """
        UPDATE chats SET nickname = 'nick-' || title
        """,
    ),
)

next_broken = Migration(
    version=NEXT,
    name=f"m{NEXT:03d}_broken",
    statements=(
        """
        CREATE TABLE half_done (x INTEGER)
        """,
        """
        INSERT INTO no_such_table VALUES (1)
        """,
    ),
)


def table_names(path: Path) -> set[str]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    return {row[0] for row in rows}


async def test_empty_database_gets_every_migration(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "dir" / "tgclone.db"
    db = await Database.open(path)
    try:
        assert await schema_versions(db.conn) == [m.version for m in MIGRATIONS]
        async with db.conn.execute("PRAGMA journal_mode") as cursor:
            assert (await cursor.fetchone())[0] == "wal"  # type: ignore[index]
        async with db.conn.execute("PRAGMA foreign_keys") as cursor:
            assert (await cursor.fetchone())[0] == 1  # type: ignore[index]
    finally:
        await db.close()
    assert TABLES | {"schema_version"} <= table_names(path)


async def test_reopening_applies_nothing_twice(tmp_path: Path) -> None:
    path = tmp_path / "tgclone.db"
    await (await Database.open(path)).close()
    db = await Database.open(path)
    try:
        async with db.conn.execute("SELECT COUNT(*) FROM schema_version") as cursor:
            assert (await cursor.fetchone())[0] == len(MIGRATIONS)  # type: ignore[index]
    finally:
        await db.close()


async def test_version_zero_database_is_migrated(tmp_path: Path) -> None:
    # A database created by hand, with an empty schema_version (version 0) and a foreign table.
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:
        conn.execute(
            """
            CREATE TABLE schema_version (
                version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL
            )
            """
        )
        conn.execute("CREATE TABLE notes (body TEXT)")
        conn.execute("INSERT INTO notes VALUES ('kept')")
    db = await Database.open(path)
    try:
        assert await schema_versions(db.conn) == ALL_VERSIONS
    finally:
        await db.close()
    assert TABLES | {"notes"} <= table_names(path)


async def test_older_database_gets_only_the_missing_migrations(tmp_path: Path) -> None:
    path = tmp_path / "tgclone.db"
    db = await Database.open(path, migrations=MIGRATIONS[:1])
    async with db.transaction() as conn:
        await conn.execute(
            "INSERT INTO chats (chat_id, title, chat_type, first_seen) VALUES (1, 'a', 'x', 0)"
        )
    await db.close()

    db = await Database.open(path, migrations=(*MIGRATIONS, next_test_nickname))
    try:
        assert await schema_versions(db.conn) == [*ALL_VERSIONS, NEXT]
        async with db.conn.execute("SELECT title, nickname FROM chats") as cursor:
            assert [tuple(row) for row in await cursor.fetchall()] == [("a", "nick-a")]
        async with db.conn.execute("SELECT name FROM schema_version ORDER BY version") as cur:
            names = [row[0] for row in await cur.fetchall()]
        assert names == [*(m.name for m in MIGRATIONS), next_test_nickname.name]
    finally:
        await db.close()


async def test_failed_migration_leaves_no_trace(tmp_path: Path) -> None:
    path = tmp_path / "tgclone.db"
    await (await Database.open(path)).close()
    with pytest.raises(sqlite3.OperationalError):
        await Database.open(path, migrations=(*MIGRATIONS, next_broken))
    assert "half_done" not in table_names(path)
    db = await Database.open(path)
    try:
        assert await schema_versions(db.conn) == ALL_VERSIONS
    finally:
        await db.close()


async def test_database_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "tgclone.db"
    await (await Database.open(path, migrations=(*MIGRATIONS, next_test_nickname))).close()
    with pytest.raises(SchemaTooNewError, match="newer version"):
        await Database.open(path)


def test_migrations_are_numbered_in_order() -> None:
    versions = [m.version for m in MIGRATIONS]
    assert versions[0] == 1 and versions == sorted(set(versions))
    assert all(m.name.startswith(f"m{m.version:03d}_") for m in MIGRATIONS)


async def test_a_reserved_number_applies_after_a_higher_one(tmp_path: Path) -> None:
    """A database migrated without a number another branch reserved gets it later."""
    path = tmp_path / "tgclone.db"
    skipped = next_test_nickname
    later = Migration(NEXT + 1, f"m{NEXT + 1:03d}_later", ("CREATE TABLE later (x INTEGER)",))
    await (await Database.open(path, migrations=(*MIGRATIONS, later))).close()
    db = await Database.open(path, migrations=(*MIGRATIONS, skipped, later))
    try:
        assert await schema_versions(db.conn) == [*ALL_VERSIONS, NEXT, NEXT + 1]
    finally:
        await db.close()
    with pytest.raises(ValueError, match="increasing"):
        await Database.open(path, migrations=(*MIGRATIONS, later, skipped))


async def test_m001_database_with_data_upgrades_to_live_collection(tmp_path: Path) -> None:
    path = tmp_path / "tgclone.db"
    db = await Database.open(path, migrations=MIGRATIONS[:1])
    async with db.transaction() as conn:
        await conn.execute(
            "INSERT INTO chats (chat_id, title, chat_type, first_seen) VALUES (-5, 'g', 'x', 0)"
        )
        await conn.execute(
            """
            INSERT INTO messages (chat_id, message_id, is_owner, date_utc, text, kind, source)
            VALUES (-5, 1, 1, 0, 'hi', 'text', 'export')
            """
        )
    await db.close()
    db = await Database.open(path)
    try:
        assert await schema_versions(db.conn) == ALL_VERSIONS
        async with db.conn.execute("SELECT collect FROM chats") as cursor:
            assert [tuple(r) for r in await cursor.fetchall()] == [(0,)]
        async with db.conn.execute("SELECT text, edited_at FROM messages") as cursor:
            assert [tuple(r) for r in await cursor.fetchall()] == [("hi", None)]
    finally:
        await db.close()
