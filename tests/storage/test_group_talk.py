"""The per-group talk switch (m005): off by default, survives reopening and /forget."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from storage.collection import forget
from storage.db import Database
from storage.group_talk import group_talk_enabled, set_group_talk
from storage.messages import save_chats
from storage.migrations import MIGRATIONS, schema_versions
from storage.models import ChatRecord

GROUP = -1001234


async def test_talk_is_off_until_switched_on_and_back_off(db: Database) -> None:
    assert not await group_talk_enabled(db, GROUP)
    await set_group_talk(db, GROUP, True)
    assert await group_talk_enabled(db, GROUP)
    assert not await group_talk_enabled(db, GROUP - 1), "only the group it was switched on in"
    await set_group_talk(db, GROUP, False)
    assert not await group_talk_enabled(db, GROUP)


async def test_forgetting_a_groups_messages_keeps_its_talk_switch(db: Database) -> None:
    async with db.transaction() as conn:
        await save_chats(
            conn,
            [ChatRecord(chat_id=GROUP, title="g", chat_type="supergroup")],
        )
    await set_group_talk(db, GROUP, True)
    await forget(db, GROUP)
    assert await group_talk_enabled(db, GROUP)


async def test_m005_applies_to_an_empty_database(tmp_path: Path) -> None:
    db = await Database.open(tmp_path / "new.db")
    try:
        assert await schema_versions(db.conn) == [m.version for m in MIGRATIONS]
        await set_group_talk(db, GROUP, True)
        assert await group_talk_enabled(db, GROUP)
    finally:
        await db.close()


async def test_m005_applies_to_a_database_from_before_it(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    before = tuple(m for m in MIGRATIONS if m.name < "m005")
    old = await Database.open(path, migrations=before)
    async with old.transaction() as conn:
        await conn.execute(
            "INSERT INTO clone_turns (chat_id, role, text, date_utc) VALUES (?, 'user', 'x', ?)",
            (GROUP, int(datetime.now(UTC).timestamp())),
        )
    await old.close()

    db = await Database.open(path)
    try:
        assert await schema_versions(db.conn) == [m.version for m in MIGRATIONS]
        assert not await group_talk_enabled(db, GROUP)
        await set_group_talk(db, GROUP, True)
        assert await group_talk_enabled(db, GROUP)
        async with db.conn.execute("SELECT COUNT(*) FROM clone_turns") as cursor:
            assert (await cursor.fetchone())[0] == 1  # type: ignore[index]
    finally:
        await db.close()
