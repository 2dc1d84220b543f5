"""The Telegram export fixtures and an independent (json.load) count of what they hold."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from storage.db import Database

EXPORTS_DIR = Path(__file__).resolve().parent.parent / "fixtures" / "telegram-exports"
FORMAT_ERAS = sorted((EXPORTS_DIR / "format-eras").glob("*.json"))
SAMPLES = sorted((EXPORTS_DIR / "samples").glob("*.json"))
FULL_EXPORT_OWNER = 11111111

# Single-chat samples do not say who the owner is: the participant each test imports as.
SAMPLE_OWNERS = {
    "langchain-personal-chat.json": 6565661032,
    "private-channel-2021.json": 10036995664,
    "public-supergroup-migrated.json": 9999999999,
    "saved-messages-2021.json": 9999999999,
}


@dataclass(frozen=True)
class JsonCounts:
    chats: int
    messages: int
    owner_messages: int


def count_with_json(path: Path, owner_id: int) -> JsonCounts:
    """Count chats, messages and the owner's messages by loading the whole file (tests only)."""
    data = json.loads(path.read_text("utf-8"))
    if "messages" in data:
        chats: list[dict[str, Any]] = [data]
    else:
        chats = data["chats"]["list"] + data.get("left_chats", {}).get("list", [])
    owner_refs = (owner_id, f"user{owner_id}")
    messages = [message for chat in chats for message in chat["messages"]]
    owner = [
        message
        for message in messages
        if message.get("from_id", message.get("actor_id")) in owner_refs
    ]
    return JsonCounts(chats=len(chats), messages=len(messages), owner_messages=len(owner))


async def db_file_digest(db: Database) -> str:
    """SHA-256 of the database file after checkpointing the WAL into it."""
    await db.checkpoint()
    return hashlib.sha256(db.path.read_bytes()).hexdigest()


def big_export(messages: int, owner_id: int = FULL_EXPORT_OWNER) -> dict[str, Any]:
    """A full-account export with one chat of ``messages`` alternating text messages."""
    friend = 22222222
    return {
        "about": "synthetic",
        "personal_information": {"user_id": owner_id},
        "chats": {
            "about": "synthetic",
            "list": [
                {
                    "name": "Friend",
                    "type": "personal_chat",
                    "id": friend,
                    "messages": [
                        {
                            "id": n,
                            "type": "message",
                            "date": "2024-01-01T00:00:00",
                            "date_unixtime": str(1_700_000_000 + n),
                            "from": "Someone",
                            "from_id": f"user{owner_id if n % 2 else friend}",
                            "text": f"message number {n}",
                            "text_entities": [{"type": "plain", "text": f"message number {n}"}],
                        }
                        for n in range(1, messages + 1)
                    ],
                }
            ],
        },
    }
