"""Deterministic synthetic Telegram Desktop full-account exports for tests.

Shaped like the real 2024+ exports in tests/fixtures/telegram-exports/format-eras: text as a
string or a segment list, `from_id` as "user<id>", `date_unixtime`, service messages.
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

OWNER_ID = 11111111
OWNER_NAME = "Owner"

PROMPTS = [
    "Привет! Как прошли выходные?",
    "Ты уже посмотрел тот фильм, который я советовал?",
    "What do you think about the new release?",
    "Пойдём завтра в кино или лучше в парк?",
    "Can you send me the notes from the meeting?",
    "Как там твой проект, движется?",
]
REPLIES = [
    "Да отлично, съездили за город и погуляли в лесу",
    "Ещё нет, но обязательно гляну на этой неделе",
    "Honestly it looks good but a bit rushed to me",
    "Давай в парк, погода вроде будет хорошая весь день",
    "Sure, I will drop them in the chat tonight",
    "Потихоньку двигается, доделываю последнюю большую часть",
]


def _text_field(text: str, segmented: bool) -> str | list[Any]:
    if not segmented:
        return text
    head, _, tail = text.partition(" ")
    return [{"type": "bold", "text": head}, " " + tail]


def full_export(conversations: int = 12, chats: int = 2, seed: int = 0) -> dict[str, Any]:
    """A full-account export: `chats` personal chats, each with conversations an hour apart."""
    rng = random.Random(seed)
    start = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)
    chat_list = []
    for chat_index in range(chats):
        friend_id = 22222200 + chat_index
        friend_name = f"Friend {chat_index}"
        messages: list[dict[str, Any]] = []
        message_id = 1
        when = start + timedelta(days=chat_index)
        for conv in range(conversations):
            when += timedelta(hours=2)
            turns = [
                (friend_id, friend_name, PROMPTS[(conv + chat_index) % len(PROMPTS)]),
                (OWNER_ID, OWNER_NAME, REPLIES[(conv + chat_index) % len(REPLIES)]),
            ]
            for sender_id, sender_name, text in turns:
                when += timedelta(seconds=rng.randint(20, 90))
                messages.append(
                    {
                        "id": message_id,
                        "type": "message",
                        "date": when.strftime("%Y-%m-%dT%H:%M:%S"),
                        "date_unixtime": str(int(when.timestamp())),
                        "from": sender_name,
                        "from_id": f"user{sender_id}",
                        "text": _text_field(text, segmented=message_id % 3 == 0),
                        "text_entities": [{"type": "plain", "text": text}],
                    }
                )
                message_id += 1
        messages.append(
            {
                "id": message_id,
                "type": "service",
                "date": when.strftime("%Y-%m-%dT%H:%M:%S"),
                "date_unixtime": str(int(when.timestamp())),
                "actor": OWNER_NAME,
                "actor_id": f"user{OWNER_ID}",
                "action": "pin_message",
                "text": "",
                "text_entities": [],
            }
        )
        chat_list.append(
            {"name": friend_name, "type": "personal_chat", "id": friend_id, "messages": messages}
        )
    return {
        "about": "Here is the data you requested.",
        "personal_information": {
            "user_id": OWNER_ID,
            "first_name": OWNER_NAME,
            "last_name": "",
            "phone_number": "+0 000 000 0000",
            "bio": "",
        },
        "chats": {"about": "This page lists all chats from this export.", "list": chat_list},
    }


def write_full_export(path: Path, **kwargs: Any) -> Path:
    """Write `full_export(**kwargs)` as result.json-style UTF-8 JSON at `path`."""
    path.write_text(json.dumps(full_export(**kwargs), ensure_ascii=False, indent=1), "utf-8")
    return path
