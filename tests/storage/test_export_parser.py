"""The streaming parser on every export era, unusual key orders, zips and owner rules."""

from __future__ import annotations

import json
import zipfile
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from storage import errors
from storage.export_parser import ExportParser
from storage.models import ChatRecord, MessageRecord
from tests.storage.exports import (
    EXPORTS_DIR,
    FORMAT_ERAS,
    FULL_EXPORT_OWNER,
    SAMPLE_OWNERS,
    SAMPLES,
    count_with_json,
)


def parse(path: Path, owner_id: int | None = None) -> tuple[ExportParser, list[Any]]:
    parser = ExportParser(path, owner_id=owner_id)
    return parser, list(parser.records())


def write_json(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data, ensure_ascii=False), "utf-8")
    return path


def test_there_are_17_format_eras_and_4_samples() -> None:
    assert len(FORMAT_ERAS) == 17
    assert len(SAMPLES) == 4


@pytest.mark.parametrize("path", FORMAT_ERAS, ids=lambda p: p.stem)
def test_every_format_era_parses_to_the_json_counts(path: Path) -> None:
    parser, records = parse(path)
    expected = count_with_json(path, FULL_EXPORT_OWNER)
    chats = [r for r in records if isinstance(r, ChatRecord)]
    messages = [r for r in records if isinstance(r, MessageRecord)]
    assert parser.kind == "full_account"
    assert parser.owner_id == FULL_EXPORT_OWNER
    assert len(chats) == expected.chats
    assert len(messages) == expected.messages
    assert sum(m.is_owner for m in messages) == expected.owner_messages
    assert all(m.date.utcoffset() == timedelta(0) for m in messages)


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.stem)
def test_every_sample_parses_with_its_owner(path: Path) -> None:
    owner = SAMPLE_OWNERS[path.name]
    parser, records = parse(path, owner)
    expected = count_with_json(path, owner)
    assert parser.kind == "single_chat"
    assert isinstance(records[0], ChatRecord)
    messages = [r for r in records if isinstance(r, MessageRecord)]
    assert len(messages) == expected.messages
    assert sum(m.is_owner for m in messages) == expected.owner_messages


def test_chat_records_precede_their_messages_with_bot_api_ids() -> None:
    _, records = parse(EXPORTS_DIR / "format-eras" / "2020-01.json")
    current: ChatRecord | None = None
    seen: list[tuple[int, str]] = []
    for record in records:
        if isinstance(record, ChatRecord):
            current = record
            seen.append((record.chat_id, record.chat_type))
        else:
            assert current is not None and record.chat_id == current.chat_id
    assert seen == [
        (-8123123123, "private_group"),
        (9777777777, "personal_chat"),
        (4321012345, "personal_chat"),
        (9333333333, "personal_chat"),
    ]


def test_2020_era_messages() -> None:
    _, records = parse(EXPORTS_DIR / "format-eras" / "2020-01.json")
    by_id = {r.message_id: r for r in records if isinstance(r, MessageRecord)}
    link = "http://cs5.pikabu.ru/post_img/big/2015/12/04/5/1449210847155432089.jpg"
    assert by_id[10415].text == "девиз Вольво:\n" + link + "гыгы"
    assert by_id[10415].is_owner and by_id[10415].sender_id == FULL_EXPORT_OWNER
    assert by_id[39740].reply_to_id == 39739
    assert by_id[4744].kind == "sticker" and by_id[4744].text == "😆"
    assert by_id[40163].kind == "call"
    assert by_id[4720].kind == "service" and by_id[4720].sender_id == 22222222
    assert by_id[39125].forwarded_from == "Hearthstone Channel"
    assert by_id[24712].sender_name is None
    assert by_id[4725].date.isoformat() == "2016-11-09T00:29:16+00:00"


def test_supergroup_channel_sender_and_via_bot() -> None:
    _, records = parse(EXPORTS_DIR / "format-eras" / "2024-08.json")
    messages = {r.message_id: r for r in records if isinstance(r, MessageRecord)}
    assert records[0] == ChatRecord(-1000123123123, "Dummy Supergroup", "private_supergroup")
    assert messages[11111].sender_id == -1000123123123
    assert messages[11112].via_bot == "@SomeBot"


