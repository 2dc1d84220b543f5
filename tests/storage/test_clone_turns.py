"""Serving history with the clone: recent turns, the `since` cut-off, clearing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from storage.clone_turns import (
    add_clone_turn,
    clear_clone_turns,
    link_sent_messages,
    recent_clone_turns,
    turn_for_message,
    turns_before,
)
from storage.db import Database
from storage.messages import corpus_counts
from storage.models import CloneRole, CloneTurn

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


async def test_recent_turns_oldest_first_with_limit(db: Database) -> None:
    for n in range(5):
        role: CloneRole = "user" if n % 2 == 0 else "assistant"
        await add_clone_turn(db, CloneTurn(7, role, f"t{n}", T0 + timedelta(minutes=n)))
    await add_clone_turn(db, CloneTurn(8, "user", "other chat", T0))
    turns = await recent_clone_turns(db, 7, limit=3, since=None)
    assert turns == [
        CloneTurn(7, "user", "t2", T0 + timedelta(minutes=2)),
        CloneTurn(7, "assistant", "t3", T0 + timedelta(minutes=3)),
        CloneTurn(7, "user", "t4", T0 + timedelta(minutes=4)),
    ]
    assert all(turn.date.tzinfo is UTC for turn in turns)


async def test_since_cuts_off_older_turns(db: Database) -> None:
    await add_clone_turn(db, CloneTurn(7, "user", "yesterday", T0 - timedelta(days=1)))
    await add_clone_turn(
        db, CloneTurn(7, "assistant", "reply", T0 - timedelta(days=1, seconds=-5))
    )
    await add_clone_turn(db, CloneTurn(7, "user", "today", T0))
    turns = await recent_clone_turns(db, 7, limit=10, since=T0 - timedelta(hours=1))
    assert [turn.text for turn in turns] == ["today"]
    exactly = await recent_clone_turns(db, 7, limit=10, since=T0)
    assert [turn.text for turn in exactly] == ["today"]
    assert len(await recent_clone_turns(db, 7, limit=10, since=None)) == 3


async def test_clear_and_isolation_from_corpus(db: Database) -> None:
    await add_clone_turn(db, CloneTurn(7, "user", "a", T0))
    await add_clone_turn(db, CloneTurn(7, "assistant", "b", T0))
    await add_clone_turn(db, CloneTurn(8, "user", "c", T0))
    assert (await corpus_counts(db)).messages == 0  # never part of the owner's corpus
    assert await clear_clone_turns(db, 7) == 2
    assert await recent_clone_turns(db, 7, limit=10) == []
    assert len(await recent_clone_turns(db, 8, limit=10)) == 1


async def test_bad_role_and_naive_date_are_refused(db: Database) -> None:
    with pytest.raises(ValueError, match="role"):
        await add_clone_turn(db, CloneTurn(7, "system", "x", T0))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="naive"):
        await add_clone_turn(db, CloneTurn(7, "user", "x", datetime(2024, 1, 1)))


async def test_sent_messages_lead_back_to_their_turn(db: Database) -> None:
    await add_clone_turn(db, CloneTurn(7, "user", "how are you", T0))
    reply_id = await add_clone_turn(
        db, CloneTurn(7, "assistant", "fine\nyou?", T0 + timedelta(seconds=3))
    )
    await link_sent_messages(db, 7, reply_id, [101, 102])
    await link_sent_messages(db, 7, reply_id, [102])  # a retry links nothing twice
    for message_id in (101, 102):
        found = await turn_for_message(db, 7, message_id)
        assert found is not None
        assert found.turn_id == reply_id
        assert found.turn == CloneTurn(7, "assistant", "fine\nyou?", T0 + timedelta(seconds=3))
    assert await turn_for_message(db, 8, 101) is None  # message ids are per chat
    assert await turn_for_message(db, 7, 999) is None


async def test_turns_before_a_turn_are_its_context(db: Database) -> None:
    await add_clone_turn(db, CloneTurn(7, "user", "old", T0 - timedelta(days=1)))
    await add_clone_turn(db, CloneTurn(7, "user", "hi", T0))
    await add_clone_turn(db, CloneTurn(7, "assistant", "hey", T0 + timedelta(seconds=1)))
    await add_clone_turn(db, CloneTurn(7, "user", "plans?", T0 + timedelta(seconds=5)))
    reply_id = await add_clone_turn(
        db, CloneTurn(7, "assistant", "none", T0 + timedelta(seconds=8))
    )
    await add_clone_turn(db, CloneTurn(7, "user", "later", T0 + timedelta(seconds=30)))
    context = await turns_before(db, 7, reply_id, limit=10, since=T0 - timedelta(hours=1))
    assert [turn.text for turn in context] == ["hi", "hey", "plans?"]
    assert [t.text for t in await turns_before(db, 7, reply_id, limit=2)] == ["hey", "plans?"]


async def test_clearing_a_chat_unlinks_its_messages(db: Database) -> None:
    reply_id = await add_clone_turn(db, CloneTurn(7, "assistant", "hey", T0))
    await link_sent_messages(db, 7, reply_id, [5])
    await clear_clone_turns(db, 7)
    assert await turn_for_message(db, 7, 5) is None
