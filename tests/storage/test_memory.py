"""The owner's words index (FTS5, m010): kept current by every write path, searched safely."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from storage.collection import delete_messages, forget, update_message_text
from storage.db import Database
from storage.importer import import_export
from storage.memory import MemoryReader, Recalled, match_expression, recall
from storage.messages import save_live_message, save_messages
from storage.migrations import MIGRATIONS
from storage.models import ChatRecord, MessageRecord
from tests.export_factory import OWNER_ID, write_full_export
from training.memory import query_stems

WHEN = datetime(2025, 5, 1, 12, 0, tzinfo=UTC)
LATER = WHEN + timedelta(days=30)
CHAT = ChatRecord(1001, "Даша", "personal_chat")


def _message(message_id: int, text: str, **fields: object) -> MessageRecord:
    values: dict[str, object] = {
        "chat_id": CHAT.chat_id,
        "message_id": message_id,
        "sender_id": OWNER_ID,
        "sender_name": "Owner",
        "is_owner": True,
        "date": WHEN + timedelta(minutes=message_id),
        "text": text,
        "source": "live",
    }
    values.update(fields)
    return MessageRecord(**values)  # type: ignore[arg-type]


async def _find(db: Database, text: str, before: datetime = LATER) -> list[str]:
    found = await recall(db, query_stems([text]), before=before, limit=20)
    return [item.text for item in found]


def _integrity(path: Path) -> None:
    """FTS5's own check that the index matches the owner's messages, row for row."""
    conn = sqlite3.connect(path)
    try:
        # rank 1: every indexed row is compared with the owner's messages (the view) too.
        conn.execute(
            "INSERT INTO owner_words_index (owner_words_index, rank) VALUES ('integrity-check', 1)"
        )
    finally:
        conn.close()


async def test_russian_word_forms_match_through_stems(db: Database) -> None:
    for message_id, text in enumerate(
        [
            "Давай встретимся у кинотеатра в семь",
            "Купил билеты на концерт в субботу",
            "Работаю до вечера, потом свободен",
        ],
        start=1,
    ):
        await save_live_message(db, CHAT, _message(message_id, text))
    # Other forms of the same words: встречаемся/встретимся, кино/кинотеатра, работы/работаю.
    assert await _find(db, "Где встречаемся? У кино?") == ["Давай встретимся у кинотеатра в семь"]
    assert await _find(db, "Много работы сегодня?") == ["Работаю до вечера, потом свободен"]
    assert await _find(db, "Концертом доволен?") == ["Купил билеты на концерт в субботу"]
    assert await _find(db, "Pizza tonight?") == []
    # Whole words would miss them: the stems (prefix queries) are what matches.
    async with db.read() as conn:
        whole = await conn.execute_fetchall(
            "SELECT rowid FROM owner_words_index WHERE owner_words_index MATCH ?",
            ('"встречаемся" OR "кино"',),
        )
    assert list(whole) == []


async def test_only_the_owners_own_typed_words_are_indexed(db: Database) -> None:
    messages = [
        _message(1, "Мой отпуск в августе на море"),
        _message(2, "Отпуск? Завидую", is_owner=False, sender_id=5),
        _message(3, "Отпуск мечты, читайте канал", forwarded_from="Канал"),
        _message(4, "отпуск gif", via_bot="gif"),
        _message(5, "", kind="media"),
    ]
    async with db.transaction() as conn:
        from storage.messages import save_chats

        await save_chats(conn, [CHAT])
        await save_messages(conn, messages)
    assert await _find(db, "Когда отпуск?") == ["Мой отпуск в августе на море"]
    _integrity(db.path)


async def test_an_import_indexes_its_new_owner_messages_once(db: Database, tmp_path: Path) -> None:
    export = write_full_export(tmp_path / "result.json", conversations=6, chats=2)
    await import_export(db, export)
    found = await _find(db, "Как погода в парке?")
    assert found == ["Давай в парк, погода вроде будет хорошая весь день"] * 2
    _integrity(db.path)
    await import_export(db, export)  # nothing new: nothing indexed twice
    assert await _find(db, "Как погода в парке?") == found
    _integrity(db.path)


async def test_edits_and_deletions_keep_the_index_current(db: Database) -> None:
    await save_live_message(db, CHAT, _message(1, "Купил новую машину вчера"))
    await save_live_message(db, CHAT, _message(2, "Собака заболела, везу к врачу"))
    other = ChatRecord(2002, "Борис", "personal_chat")
    await save_live_message(db, other, _message(3, "Машина сломалась опять", chat_id=2002))
    await update_message_text(db, CHAT.chat_id, 1, "Купил новый велосипед", "text", WHEN)
    assert await _find(db, "Какая машина?") == ["Машина сломалась опять"]
    assert await _find(db, "Велосипед какой?") == ["Купил новый велосипед"]
    # A Business deletion, then /forget of a chat, then /forget all.
    assert await delete_messages(db, CHAT.chat_id, [2]) == 1
    assert await _find(db, "Что с собакой?") == []
    _integrity(db.path)
    await forget(db, 2002)
    assert await _find(db, "Какая машина?") == []
    assert await _find(db, "Велосипед какой?") == ["Купил новый велосипед"]
    await forget(db, None)
    assert await _find(db, "Велосипед какой?") == []
    _integrity(db.path)


async def test_only_messages_older_than_the_cut_are_found(db: Database) -> None:
    await save_live_message(db, CHAT, _message(1, "Поезд в Казань в пятницу"))
    sent = WHEN + timedelta(minutes=1)
    assert await _find(db, "Когда поезд?", before=sent) == []
    assert await _find(db, "Когда поезд?", before=sent + timedelta(seconds=1)) == [
        "Поезд в Казань в пятницу"
    ]


@pytest.mark.parametrize(
    "text",
    [
        '"',
        '"поезд',
        "поезд AND NOT вокзал",
        "NEAR(поезд вокзал, 2)",
        "поезд*",
        "* OR *",
        "(поезд) OR -вокзал ^кот",
        "поезд:вокзал",
        "?!?! ... ---",
        "",
        "🙂🙂",
        "AND OR NOT NEAR",
    ],
)
async def test_user_text_never_breaks_a_search_nor_matches_everything(
    db: Database, text: str
) -> None:
    await save_live_message(db, CHAT, _message(1, "Поезд уходит с вокзала в девять"))
    await save_live_message(db, CHAT, _message(2, "Кот спит весь день"))
    await save_live_message(db, CHAT, _message(3, "and or not near, the operators"))
    found = await _find(db, text)
    assert len(found) <= 2, "a hostile query matched everything"
    stems = query_stems([text])
    for item in found:  # each found message holds one of the query's words
        assert any(stem in item.casefold() for stem in stems), item
    # Raw stems straight from user text, without the word extraction, are safe as well:
    # an operator is a plain word (found only where the owner wrote it), the rest nothing.
    hostile = [text, '"', "*", "NEAR(", "a OR b", "", "(", "-"]
    assert await recall(db, hostile, before=LATER, limit=5) == []
    operators = await recall(db, ["AND", "NEAR"], before=LATER, limit=5)
    assert [item.message_id for item in operators] == [3]


def test_a_match_expression_quotes_every_stem() -> None:
    assert match_expression(["поезд", "вокза"]) == '"поезд"* OR "вокза"*'
    assert match_expression(['"', "a b", "*", "NEAR(", ""]) is None


async def test_common_stems_are_left_out_and_rare_ones_searched(db: Database) -> None:
    async with db.transaction() as conn:
        from storage.messages import save_chats

        await save_chats(conn, [CHAT])
        common = [_message(i, f"сегодня обычный день номер {i}") for i in range(1, 41)]
        await save_messages(conn, [*common, _message(99, "сегодня купил гитару")])
    with MemoryReader(db.path, max_matches=10) as reader:
        found = reader.recall(["сегод", "гитар"], before=LATER, limit=5)
        assert [item.text for item in found] == ["сегодня купил гитару"]
        assert reader.recall(["сегод"], before=LATER, limit=5) == []


async def test_the_reader_of_a_worker_thread_finds_the_same(db: Database) -> None:
    await save_live_message(db, CHAT, _message(1, "Пицца с ананасами это вкусно"))
    stems = query_stems(["Любишь пиццу?"])
    expected = await recall(db, stems, before=LATER, limit=5)
    with MemoryReader(db.path) as reader:
        assert reader.recall(stems, before=LATER, limit=5) == expected
    assert expected and isinstance(expected[0], Recalled)


async def test_an_older_database_gets_its_messages_indexed(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    old = await Database.open(path, migrations=MIGRATIONS[:9])
    async with old.transaction() as conn:
        await conn.execute("INSERT INTO chats VALUES (1001, 'Даша', 'personal_chat', 0, 0)")
        await conn.executemany(
            "INSERT INTO messages (chat_id, message_id, is_owner, date_utc, text, source) "
            "VALUES (1001, ?, ?, ?, ?, 'live')",
            [(1, 1, 1746100800, "Ремонт на кухне почти закончен"), (2, 0, 1746100860, "Ремонт?")],
        )
    await old.close()
    db = await Database.open(path)
    try:
        assert await _find(db, "Как ремонт?") == ["Ремонт на кухне почти закончен"]
    finally:
        await db.close()
    _integrity(path)