def test_saved_messages_owner_is_the_chat_itself() -> None:
    parser, records = parse(EXPORTS_DIR / "samples" / "saved-messages-2021.json")
    assert parser.owner_id == 9999999999
    assert records[0] == ChatRecord(9999999999, None, "saved_messages")


def test_single_chat_without_owner_is_refused() -> None:
    with pytest.raises(errors.OwnerUnknownError, match="single-chat export"):
        parse(EXPORTS_DIR / "samples" / "langchain-personal-chat.json")


def test_personal_information_after_chats_takes_a_second_pass(tmp_path: Path) -> None:
    original = json.loads((EXPORTS_DIR / "format-eras" / "2023-11.json").read_text("utf-8"))
    reordered = {"chats": original["chats"], "personal_information": {"user_id": 11111111}}
    parser, records = parse(write_json(tmp_path / "late.json", reordered))
    assert parser.owner_id == FULL_EXPORT_OWNER
    messages = [r for r in records if isinstance(r, MessageRecord)]
    assert len(messages) == 1 and messages[0].is_owner


def test_full_export_of_another_account_is_refused(tmp_path: Path) -> None:
    with pytest.raises(errors.OwnerMismatchError, match="not of your account"):
        parse(EXPORTS_DIR / "format-eras" / "2023-11.json", owner_id=42)


def test_chat_metadata_after_messages_and_unknown_keys(tmp_path: Path) -> None:
    data = {
        "future_section": {"nested": [1, {"x": None}]},
        "personal_information": {"user_id": 5, "brand_new": True},
        "chats": {
            "list": [
                {
                    "messages": [
                        {
                            "id": 1,
                            "type": "message",
                            "date_unixtime": "100",
                            "from_id": "user5",
                            "text": "hi",
                            "reactions": [{"emoji": "👍"}],
                            "new_field": {"a": 1},
                        },
                    ],
                    "id": 77,
                    "type": "private_group",
                    "name": "Late",
                },
            ]
        },
        "left_chats": {
            "list": [
                {
                    "name": "Gone",
                    "type": "private_supergroup",
                    "id": 3,
                    "messages": [
                        {
                            "id": 2,
                            "type": "message",
                            "date_unixtime": "200",
                            "from_id": "user6",
                            "text": "bye",
                        },
                    ],
                },
            ]
        },
    }
    _, records = parse(write_json(tmp_path / "odd.json", data))
    assert records == [
        ChatRecord(-77, "Late", "private_group"),
        MessageRecord(
            chat_id=-77,
            message_id=1,
            sender_id=5,
            sender_name=None,
            is_owner=True,
            date=records[1].date,
            text="hi",
        ),
        ChatRecord(-1000000000003, "Gone", "private_supergroup"),
        MessageRecord(
            chat_id=-1000000000003,
            message_id=2,
            sender_id=6,
            sender_name=None,
            is_owner=False,
            date=records[3].date,
            text="bye",
        ),
    ]


def test_zip_with_result_json_is_read_in_place(tmp_path: Path) -> None:
    source = EXPORTS_DIR / "format-eras" / "2024-08.json"
    archive = tmp_path / "export.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.write(source, "DataExport_2024/result.json")
    _, from_zip = parse(archive)
    _, from_json = parse(source)
    assert from_zip == from_json


def test_zip_without_result_json_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "photos.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("photo.jpg", b"\xff\xd8")
    with pytest.raises(errors.ZipWithoutExportError, match=r"no result\.json"):
        parse(archive)


def test_utf8_bom_is_accepted(tmp_path: Path) -> None:
    source = EXPORTS_DIR / "format-eras" / "2023-11.json"
    with_bom = tmp_path / "bom.json"
    with_bom.write_bytes(b"\xef\xbb\xbf" + source.read_bytes())
    assert parse(with_bom)[1] == parse(source)[1]
