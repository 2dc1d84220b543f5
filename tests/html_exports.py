"""The hand-written Telegram Desktop HTML export fixture (see its README) and its owner."""

from __future__ import annotations

from pathlib import Path

FIXTURES = Path(__file__).parent / "fixtures" / "telegram-exports"
HTML_OWNER_NAME = "Alex Morgan"
"""The owner, as the fixture's pages sign their messages."""
