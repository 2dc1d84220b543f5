"""A deterministic synthetic training set for the training benchmarks.

1,700 cleaned multi-turn conversations (system prompt, then user/owner turns ending on the
owner), in the shape ``training.dataset`` writes: Russian, English and mixed chats; most owner
replies are short, some are long; about 300 tokens per sample with the Qwen2.5 tokenizer.
Conversation ``i`` draws from its own ``random.Random`` seeded by (seed, i), so it is the same
whatever the count.
"""

from __future__ import annotations

import random
from pathlib import Path

from training.chat_format import ChatMessage
from training.config import DEFAULT_SYSTEM_PROMPT
from training.dataset import write_jsonl

CONVERSATIONS = 1_700
EVAL_CONVERSATIONS = 40
SEED = 2024
_RUSSIAN = (
    "привет как дела что нового сегодня завтра вечером работа проект встреча кино парк погода "
    "отлично давай может быть думаю кажется слушай кстати вообще точно потом конечно надо "
    "посмотреть написать позвонить успеть сделать купить забрать приехать выходные неделя "
    "дорога метро кофе обед ужин мама друзья отпуск билеты поезд дача собака кот книга сериал "
    "начальник отчёт дедлайн созвон задача вопрос ответ идея план понял договорились"
)
_ENGLISH = (
    "hello sure maybe tomorrow tonight meeting project weekend coffee great idea really send "
    "notes later think about it sounds good call me when free lunch dinner train tickets "
    "deadline report review merge branch release bug fix deploy movie book trip weather "
    "honestly probably definitely awesome thanks sorry busy running late on my way see you"
)
RUSSIAN_WORDS = tuple(_RUSSIAN.split())
ENGLISH_WORDS = tuple(_ENGLISH.split())
SHORT_REPLIES = ("ок", "да", "ага", "неа", "ok", "yep", "sure", "лол", "понял", "👍", "ахах")


def _sentence(rng: random.Random, words: tuple[str, ...], low: int, high: int) -> str:
    text = " ".join(rng.choice(words) for _ in range(rng.randint(low, high))).capitalize()
    return text + rng.choice((".", "!", "?", "", ")", "..."))


def _text(rng: random.Random, language: str, sentences: int, low: int, high: int) -> str:
    parts = []
    for _ in range(sentences):
        pool = RUSSIAN_WORDS if language == "ru" else ENGLISH_WORDS
        if language == "mixed":
            pool = rng.choice((RUSSIAN_WORDS, ENGLISH_WORDS))
        parts.append(_sentence(rng, pool, low, high))
    return " ".join(parts)


def _owner_reply(rng: random.Random, language: str) -> str:
    """Mostly short, sometimes a paragraph or a few lines, now and then very long."""
    roll = rng.random()
    if roll < 0.15:
        return rng.choice(SHORT_REPLIES) + " " + _text(rng, language, 1, 1, 4)
    if roll < 0.70:
        return _text(rng, language, rng.randint(1, 2), 3, 10)
    if roll < 0.93:
        lines = [_text(rng, language, rng.randint(1, 3), 5, 16) for _ in range(rng.randint(1, 4))]
        return "\n".join(lines)
    return _text(rng, language, rng.randint(8, 20), 8, 18)


def conversation(index: int, seed: int = SEED) -> list[ChatMessage]:
    """The index-th synthetic sample: system prompt, 1-6 exchanges, ending on the owner."""
    rng = random.Random(seed * 1_000_003 + index)
    language = rng.choices(("ru", "en", "mixed"), weights=(5, 3, 2))[0]
    messages: list[ChatMessage] = [{"role": "system", "content": DEFAULT_SYSTEM_PROMPT}]
    exchanges = rng.choices((1, 2, 3, 4, 6), weights=(2, 3, 3, 3, 1))[0]
    for _ in range(exchanges):
        user = _text(rng, language, rng.randint(1, 3), 3, 14)
        messages.append({"role": "user", "content": user})
        messages.append({"role": "assistant", "content": _owner_reply(rng, language)})
    return messages


def conversations(count: int = CONVERSATIONS, seed: int = SEED) -> list[list[ChatMessage]]:
    """``count`` samples, the same ones on every call."""
    return [conversation(index, seed) for index in range(count)]


def write_splits(
    directory: Path, count: int = CONVERSATIONS, eval_count: int = EVAL_CONVERSATIONS
) -> tuple[Path, Path]:
    """Write ``count`` training samples and ``eval_count`` held-out ones as JSONL."""
    directory.mkdir(parents=True, exist_ok=True)
    train_file, eval_file = directory / "train.jsonl", directory / "eval.jsonl"
    write_jsonl(train_file, conversations(count))
    write_jsonl(eval_file, [conversation(count + i) for i in range(eval_count)])
    return train_file, eval_file
