"""m011: the prompts of clone replies, the owner's labels of them, and the blind-test quizzes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from storage.clone_turns import Exchange, clear_clone_turns, prompt_of_turn, save_exchanges
from storage.collection import forget
from storage.corrections import ContextTurn
from storage.db import Database
from storage.migrations import MIGRATIONS, schema_versions
from storage.models import CloneTurn
from storage.quizzes import answer_quiz, get_quiz, quiz_scores, quizzed_keys, start_quiz
from storage.reply_labels import (
    ReplyLabel,
    count_labels,
    load_labels,
    remove_label,
    set_label,
)
from storage.runs import add_adapter

WHEN = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
PROMPT: list[ContextTurn] = [
    {"role": "user", "content": "Привет! Пойдём в кино?"},
    {"role": "assistant", "content": "Может быть"},
    {"role": "user", "content": "В семь?"},
]


def _exchange(chat_id: int, prompt: list[ContextTurn]) -> Exchange:
    asked = CloneTurn(chat_id, "user", "В семь?", WHEN, message_id=10)
    reply = CloneTurn(chat_id, "assistant", "давай", WHEN, message_id=11)
    return Exchange(chat_id, [asked], reply, [11], prompt)


async def test_a_reply_keeps_the_turns_it_answered_until_its_chat_is_reset(db: Database) -> None:
    kept, unknown = await save_exchanges(db, [_exchange(5, PROMPT), _exchange(6, [])])
    assert await prompt_of_turn(db, kept) == PROMPT
    assert await prompt_of_turn(db, unknown) is None
    await clear_clone_turns(db, 5)
    assert await prompt_of_turn(db, kept) is None


async def test_labels_are_replaced_removed_counted_and_outlive_a_reset(db: Database) -> None:
    [turn_id] = await save_exchanges(db, [_exchange(5, PROMPT)])
    await set_label(db, ReplyLabel(5, turn_id, "good", "reaction", PROMPT, "давай", WHEN))
    later = WHEN + timedelta(minutes=1)
    await set_label(db, ReplyLabel(5, turn_id, "bad", "button", PROMPT, "давай", later))
    await set_label(db, ReplyLabel(6, 1, "good", "reaction", PROMPT[:1], "ок", WHEN))
    assert await count_labels(db) == {"good": 1, "bad": 1}
    await clear_clone_turns(db, 5)  # /reset: the label keeps its own copy
    [other, label] = await load_labels(db)
    assert (label.chat_id, label.turn_id, label.label, label.source) == (
        5,
        turn_id,
        "bad",
        "button",
    )
    assert label.context == PROMPT and label.reply_text == "давай" and label.updated_at == later
    assert other.chat_id == 6
    assert await remove_label(db, 6, 1) and not await remove_label(db, 6, 1)
    await forget(db, 5)  # /forget of the chat takes its labels too
    assert await load_labels(db) == []


@pytest.mark.parametrize(
    ("label", "problem"),
    [
        (ReplyLabel(5, 1, "meh", "reaction", PROMPT, "x", WHEN), "label must be"),  # type: ignore[arg-type]
        (ReplyLabel(5, 1, "good", "sms", PROMPT, "x", WHEN), "source must be"),  # type: ignore[arg-type]
        (ReplyLabel(5, 1, "good", "button", [], "x", WHEN), "ending on a user turn"),
        (ReplyLabel(5, 1, "good", "button", PROMPT[:2], "x", WHEN), "ending on a user turn"),
    ],
)
async def test_a_bad_label_is_refused_and_stores_nothing(
    db: Database, label: ReplyLabel, problem: str
) -> None:
    with pytest.raises(ValueError, match=problem):
        await set_label(db, label)
    assert await load_labels(db) == []


async def test_quizzes_once_per_prompt_answered_once_and_scored(db: Database) -> None:
    first = await add_adapter(db, None, "/a1", {}, promoted=True)
    second = await add_adapter(db, None, "/a2", {}, promoted=False)
    quiz = await start_quiz(db, first, "k1", "A", WHEN)
    assert quiz is not None
    assert await start_quiz(db, first, "k1", "B", WHEN) is None  # never the same prompt twice
    other = await start_quiz(db, second, "k1", "B", WHEN)  # another adapter may have it
    assert await quizzed_keys(db, first) == {"k1"}
    assert await answer_quiz(db, quiz, "B", WHEN)
    assert not await answer_quiz(db, quiz, "A", WHEN)  # answered once
    unsure = await start_quiz(db, first, "k2", "B", WHEN)
    right = await start_quiz(db, first, "k3", "A", WHEN)
    assert unsure is not None and right is not None and other is not None
    await answer_quiz(db, unsure, "unsure", WHEN)
    await answer_quiz(db, right, "A", WHEN)
    scores = await quiz_scores(db)
    assert (scores[first].answered, scores[first].missed) == (3, 2)
    assert second not in scores  # asked, not answered
    stored = await get_quiz(db, quiz)
    assert stored is not None and (stored.owner_slot, stored.answer) == ("A", "B")
    with pytest.raises(ValueError, match="answer must be"):
        await answer_quiz(db, other, "C", WHEN)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="owner_slot must be"):
        await start_quiz(db, first, "k4", "C", WHEN)  # type: ignore[arg-type]
    async with db.transaction() as conn:
        await conn.execute("DELETE FROM adapters WHERE adapter_id = ?", (first,))
    assert await get_quiz(db, quiz) is None and first not in await quiz_scores(db)


async def test_m011_applies_to_a_database_from_before_it(tmp_path: Path) -> None:
    path = tmp_path / "older.sqlite3"
    before = next(i for i, m in enumerate(MIGRATIONS) if m.name == "m011_teaching")
    older = await Database.open(path, migrations=MIGRATIONS[:before])
    [turn_id] = await save_exchanges(older, [_exchange(5, [])])
    await older.close()
    db = await Database.open(path)
    try:
        assert await schema_versions(db.conn) == [m.version for m in MIGRATIONS]
        assert await prompt_of_turn(db, turn_id) is None  # replies from before keep working
        await set_label(db, ReplyLabel(5, turn_id, "good", "reaction", PROMPT, "давай", WHEN))
        assert await count_labels(db) == {"good": 1, "bad": 0}
    finally:
        await db.close()
