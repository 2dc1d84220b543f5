"""A deterministic synthetic Telegram Desktop full-account export, streamed to disk.

The shape follows real 2024-era exports (``indent=1``, UTF-8 written as is): personal
information, contacts, then ``chats.list`` and ``left_chats.list``, each chat's ``name``,
``type`` and ``id`` before its ``messages``. Messages mix plain text, entity lists (bold,
links, mentions), Cyrillic and emoji, service actions, photos, files, stickers, forwards,
replies, edits and reactions, each with ``date``, ``date_unixtime`` and ``text_entities``.
Nothing is held in memory beyond one message: the file is written as it is generated.
"""

from __future__ import annotations

import datetime as dt
import json
import random
from pathlib import Path
from typing import IO, Any

OWNER_ID = 11111111
SEED = 20240501
START_UNIX = 1_600_000_000

_VOCABULARY = (
    "привет как дела сегодня завтра встреча работа код бот погода кофе да нет спасибо "
    "hello world ok thanks meeting later tonight deploy bug fix release lunch "
    "😂 👍 🔥 ❤️ 🙈 🎉 🤔"
)
WORDS = tuple(_VOCABULARY.split(" "))
FIRST_NAMES = ("Алиса", "Борис", "Вера", "Глеб", "Dmitry", "Emma", "Фёдор", "Zoë", "Игорь")
CHAT_TYPES = (
    ("personal_chat", 60),
    ("private_group", 10),
    ("private_supergroup", 15),
    ("public_supergroup", 5),
    ("private_channel", 4),
    ("public_channel", 3),
    ("bot_chat", 3),
)
SERVICE_ACTIONS = ("pin_message", "phone_call", "invite_members", "edit_group_title", "join_group")


