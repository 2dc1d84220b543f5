"""The owner's blind tests (/quiz): which of two replies to a held-out prompt was theirs.

A quiz row names the adapter, the prompt (by key), where the owner's real reply was shown (A
or B) and, once given, the answer. A prompt is quizzed once per adapter, answered or not.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, cast

from storage.db import Database, from_unix, to_unix

QuizSlot = Literal["A", "B"]
QuizAnswer = Literal["A", "B", "unsure"]
SLOTS: tuple[QuizSlot, ...] = ("A", "B")
ANSWERS: tuple[QuizAnswer, ...] = ("A", "B", "unsure")

INSERT_QUIZ = """
    INSERT INTO quizzes (adapter_id, prompt_key, owner_slot, created_at)
    VALUES (?, ?, ?, ?)
    ON CONFLICT (adapter_id, prompt_key) DO NOTHING
    RETURNING quiz_id
"""

SELECT_KEYS = """
    SELECT prompt_key FROM quizzes WHERE adapter_id = ?
"""

# A deleted adapter takes its quizzes with it (ON DELETE CASCADE).
SELECT_QUIZ = """
    SELECT quiz_id, adapter_id, prompt_key, owner_slot, created_at, answer, answered_at
    FROM quizzes
    WHERE quiz_id = ?
"""

UPDATE_ANSWER = """
    UPDATE quizzes SET answer = ?, answered_at = ?
    WHERE quiz_id = ? AND answer IS NULL
"""

SELECT_SCORES = """
    SELECT adapter_id,
           COUNT(*) AS answered,
           SUM(answer != owner_slot) AS missed
    FROM quizzes
    WHERE answer IS NOT NULL
    GROUP BY adapter_id
"""


@dataclass(frozen=True)
class Quiz:
    """One blind test of one adapter."""

    quiz_id: int
    adapter_id: int
    prompt_key: str
    owner_slot: QuizSlot
    """Where the owner's real reply was shown."""
    created_at: datetime
    answer: QuizAnswer | None
    answered_at: datetime | None


@dataclass(frozen=True)
class QuizScore:
    """An adapter's answered quizzes, and how many the owner did not see through."""

    adapter_id: int
    answered: int
    missed: int
    """Answers that picked the clone's reply or could not tell."""


async def quizzed_keys(db: Database, adapter_id: int) -> set[str]:
    """The prompts already quizzed for an adapter (answered or not)."""
    async with db.read() as conn, conn.execute(SELECT_KEYS, (adapter_id,)) as cursor:
        return {str(row[0]) for row in await cursor.fetchall()}


async def start_quiz(
    db: Database, adapter_id: int, prompt_key: str, owner_slot: QuizSlot, created_at: datetime
) -> int | None:
    """Record a new quiz and return its id; None when the prompt was quizzed for the adapter."""
    if owner_slot not in SLOTS:
        raise ValueError(f"owner_slot must be one of {SLOTS}, got {owner_slot!r}")
    params = (adapter_id, prompt_key, owner_slot, to_unix(created_at))
    async with db.transaction() as conn:
        cursor = await conn.execute(INSERT_QUIZ, params)
        row = await cursor.fetchone()
    return None if row is None else int(row[0])


async def get_quiz(db: Database, quiz_id: int) -> Quiz | None:
    """The quiz, or None when there is none (or its adapter was deleted)."""
    async with db.read() as conn, conn.execute(SELECT_QUIZ, (quiz_id,)) as cursor:
        row = await cursor.fetchone()
    return None if row is None else _quiz(row)


async def answer_quiz(db: Database, quiz_id: int, answer: QuizAnswer, at: datetime) -> bool:
    """Store the owner's answer; False when the quiz was already answered (or is gone)."""
    if answer not in ANSWERS:
        raise ValueError(f"answer must be one of {ANSWERS}, got {answer!r}")
    async with db.transaction() as conn:
        cursor = await conn.execute(UPDATE_ANSWER, (answer, to_unix(at), quiz_id))
        return cursor.rowcount == 1


async def quiz_scores(db: Database) -> dict[int, QuizScore]:
    """Each quizzed adapter's answered quizzes and misses, by adapter id."""
    async with db.read() as conn, conn.execute(SELECT_SCORES) as cursor:
        rows = await cursor.fetchall()
    return {
        int(row["adapter_id"]): QuizScore(
            int(row["adapter_id"]), int(row["answered"]), int(row["missed"])
        )
        for row in rows
    }


def _quiz(row: Any) -> Quiz:
    return Quiz(
        quiz_id=int(row["quiz_id"]),
        adapter_id=int(row["adapter_id"]),
        prompt_key=str(row["prompt_key"]),
        owner_slot=cast(QuizSlot, row["owner_slot"]),
        created_at=from_unix(row["created_at"]),
        answer=cast(QuizAnswer | None, row["answer"]),
        answered_at=None if row["answered_at"] is None else from_unix(row["answered_at"]),
    )
