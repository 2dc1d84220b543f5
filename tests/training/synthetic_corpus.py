"""A deterministic synthetic corpus: private chats and groups, with everything the cleaning
rules must catch (fillers, emoji, media, service, forwards, phone numbers, duplicates).

Each chat draws from its own ``random.Random`` seeded by (seed, chat index), so a chat is
the same whatever else is generated; ``iter_corpus`` yields chats in ascending chat id order
(storage order) without holding more than one chat.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from storage.models import ChatRecord, MessageRecord

OWNER_ID = 11111111
START = datetime(2024, 1, 1, 8, 0, tzinfo=UTC)
_VOCABULARY = (
    "привет как дела что нового сегодня завтра вечером работа проект встреча кино парк "
    "погода отлично давай может быть думаю кажется слушай кстати вообще точно потом "
    "hello sure maybe tomorrow tonight meeting project weekend coffee great idea really "
    "send notes later think about it sounds good call me when free"
)
WORDS = tuple(_VOCABULARY.split())
FILLERS = ("ок", "ok", "спасибо", "спс", "👍", "+", "хорошо")
EMOJI = ("😂", "🔥", "❤️", "🙂", "🎉")
NAMES = ("Аня", "Борис", "Вика", "Глеб", "Dana", "Eric", "Фёдор")
GROUP_EVERY = 6
"""Every sixth chat is a group (negative id)."""


def chat_id_of(index: int) -> int:
    """Chat id of the index-th chat: groups are negative, private chats positive."""
    return -(1_000_000 + index) if index % GROUP_EVERY == GROUP_EVERY - 1 else 5_000 + index


def _sentence(rng: random.Random, low: int, high: int) -> str:
    words = [rng.choice(WORDS) for _ in range(rng.randint(low, high))]
    text = " ".join(words).capitalize()
    roll = rng.random()
    if roll < 0.04:
        text += f" мой номер +7 9{rng.randint(10, 99)} {rng.randint(100, 999)}-45-67"
    elif roll < 0.08:
        text += " " + rng.choice(EMOJI)
    return text + rng.choice(("", ".", "!", "?", ")"))


def chat_messages(index: int, conversations: int, seed: int = 0) -> list[MessageRecord]:
    """One chat's messages in time order, ``conversations`` sessions of a few turns each."""
    rng = random.Random(f"{seed}:{index}")
    chat_id = chat_id_of(index)
    group = chat_id < 0
    people = [(900_000 + index * 10 + n, NAMES[(index + n) % len(NAMES)]) for n in range(5)]
    others = people[: rng.randint(3, 5)] if group else people[:1]
    when = START + timedelta(hours=rng.randint(0, 24 * 200))
    messages: list[MessageRecord] = []

    def add(owner: bool, text: str, **extra: object) -> None:
        sender_id, name = (OWNER_ID, "Owner") if owner else rng.choice(others)
        reply_to = None
        if group and messages and rng.random() < 0.3:
            reply_to = rng.choice(messages[-12:]).message_id
        messages.append(
            MessageRecord(
                chat_id=chat_id,
                message_id=len(messages) + 1,
                sender_id=sender_id,
                sender_name=name,
                is_owner=owner,
                date=when,
                text=text,
                reply_to_id=reply_to,
                **extra,  # type: ignore[arg-type]
            )
        )

    for _ in range(conversations):
        when += timedelta(hours=rng.uniform(1.0, 60.0))
        if rng.random() < 0.05:  # the same little exchange again: a duplicate pair
            add(False, "Ты где сейчас, скоро будешь?")
            when += timedelta(seconds=30)
            add(True, "Уже еду, буду минут через десять!")
            continue
        owner = rng.random() < 0.1  # sometimes the owner starts
        for _turn in range(rng.randint(2, 8)):
            for _part in range(1 if rng.random() < 0.7 else rng.randint(2, 3)):
                when += timedelta(seconds=rng.randint(5, 100))
                roll = rng.random()
                if roll < 0.03:
                    add(owner, "", kind="media")
                elif roll < 0.05:
                    add(owner, "", kind="service")
                elif roll < 0.07:
                    add(owner, _sentence(rng, 3, 9), forwarded_from="Channel")
                elif owner and roll < 0.17:
                    add(owner, rng.choice(FILLERS))
                elif owner and roll < 0.2:
                    add(owner, "Привет! Как дела, что нового у тебя сегодня?")  # repeats
                else:
                    add(owner, _sentence(rng, 1 if owner else 2, 14 if owner else 10))
            if owner and rng.random() < 0.05:
                when += timedelta(minutes=rng.randint(5, 20))  # a late second owner message
                add(True, _sentence(rng, 4, 10))
            if not group or owner or rng.random() < 0.35:
                owner = not owner  # in groups the others often talk among themselves
    return messages


def chats(count: int) -> list[ChatRecord]:
    """The chat records of ``count`` chats."""
    return [
        ChatRecord(
            chat_id_of(i), f"Chat {i}", "private_group" if chat_id_of(i) < 0 else "personal_chat"
        )
        for i in range(count)
    ]


def iter_corpus(
    chats_count: int, conversations_per_chat: int, seed: int = 0
) -> Iterator[MessageRecord]:
    """Every chat's messages, chats in ascending chat id order (as storage reads them)."""
    for index in sorted(range(chats_count), key=chat_id_of):
        yield from chat_messages(index, conversations_per_chat, seed)


def synthetic_corpus(conversations: int = 1_700, seed: int = 0) -> list[MessageRecord]:
    """About ``conversations`` sessions, 17 per chat (every sixth chat a group)."""
    return list(iter_corpus(max(1, conversations // 17), 17, seed))
