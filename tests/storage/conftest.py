"""Storage test fixtures: a fresh database file per test (real SQLite, no mocks)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from storage.db import Database


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    """An open, migrated database in the test's temporary directory."""
    database = await Database.open(tmp_path / "data" / "tgclone.db")
    try:
        yield database
    finally:
        await database.close()
