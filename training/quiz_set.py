"""The material of the owner's blind test (/quiz), kept in the adapter directory.

When the judge lets a new adapter answer its run's held-out conversations (for the style
checks, ``training.judge``), each answer is kept with the owner's real reply to the same turns:
prompts the owner really answered, that this adapter never trained on (its own run's eval
split), answered as serving answers (clone.json's generation settings). The bot shows one
at a time, the two replies in random order.

Left out: replies cut at the token limit (a reply stopping mid-word would give the clone away),
empty ones, and replies equal to the owner's (there is nothing to tell apart).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from storage.private_files import write_private_text
from training.chat_format import ChatMessage

QUIZ_FILE = "quiz.jsonl"


@dataclass(frozen=True)
class QuizItem:
    """A held-out prompt, the owner's real reply to it, and the adapter's."""

    key: str
    """Names the prompt: a prompt is quizzed once per adapter."""
    prompt: list[ChatMessage]
    """The turns before the owner's reply (no system message)."""
    owner: str
    clone: str


def prompt_key(prompt: Sequence[ChatMessage], owner: str) -> str:
    """A short stable name of a held-out prompt and its reply."""
    turns = [[m["role"], m["content"]] for m in prompt]
    text = json.dumps([turns, owner], ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def quiz_items(
    pairs: Sequence[tuple[Sequence[ChatMessage], str]], replies: Sequence[tuple[str, bool]]
) -> list[QuizItem]:
    """The quiz items of held-out (prompt, owner reply) pairs and the adapter's replies to them
    (text, whether it ended on its own), in the same order."""
    if len(pairs) != len(replies):
        raise ValueError(f"{len(pairs)} held-out prompts but {len(replies)} replies")
    items = []
    for (prompt, owner), (clone, ended) in zip(pairs, replies, strict=True):
        if not ended or not clone.strip() or clone.strip() == owner.strip():
            continue
        turns: list[ChatMessage] = [{"role": m["role"], "content": m["content"]} for m in prompt]
        items.append(QuizItem(prompt_key(turns, owner), turns, owner, clone))
    return items


def save_quiz_set(adapter_dir: Path, items: Sequence[QuizItem]) -> Path:
    """Write the items beside the adapter (replacing an older set); return the file."""
    path = adapter_dir / QUIZ_FILE
    lines = [
        json.dumps(
            {"key": i.key, "prompt": i.prompt, "owner": i.owner, "clone": i.clone},
            ensure_ascii=False,
        )
        for i in items
    ]
    write_private_text(path, "".join(line + "\n" for line in lines))
    return path


def load_quiz_set(adapter_dir: Path) -> list[QuizItem]:
    """The adapter's quiz items; FileNotFoundError when it has none (judged before quizzes
    existed), ValueError when the file is damaged."""
    path = adapter_dir / QUIZ_FILE
    items = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        try:
            data = json.loads(line)
            prompt: list[ChatMessage] = [
                {"role": m["role"], "content": str(m["content"])} for m in data["prompt"]
            ]
            owner, clone = str(data["owner"]), str(data["clone"])
            items.append(QuizItem(str(data["key"]), prompt, owner, clone))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{path}: line {number} is not a quiz item ({exc!r})") from exc
    return items
