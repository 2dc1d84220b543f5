"""Batched clone-turn storage: many chats' histories in one query, many replies in one commit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import cast

import pytest

from storage.clone_turns import (
    Exchange,
    add_clone_turn,
    recent_clone_turns,
    recent_clone_turns_of_chats,
    save_exchanges,
    turn_for_message,
)
from storage.db import Database
from storage.models import CloneRole, CloneTurn

NOW = datetime.now(UTC).replace(microsecond=0)


def _turn(chat_id: int, role: str, text: str, minutes_ago: float = 0) -> CloneTurn:
    # Any role, so that a bad one can be tried.
    when = NOW - timedelta(minutes=minutes_ago)
    return CloneTurn(chat_id=chat_id, role=cast(CloneRole, role), text=text, date=when)


async def test_histories_of_several_chats_match_one_chat_reads(db: Database) -> None:
    for chat_id in (1, 2, 3):
        for n in range(8):
            role: CloneRole = "user" if n % 2 == 0 else "assistant"
            await add_clone_turn(
                db, CloneTurn(chat_id, role, f"{chat_id}-{n}", NOW - timedelta(minutes=40 - n * 5))
            )
    since = NOW - timedelta(minutes=30)
    many = await recent_clone_turns_of_chats(db, [1, 2, 3, 4], limit=3, since=since)
    for chat_id in (1, 2, 3, 4):
        assert many[chat_id] == await recent_clone_turns(db, chat_id, limit=3, since=since)
    assert [t.text for t in many[2]] == ["2-5", "2-6", "2-7"]
    assert many[4] == []


async def test_exchanges_of_several_chats_are_stored_and_linked(db: Database) -> None:
    exchanges = [
        Exchange(
            1,
            [_turn(1, "user", "hi"), _turn(1, "user", "there")],
            _turn(1, "assistant", "hey"),
            [7, 8],
        ),
        Exchange(2, [_turn(2, "user", "yo")], _turn(2, "assistant", "yo!"), [3]),
    ]
    first, second = await save_exchanges(db, exchanges)
    assert [t.text for t in await recent_clone_turns(db, 1, limit=10)] == ["hi", "there", "hey"]
    for chat_id, message_id, turn_id, text in (
        (1, 7, first, "hey"),
        (1, 8, first, "hey"),
        (2, 3, second, "yo!"),
    ):
        stored = await turn_for_message(db, chat_id, message_id)
        assert stored is not None and stored.turn_id == turn_id and stored.turn.text == text


async def test_a_bad_exchange_stores_nothing_of_its_batch(db: Database) -> None:
    good = Exchange(1, [_turn(1, "user", "hi")], _turn(1, "assistant", "hey"), [1])
    bad = Exchange(2, [_turn(2, "owner", "??")], _turn(2, "assistant", "x"), [2])
    with pytest.raises(ValueError, match="role"):
        await save_exchanges(db, [good, bad])
    assert await recent_clone_turns(db, 1, limit=10) == []
