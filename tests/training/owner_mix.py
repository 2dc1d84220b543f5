"""A personal chat with a realistic mix of the owner's turn lengths, deterministic.

Shaped after the real Russian and Ukrainian personal-chat exports measured for issue #17:
about 60% of the owner's turns have fewer than five words (fillers such as "ок" and "да",
emoji, "да, ща"), the median turn has four words, a few run to thirty or more; some turns
are bursts of two or three messages, some open a conversation nobody prompted, and the other
side writes as mixed a length as the owner.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from storage.models import MessageRecord

OWNER_ID = 11111111
FRIEND_ID = 22222222
START = datetime(2023, 3, 1, 9, 0, tzinfo=UTC)
_WORDS = [
    "слушай",
    "сегодня",
    "завтра",
    "вечером",
    "работа",
    "проект",
    "встреча",
    "кино",
    "парк",
    "погода",
    "думаю",
    "кажется",
    "кстати",
    "потом",
    "купить",
    "забрать",
    "машина",
    "дача",
    "мама",
    "билеты",
    "концерт",
    "отпуск",
    "море",
    "поезд",
    "вокзал",
    "врач",
    "аптека",
    "кофе",
    "ужин",
    "пицца",
    "магазин",
    "деньги",
    "перевести",
    "созвон",
    "документы",
    "отчёт",
    "дедлайн",
    "начальник",
    "коллеги",
    "презентация",
    "ремонт",
    "квартира",
    "соседи",
    "кошка",
    "собака",
    "тренировка",
    "бассейн",
]
_FILLERS = ("ок", "да", "ага", "угу", "+", "норм", "спс", "хорошо", "да, ща", "ну да")
_EMOJI = ("😂", "👍", "🔥", "❤️", "🙈")
# Words per owner turn (1..6, then a long tail): about 60% under five, median four.
_LENGTHS = (1, 1, 1, 2, 2, 2, 3, 3, 4, 4, 5, 6, 7, 8, 10, 12, 15, 20, 28, 40)


def _sentence(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(words)).capitalize()


def _owner_text(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.22:
        return rng.choice(_FILLERS)
    if roll < 0.27:
        return rng.choice(_EMOJI) * rng.randint(1, 3)
    return _sentence(rng, rng.choice(_LENGTHS))


def personal_chat(
    conversations: int = 400, seed: int = 17, chat_id: int = FRIEND_ID
) -> list[MessageRecord]:
    """A private chat of ``conversations`` conversations, a day or so apart."""
    rng = random.Random(seed)
    messages: list[MessageRecord] = []
    moment = START

    def add(is_owner: bool, text: str, gap: timedelta) -> None:
        nonlocal moment
        moment += gap
        messages.append(
            MessageRecord(
                chat_id=chat_id,
                message_id=len(messages) + 1,
                sender_id=OWNER_ID if is_owner else chat_id,
                sender_name="Владимир" if is_owner else "Даша",
                is_owner=is_owner,
                date=moment,
                text=text,
            )
        )

    for _ in range(conversations):
        moment += timedelta(hours=rng.randint(5, 40))
        owner_first = rng.random() < 0.15
        for turn in range(rng.randint(2, 9) * 2):
            is_owner = (turn % 2 == 0) == owner_first
            pause = timedelta(seconds=rng.randint(20, 600))
            if is_owner:
                for burst in range(1 if rng.random() < 0.8 else rng.randint(2, 3)):
                    add(True, _owner_text(rng), pause if burst == 0 else timedelta(seconds=40))
            else:
                question = "?" if rng.random() < 0.5 else ""
                add(False, _sentence(rng, rng.choice(_LENGTHS)) + question, pause)
    return messages
