"""Exports read as Latin-1 pieces: the same rows as decoded UTF-8, escapes, piece edges."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from storage import errors, export_text
from storage.export_format import to_message_row
from storage.export_parser import ExportParser
from storage.export_text import DecodedObject, JsonText
from tests.storage.exports import EXPORTS_DIR, FORMAT_ERAS, SAMPLES, big_export

OWNER = 11111111
ODD_TEXTS = [
    "привет 😂 👍🏽 ❤️",
    "\u00a0",  # a no-break space only: "empty" as text, a media message without caption
    "\u0085 \u2003",
    "Zoë café naïve",
    "\u00c3\u00a9",  # two Latin-1 letters whose UTF-8 bytes look like an encoded "é"
    "",
    'a\nb\t"quoted" \\ back',
]
ODD_MESSAGES: list[dict[str, Any]] = [
    {"text": text, "from": name, "from_id": peer, **extra}
    for text in ODD_TEXTS
    for name, peer in (("Фёдор 🦊", "user5"), ("Zoë", "user١٢"), ("plain", "channel7"))
    for extra in (
        {},
        {"photo": "photos/a.jpg"},
        {"media_type": "sticker", "sticker_emoji": "😆"},
        {"poll": {"question": "Почему? 🤔", "answers": []}},
        {"forwarded_from": "Вера", "via_bot": "@бот"},
        {"type": "service", "action": "phone_call", "actor": name, "actor_id": peer},
    )
] + [
    {"text": ["жирный ", {"type": "bold", "text": "🔥 текст"}, " end"], "from": "А"},
    {"text": "", "date_unixtime": None, "date": "2021-01-01T10:00:00", "from": "Б"},
]


def latin1_object(message: dict[str, Any]) -> dict[str, Any]:
    """The message as the parser's scanner reads it: UTF-8 bytes, one character each."""
    raw = json.dumps(message, ensure_ascii=False).encode("utf-8").decode("latin-1")
    value, _ = export_text._SCAN(raw, 0)
    assert type(value) is dict
    return value


def full(message: dict[str, Any], number: int) -> dict[str, Any]:
    base = {"id": number, "type": "message", "date_unixtime": str(1_600_000_000 + number)}
    return {**base, **message}


@pytest.mark.parametrize("number", range(len(ODD_MESSAGES)))
def test_a_latin1_read_message_gives_the_decoded_row(number: int) -> None:
    message = full(ODD_MESSAGES[number], number)
    expected = to_message_row(message, 1, OWNER)
    assert to_message_row(latin1_object(message), 1, OWNER, latin1=True) == expected
    assert expected is not None


def fixture_messages() -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    for path in FORMAT_ERAS + SAMPLES:
        data = json.loads(path.read_text("utf-8"))
        chats = [data] if "messages" in data else data["chats"]["list"]
        messages += [message for chat in chats for message in chat["messages"]]
    return messages


def test_every_fixture_message_gives_the_same_row_read_as_latin1() -> None:
    messages = fixture_messages()
    assert len(messages) > 100
    non_ascii = 0
    for message in messages:
        expected = to_message_row(message, 1, OWNER)
        assert to_message_row(latin1_object(message), 1, OWNER, latin1=True) == expected
        non_ascii += expected is not None and not expected[6].isascii()
    assert non_ascii > 20  # the fixtures do exercise the conversion


def parse_rows(path: Path, **parser_args: Any) -> list[Any]:
    return list(ExportParser(path, **parser_args).items())


def single_chat(tmp_path: Path, body: str, name: str = '"Чат 🐱"') -> Path:
    """A single-chat export: ``name`` and the messages array's ``body`` are JSON text."""
    path = tmp_path / "result.json"
    head = f'{{"name": {name}, "type": "saved_messages", '
    path.write_bytes((head + f'"id": {OWNER}, "messages": [{body}]}}').encode("utf-8"))
    return path


