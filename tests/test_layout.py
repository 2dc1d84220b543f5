"""The package layout README's "Where things are" relies on."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BOT_TOP_LEVEL = {"__init__", "__main__", "app", "cli", "settings", "context"}


def test_bot_keeps_only_its_entry_points_at_the_top_level() -> None:
    modules = {path.stem for path in (ROOT / "bot").glob("*.py")}
    assert modules <= BOT_TOP_LEVEL, f"group these into a bot/ package: {modules - BOT_TOP_LEVEL}"
