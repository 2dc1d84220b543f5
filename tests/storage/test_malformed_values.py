"""Values no Telegram export holds: each gets its specific refusal, and the database is unchanged.

Syntactically valid exports with one bad value each: a number too big for SQLite or for
Python's int(), a date outside 1970-2099, a negative chat id, lists nested 5,000 deep. Wrong
types that the parser can pass over (a list as ``action``, ``"user²"`` as a sender) are
imported instead. Every refusal names the field and where it is, and quotes no message text.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Callable
from datetime import timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from storage import errors, import_pipeline
from storage.db import Database
from storage.importer import import_export
from storage.messages import load_corpus
from tests.export_factory import OWNER_ID, full_export
from tests.html_exports import FIXTURES, HTML_OWNER_NAME
from tests.storage.exports import db_file_digest
from tests.storage.mutations import DEEP, Raw, export_bytes

Export = dict[str, Any]
SECRET = "a secret the owner wrote"
"""The text of every message of these exports: no refusal may quote it."""


def export() -> Export:
    data = full_export(conversations=2, chats=2)
    for chat in data["chats"]["list"]:
        for message in chat["messages"]:
            message["text"] = SECRET
    return data


def message(data: Export, index: int = 0, chat: int = 0) -> dict[str, Any]:
    return data["chats"]["list"][chat]["messages"][index]  # type: ignore[no-any-return]


def setting(*path: str | int, value: object) -> Callable[[Export], None]:
    def mutate(data: Export) -> None:
        node: Any = data
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value

    return mutate


def in_message(key: str, value: object, index: int = 2) -> Callable[[Export], None]:
    return setting("chats", "list", 0, "messages", index, key, value=value)


def single_chat_with_text_id(data: Export) -> None:
    """The first chat as a single-chat export (saved messages: no owner needed), its id text."""
    chat = data["chats"]["list"][0]
    data.clear()
    data.update(chat, id="22222200", type="saved_messages")


def dated_only(date: str) -> Callable[[Export], None]:
    """Message 3 with ``date`` and no ``date_unixtime``, as before 2021."""

    def mutate(data: Export) -> None:
        in_message("date_unixtime", None)(data)
        in_message("date", date)(data)

    return mutate


def write(tmp_path: Path, mutate: Callable[[Export], None]) -> Path:
    data = export()
    mutate(data)
    path = tmp_path / "result.json"
    path.write_bytes(export_bytes(data, ensure_ascii=False))
    return path


M3 = 'message 3 in the chat "Friend 0"'
REFUSED: dict[str, tuple[Callable[[Export], None], type[errors.ExportError], list[str]]] = {
    "message id 2**70": (
        in_message("id", 2**70),
        errors.MalformedValueError,
        ["a number of 22 digits as 'id' of a message in the chat \"Friend 0\"", "15 digits"],
    ),
    "message id -2**70": (in_message("id", -(2**70)), errors.MalformedValueError, ["'id'"]),
    "date_unixtime 2**70": (
        in_message("date_unixtime", str(2**70)),
        errors.MalformedValueError,
        [f"as 'date_unixtime' of {M3}", "between 1970 and 2099"],
    ),
    "date_unixtime as a number 2**70": (
        in_message("date_unixtime", 2**70),
        errors.MalformedValueError,
        ["'date_unixtime'"],
    ),
    "date_unixtime of 5,000 digits": (
        in_message("date_unixtime", "9" * 5_000),
        errors.MalformedValueError,
        ["a number of 5,000 digits as 'date_unixtime'"],
    ),
    "date_unixtime in 2100": (
        in_message("date_unixtime", "4102444800"),
        errors.MalformedValueError,
        ["\"4102444800\" as 'date_unixtime'"],
    ),
    "date_unixtime before 1970": (
        in_message("date_unixtime", "-1"),
        errors.MalformedValueError,
        ["\"-1\" as 'date_unixtime'"],
    ),
    "date in the year 9999": (
        dated_only("9999-12-31T23:59:59"),
        errors.MalformedValueError,
        [f"a date in the year 9999 as 'date' of {M3}"],
    ),
    "reply_to_message_id 2**70": (
        in_message("reply_to_message_id", 2**70),
        errors.MalformedValueError,
        [f"as 'reply_to_message_id' of {M3}"],
    ),
    "from_id user of 20 digits": (
        in_message("from_id", "user" + "9" * 20),
        errors.MalformedValueError,
        [f"as 'from_id' of {M3}"],
    ),
    "from_id number 2**70": (
        in_message("from_id", 2**70),
        errors.MalformedValueError,
        [f"as 'from_id' of {M3}"],
    ),
    "actor_id channel of 20 digits": (
        setting("chats", "list", 0, "messages", -1, "actor_id", value="channel" + "9" * 20),
        errors.MalformedValueError,
        ["as 'actor_id' of message 5 in the chat \"Friend 0\""],
    ),
    "user_id 1e400": (
        setting("personal_information", "user_id", value=Raw("1e400")),
        errors.MalformedValueError,
        ["a number too big for any id as 'user_id' of personal_information"],
    ),
    "user_id 2**70": (
        setting("personal_information", "user_id", value=2**70),
        errors.MalformedValueError,
        ["'user_id' of personal_information"],
    ),
    "user_id as text": (
        setting("personal_information", "user_id", value=str(OWNER_ID)),
        errors.MalformedValueError,
        [f"\"{OWNER_ID}\" as 'user_id'"],
    ),
    "chat id 2**70": (
        setting("chats", "list", 1, "id", value=2**70),
        errors.MalformedValueError,
        ["as 'id' of the chat \"Friend 1\"", "a positive integer"],
    ),
    "negative chat id": (
        setting("chats", "list", 1, "id", value=-5),
        errors.MalformedValueError,
        ["-5 as 'id' of the chat \"Friend 1\""],
    ),
    "single chat with a text id": (
        single_chat_with_text_id,
        errors.MalformedValueError,
        ['"22222200" as \'id\' of the chat "Friend 0"'],
    ),
    "5,000 levels in a message": (
        in_message("text_entities", Raw("[" * DEEP + "]" * DEEP)),
        errors.NestedTooDeepError,
        ["nested hundreds of levels deep", 'in the messages of the chat "Friend 0", near byte'],
    ),
    "5,000 levels in a chat's name": (
        setting("chats", "list", 1, "name", value=Raw('{"a":' * DEEP + "1" + "}" * DEEP)),
        errors.NestedTooDeepError,
        ["nested hundreds of levels deep"],
    ),
    "5,000 levels in personal_information": (
        setting("personal_information", "bio", value=Raw("[" * DEEP + "]" * DEEP)),
        errors.NestedTooDeepError,
        ["nested hundreds of levels deep"],
    ),
    "a number of 5,000 digits": (
        in_message("width", Raw("9" * 5_000)),
        errors.NumberTooLongError,
        ['thousands of digits long in the messages of the chat "Friend 0", near byte'],
    ),
}


async def refused(
    db: Database, path: Path, error_type: type[errors.ExportError], **kwargs: Any
) -> str:
    before = await db_file_digest(db)
    with pytest.raises(error_type) as caught:
        await import_export(db, path, **kwargs)
    assert await db_file_digest(db) == before
    return str(caught.value)


@pytest.mark.parametrize("case", REFUSED, ids=str)
async def test_a_bad_value_is_refused_by_name_and_place(
    db: Database, tmp_path: Path, case: str
) -> None:
    mutate, error_type, phrases = REFUSED[case]
    await import_export(db, write(tmp_path, lambda data: None))  # something already stored
    message = await refused(db, write(tmp_path, mutate), error_type)
    assert type(message) is str and "result.json" in message
    for phrase in phrases:
        assert phrase in message
    assert SECRET not in message
    assert "export again" in message
    assert (await import_export(db, write(tmp_path, lambda data: None))).new_messages == 0


@pytest.mark.parametrize(
    "case", ["message id 2**70", "user_id 1e400", "5,000 levels in a message", "negative chat id"]
)
async def test_the_parser_process_refuses_with_the_same_error(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    mutate, error_type, _ = REFUSED[case]
    path = write(tmp_path, mutate)
    in_process = await refused(db, path, error_type)
    monkeypatch.setattr(import_pipeline, "PIPELINE_MIN_BYTES", 0)
    assert await refused(db, path, error_type) == in_process


async def test_a_date_moved_out_of_datetime_by_the_zone_is_refused(
    db: Database, tmp_path: Path
) -> None:
    path = write(tmp_path, dated_only("0001-01-01T00:00:00"))
    east = timezone(timedelta(hours=3))
    message = await refused(db, path, errors.MalformedValueError, local_tz=east)
    assert f"a date in the year 1 as 'date' of {M3}" in message


IMPORTED: dict[str, Callable[[Export], None]] = {
    "action a list": setting("chats", "list", 0, "messages", -1, "action", value=["x"]),
    "media_type an object": in_message("media_type", {"a": 1}),
    "from_id with a superscript digit": in_message("from_id", "user²"),
    "from_id with two minus signs": in_message("from_id", "--5"),
    "reply_to_message_id true": in_message("reply_to_message_id", True),
    "text a list of lists": in_message("text", [["x"], {"text": 5}, 7]),
    "a message that is an escaped string": setting(
        "chats", "list", 0, "messages", 2, value="caf\u00e9"
    ),
    "a message id that is text": in_message("id", "3"),
    "a chat id that is text": setting("chats", "list", 1, "id", value="22222201"),
    "a negative message id": in_message("id", -999999999),
    "a chat name with a lone surrogate": setting("chats", "list", 1, "name", value="x\ud800"),
    "a chat type with a lone surrogate": setting("chats", "list", 1, "type", value="x\ud800"),
}


@pytest.mark.parametrize("case", IMPORTED, ids=str)
async def test_a_wrong_type_the_parser_can_pass_over_is_imported(
    db: Database, tmp_path: Path, case: str
) -> None:
    path = tmp_path / "result.json"
    data = export()
    IMPORTED[case](data)
    path.write_text(json.dumps(data, ensure_ascii=True), "utf-8")  # \u escapes: decoded path
    report = await import_export(db, path)
    assert report.messages >= 5  # a chat without a usable id is skipped, as before
    assert all(-(10**15) < m.message_id < 10**15 for m in await load_corpus(db))


# -- HTML: ids and dates read from the pages ----------------------------------------------------

HTML_PAGE = FIXTURES / "html" / "chats" / "chat_01" / "messages.html"


def html_zip(tmp_path: Path, old: str, new: str) -> Path:
    page = HTML_PAGE.read_text("utf-8")
    assert old in page
    path = tmp_path / "export.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("DataExport/chats/chat_01/messages.html", page.replace(old, new, 1))
    return path


PAGE_NAME = "DataExport/chats/chat_01/messages.html"
HTML_REFUSED = {
    "message id of 30 digits": (
        'id="message102"',
        f'id="message{"9" * 30}"',
        f"a number of 30 digits as 'id' of a message on the page {PAGE_NAME}",
    ),
    "reply link of 5,000 digits": (
        "go_to_message102",
        f"go_to_message{'9' * 5_000}",
        f"a number of 5,000 digits as 'reply link' of message 104 on the page {PAGE_NAME}",
    ),
    "date in 1900": (
        "30.03.2024 10:15:02 UTC+01:00",
        "30.03.1900 10:15:02 UTC+01:00",
        f"a date in the year 1900 as 'date' of message 101 on the page {PAGE_NAME}",
    ),
}


@pytest.mark.parametrize("case", HTML_REFUSED, ids=str)
async def test_a_bad_html_value_is_refused_by_name_and_page(
    db: Database, tmp_path: Path, case: str
) -> None:
    old, new, phrase = HTML_REFUSED[case]
    path = html_zip(tmp_path, old, new)
    message = await refused(db, path, errors.MalformedValueError, owner_name=HTML_OWNER_NAME)
    assert phrase in message
    assert "export.zip" in message


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("30.03.2024 10:15:02 UTC+01:00", "30.03.2024 10:15:02 UTC+99:00"),
        ("30.03.2024 10:15:02 UTC+01:00", "31.12.9999 23:59:59 UTC-03:00"),
        ("30 March 2024", "99 March 2024"),
        ("30 March 2024", "30 March 0000"),
    ],
    ids=["offset-of-99-hours", "after-year-9999", "day-99", "year-0"],
)
async def test_an_unreadable_html_date_is_skipped_not_fatal(
    db: Database, tmp_path: Path, old: str, new: str
) -> None:
    report = await import_export(db, html_zip(tmp_path, old, new), owner_name=HTML_OWNER_NAME)
    assert report.messages >= 14  # of the page's 15