def test_escaped_characters_are_decoded_as_json_says(tmp_path: Path) -> None:
    messages = [
        r'{"id": 1, "date_unixtime": "1600000000", "text": "\u0416\u00e9 \ud83d\ude02"}',
        # \u00c3\u00a9 is "Ã©", not the UTF-8 bytes of "é"
        r'{"id": 2, "date_unixtime": "1600000001", "text": "\u00c3\u00a9 и é"}',
        r'{"id": 3, "date_unixtime": "1600000002", "text": "a\\u0416 не escape"}',
        '{"id": 4, "date_unixtime": "1600000003", "text": "ок"}',
    ]
    path = single_chat(tmp_path, ",\n".join(messages), name=r'"\u0416 chat"')
    chat, *rows = parse_rows(path)
    assert chat.title == "Ж chat"
    assert [row[6] for row in rows] == ["Жé 😂", "Ã© и é", "a\\u0416 не escape", "ок"]


def test_the_objects_with_escapes_are_the_decoded_ones() -> None:
    body = '[{"a": "\\u00e9"}, {"a": "é"}, 3, {"a": "e"}]'.encode().decode("latin-1")
    text = JsonText(io.BytesIO(body.encode("latin-1")), "f.json")
    assert text.peek() == "["
    objects = list(text.objects())
    assert [type(value) for value in objects] == [DecodedObject, dict, dict]
    assert objects[0] == {"a": "é"}
    assert objects[1] == {"a": "é".encode().decode("latin-1")}  # as read: bytes
    assert text.peek() == ""


def test_messages_cut_by_every_piece_edge_read_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = big_export(400)
    for number, message in enumerate(data["chats"]["list"][0]["messages"]):
        message["text"] = "слово 🎉 " * (number % 7) + message["text"]
    path = tmp_path / "result.json"
    path.write_text(json.dumps(data, ensure_ascii=False, indent=1), "utf-8")
    expected = parse_rows(path)
    monkeypatch.setattr(export_text, "READ_BYTES", 97)  # odd: cuts characters in half too
    monkeypatch.setattr(export_text, "LOW_WATER", 13)
    assert parse_rows(path) == expected
    assert parse_rows(path, chunk_rows=1) == expected
    assert len(expected) == 401


@pytest.mark.parametrize(
    ("where", "bad"),
    [("text", b'"caf\xe9"'), ("name", b'"\xff"'), ("sender", b'"\xc3"')],
)
def test_bytes_that_are_not_utf8_in_a_value_read_give_not_utf8(
    tmp_path: Path, where: str, bad: bytes
) -> None:
    text = bad if where == "text" else b'"ok"'
    sender = bad if where == "sender" else b'"A"'
    name = bad if where == "name" else b'"Chat"'
    message = b'{"id": 1, "date_unixtime": "1", "from": ' + sender + b', "text": ' + text + b"}"
    path = tmp_path / "result.json"
    path.write_bytes(
        b'{"name": '
        + name
        + b', "type": "saved_messages", "id": 1, "messages": ['
        + message
        + b"]}"
    )
    with pytest.raises(errors.NotUtf8Error):
        parse_rows(path)


def test_the_samples_parse_the_same_in_small_pieces(monkeypatch: pytest.MonkeyPatch) -> None:
    path = EXPORTS_DIR / "format-eras" / "2023-01.json"
    expected = parse_rows(path)
    monkeypatch.setattr(export_text, "READ_BYTES", 61)
    assert parse_rows(path) == expected


def test_keys_with_escapes_or_other_letters_are_read(tmp_path: Path) -> None:
    body = r'{"id": 1, "date_unixtime": "1", "text": "ok", "\u0416": 1, "ключ": 2}'
    path = tmp_path / "result.json"
    path.write_text(
        r'{"\u0416\u00e9": [1], "ключ": {"a": 1}, "\u006eame": "Чат", "type": "saved_messages",'
        f' "id": {OWNER}, "messages": [{body}]}}',
        "utf-8",
    )
    chat, row = parse_rows(path)
    assert chat.title == "Чат"
    assert row[6] == "ok"