def write_export(path: Path, messages: int, *, seed: int = SEED) -> int:
    """Write an export of exactly ``messages`` messages to ``path``; return its size in bytes."""
    rng = random.Random(seed)
    sizes = _chat_sizes(rng, messages)
    left = max(1, len(sizes) // 20)  # the last chats are chats the owner left
    with path.open("w", encoding="utf-8", newline="\n") as out:
        out.write("{\n")
        _write_preamble(out, rng)
        for section, chat_sizes in (("chats", sizes[:-left]), ("left_chats", sizes[-left:])):
            out.write(f' "{section}": {{\n  "about": "This page lists all chats.",\n')
            out.write('  "list": [')
            for number, size in enumerate(chat_sizes):
                out.write("," if number else "")
                _write_chat(out, rng, size, saved=section == "chats" and number == 0)
            out.write("\n  ]\n }" + (",\n" if section == "chats" else "\n"))
        out.write("}\n")
    return path.stat().st_size


def _chat_sizes(rng: random.Random, total: int) -> list[int]:
    """Chat sizes with a long tail: a few big chats, many small ones; they sum to total."""
    chats = max(4, total // 2_500)
    weights = [1.0 / (rank + 1) ** 0.9 * rng.uniform(0.5, 1.5) for rank in range(chats)]
    scale = total / sum(weights)
    sizes = [int(weight * scale) for weight in weights]
    sizes[0] += total - sum(sizes)
    rng.shuffle(sizes)
    return sizes


def _write_preamble(out: IO[str], rng: random.Random) -> None:
    info = {
        "user_id": OWNER_ID,
        "first_name": "Владимир",
        "last_name": "Owner",
        "phone_number": "+7 999 000 0000",
        "username": "@owner",
        "bio": "Пишу код 🧑‍💻",
    }
    contacts = [
        {
            "user_id": 2_000_000 + n,
            "first_name": rng.choice(FIRST_NAMES),
            "last_name": "",
            "phone_number": f"+1 555 {n:07d}",
            "date": "2023-05-01T10:00:00",
            "date_unixtime": "1682935200",
        }
        for n in range(200)
    ]
    out.write(' "about": "Here is the data you requested.",\n')
    out.write(f' "personal_information": {_dump(info, 1)},\n')
    out.write(f' "contacts": {_dump({"about": "Contacts.", "list": contacts}, 1)},\n')


def _write_chat(out: IO[str], rng: random.Random, size: int, *, saved: bool) -> None:
    chat_type = "saved_messages" if saved else _weighted(rng, CHAT_TYPES)
    chat_id = OWNER_ID if saved else rng.randrange(10**8, 10**10)
    head: dict[str, Any] = {"type": chat_type, "id": chat_id}
    if not saved:
        head = {"name": f"{rng.choice(FIRST_NAMES)} {rng.choice(WORDS)}", **head}
    people = [(OWNER_ID, "Владимир Owner")] + [
        (rng.randrange(10**6, 10**10), f"{rng.choice(FIRST_NAMES)} {n}") for n in range(6)
    ]
    if chat_type == "personal_chat":
        people = people[:2]
    out.write("\n   {\n")
    for key, value in head.items():
        out.write(f"    {json.dumps(key)}: {json.dumps(value, ensure_ascii=False)},\n")
    out.write('    "messages": [')
    message_id = rng.randrange(1, 100_000)
    moment = START_UNIX + rng.randrange(0, 10**7)
    for number in range(size):
        message_id += 1 + (rng.random() < 0.1) * rng.randrange(1, 5)
        moment += rng.randrange(1, 3_600)
        message = _message(rng, message_id, moment, people, saved or chat_type == "personal_chat")
        out.write(("," if number else "") + "\n     " + _dump(message, 5))
    out.write("\n    ]\n   }")


def _message(
    rng: random.Random, message_id: int, moment: int, people: list[tuple[int, str]], dm: bool
) -> dict[str, Any]:
    sender_id, sender = people[0] if rng.random() < 0.45 else rng.choice(people)
    stamp = _local_date(moment)
    roll = rng.random()
    if roll < 0.08:
        action = rng.choice(SERVICE_ACTIONS)
        service: dict[str, Any] = {
            "id": message_id,
            "type": "service",
            "date": stamp,
            "date_unixtime": str(moment),
            "actor": sender,
            "actor_id": f"user{sender_id}",
            "action": action,
        }
        if action == "phone_call":
            service["duration_seconds"] = rng.randrange(1, 900)
        elif action == "invite_members":
            service["members"] = [rng.choice(FIRST_NAMES) for _ in range(rng.randrange(1, 4))]
        return {**service, "text": "", "text_entities": []}
    message: dict[str, Any] = {
        "id": message_id,
        "type": "message",
        "date": stamp,
        "date_unixtime": str(moment),
    }
    if rng.random() < 0.1:
        message["edited"] = _local_date(moment + 60)
        message["edited_unixtime"] = str(moment + 60)
    message["from"] = sender
    message["from_id"] = f"user{sender_id}" if dm or rng.random() < 0.9 else f"channel{10**9}"
    if rng.random() < 0.2:
        message["reply_to_message_id"] = max(1, message_id - rng.randrange(1, 30))
    if rng.random() < 0.05:
        message["forwarded_from"] = rng.choice(FIRST_NAMES) if rng.random() < 0.8 else None
    entities = _text(rng) if roll < 0.8 else []
    if 0.8 <= roll < 0.88:
        message.update(
            photo=f"photos/photo_{message_id}@01-01-2024_12-00-00.jpg",
            photo_file_size=rng.randrange(10_000, 400_000),
            width=1280,
            height=960,
        )
        entities = _text(rng) if rng.random() < 0.3 else []
    elif 0.88 <= roll < 0.95:
        media = rng.choice(("video_file", "voice_message", "audio_file", None))
        message.update(file=f"files/file_{message_id}.bin", file_size=rng.randrange(1, 10**7))
        if media is not None:
            message.update(media_type=media, mime_type="video/mp4", duration_seconds=12)
    elif roll >= 0.95:
        message.update(
            file=f"stickers/sticker_{message_id}.webp",
            thumbnail=f"stickers/sticker_{message_id}.webp_thumb.jpg",
            media_type="sticker",
            sticker_emoji=rng.choice(("😂", "👍", "🔥", "❤️")),
            width=512,
            height=512,
        )
    plain = len(entities) == 1 and entities[0]["type"] == "plain"
    message["text"] = entities[0]["text"] if plain else _text_field(entities)
    message["text_entities"] = entities
    if rng.random() < 0.05:
        message["reactions"] = [{"type": "emoji", "count": 2, "emoji": "👍"}]
    return message


def _text(rng: random.Random) -> list[dict[str, str]]:
    """Text entities: usually one plain run, sometimes bold, links and mentions."""
    length = min(40, 1 + int(rng.expovariate(1 / 5)))  # mostly short, a few long
    words = " ".join(rng.choice(WORDS) for _ in range(length))
    if rng.random() < 0.88:
        return [{"type": "plain", "text": words}]
    return [
        {"type": "plain", "text": words + " "},
        {"type": "bold", "text": rng.choice(WORDS)},
        {"type": "plain", "text": " смотри "},
        {"type": "link", "text": f"https://example.org/{rng.randrange(10**6)}"},
        {"type": "plain", "text": " "},
        {"type": "mention", "text": f"@{rng.choice(('alice', 'bob', 'vera'))}"},
    ]


def _text_field(entities: list[dict[str, str]]) -> str | list[Any]:
    """The ``text`` field: strings for plain runs, the entity objects for the others."""
    if not entities:
        return ""
    return [e["text"] if e["type"] == "plain" else dict(e) for e in entities]


def _local_date(unix: int) -> str:
    # Telegram writes ``date`` in the exporting machine's zone; UTC+3 here.
    moment = dt.datetime.fromtimestamp(unix + 3 * 3_600, dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S")


def _weighted(rng: random.Random, choices: tuple[tuple[str, int], ...]) -> str:
    return rng.choices([c for c, _ in choices], weights=[w for _, w in choices])[0]


def _dump(value: Any, level: int) -> str:
    """JSON with one-space indentation, nested at ``level`` like Telegram Desktop writes it."""
    text = json.dumps(value, ensure_ascii=False, indent=1)
    return text.replace("\n", "\n" + " " * level)
