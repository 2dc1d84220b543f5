"""Reply splitting and the serving history's shape."""

from __future__ import annotations

from datetime import UTC, datetime

from bot.history import history_messages
from bot.replies import split_message
from storage.models import CloneTurn


def test_short_reply_is_one_message() -> None:
    assert split_message("привет") == ["привет"]


def test_long_reply_splits_on_lines_then_words() -> None:
    text = ("a" * 3000) + "\n" + ("слово " * 400)
    chunks = split_message(text)
    assert all(len(c) <= 4096 for c in chunks)
    assert chunks[0] == "a" * 3000
    assert " ".join(chunks[1:]).split() == ["слово"] * 400


def test_unbroken_text_is_cut_at_the_limit() -> None:
    chunks = split_message("x" * 9000)
    assert [len(c) for c in chunks] == [4096, 4096, 808]


def _turn(role: str, text: str) -> CloneTurn:
    return CloneTurn(chat_id=1, role=role, text=text, date=datetime.now(UTC))  # type: ignore[arg-type]


def test_history_merges_bursts_and_starts_with_user() -> None:
    turns = [
        _turn("assistant", "old"),
        _turn("user", "a"),
        _turn("user", "b"),
        _turn("assistant", "c"),
    ]
    assert history_messages(turns) == [
        {"role": "user", "content": "a\nb"},
        {"role": "assistant", "content": "c"},
    ]
