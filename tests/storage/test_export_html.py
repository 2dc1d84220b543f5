"""The HTML export reader on the hand-written fixture, and the errors it owes the owner."""

from __future__ import annotations

import zipfile
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from storage import errors, export_html
from storage.export_archive import ExportSource, inspect_export
from storage.export_html import (
    SYNTHETIC_ID_BASE,
    HtmlExportParser,
    parse_date_title,
    synthetic_user_id,
)
from storage.models import ChatRecord, MessageRecord
from tests.storage.exports import EXPORTS_DIR

HTML_DIR = EXPORTS_DIR / "html"
PAGES = sorted(HTML_DIR.glob("chats/*/messages*.html"))
OWNER = "Alex Morgan"
A, S, J, R, D = OWNER, "Sam Lee", "Jordan Kim", "Riley Park", "Deleted Account"
FWD_NEWS, FWD_PARK = "Trail News", "Park Service"

# id: (sender, kind, reply_to_id, forwarded_from, via_bot), read off the fixture by hand.
EXPECTED: dict[int, tuple[str | None, str, int | None, str | None, str | None]] = {
    101: (S, "text", None, None, None),
    102: (A, "text", None, None, None),
    103: (A, "text", None, None, None),  # joined
    104: (S, "text", 102, None, None),
    105: (S, "media", None, None, None),  # joined, photo without caption
    106: (S, "text", None, None, None),  # joined, photo with caption
    107: (A, "sticker", None, None, None),
    108: (A, "call", None, None, None),
    109: (S, "text", None, FWD_NEWS, None),
    110: (S, "text", None, FWD_NEWS, None),  # joined forward: no names shown at all
    111: (A, "text", None, None, None),
    112: (S, "text", None, None, None),
    113: (A, "text", None, None, None),
    114: (S, "media", None, None, None),
    115: (A, "text", 114, None, None),
    116: (S, "text", 113, None, None),  # reply into the previous page
    117: (A, "text", None, None, None),
    118: (A, "text", None, None, None),
    119: (S, "media", None, None, "gif"),
    120: (None, "service", None, None, None),
    121: (A, "text", None, None, None),
    122: (S, "text", None, None, None),  # reply to another chat: not followed
    123: (A, "text", None, None, None),
    201: (None, "service", None, None, None),
    202: (A, "text", None, None, None),
    203: (J, "text", None, None, None),
    204: (S, "poll", None, None, None),
    205: (J, "text", 204, None, None),
    206: (None, "service", None, None, None),
    207: (R, "text", None, None, None),
    208: (R, "text", None, None, None),
    209: (A, "text", None, FWD_PARK, None),
    210: (A, "text", None, None, None),
    211: (D, "text", None, None, None),
    212: (None, "service", None, None, None),
    213: (S, "media", None, None, None),
    214: (S, "text", None, None, None),
    215: (J, "text", None, None, None),
    216: (A, "text", None, None, None),
    217: (R, "media", None, None, None),
    218: (A, "text", None, None, None),
}

TEXTS = {
    102: "Yes!\nMeet at 9?",
    103: "I'll bring coffee ☕",
    104: "Deal. Bring the trail map",
    111: "Ugh. Plan B: the south loop, trail loop-7",
    112: "<3 sounds good & safe",
    115: "On my way 🚗",
    118: "gate code 4411",
    121: "What a day.\n\nThanks! 🙏",
    204: "Which trail first?",
    216: "Weather looks good\nGreat, see you at 9",
    218: "I packed a secret snack",
    105: "",
    107: "",
    120: "",
}

UTC_DATES = {
    101: datetime(2024, 3, 30, 9, 15, 2, tzinfo=UTC),  # 10:15:02 UTC+01:00
    113: datetime(2024, 3, 31, 6, 1, tzinfo=UTC),  # 08:01:00 UTC+02:00, after the DST change
    120: datetime(2024, 3, 31, 6, 40, tzinfo=UTC),  # service: the date of the message before
    201: datetime(2024, 3, 14, tzinfo=UTC),  # service first of its day: the day separator
    202: datetime(2024, 3, 14, 15, 2, 11, tzinfo=UTC),  # 18:02:11 UTC+03:00
    218: datetime(2024, 3, 15, 4, 12, tzinfo=UTC),
}


def zip_fixture(tmp_path: Path, root: str = "DataExport_2024-04-01/") -> Path:
    path = tmp_path / "export.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for page in PAGES:
            archive.write(page, root + page.relative_to(HTML_DIR).as_posix())
        archive.writestr(root + "chats/chat_01/photos/photo_1.jpg", b"\xff\xd8")
    return path


def parse(
    path: Path,
    source: ExportSource | None = None,
    *,
    owner_name: str = OWNER,
    owner_id: int | None = None,
    file_name: str | None = None,
) -> tuple[HtmlExportParser, list[ChatRecord | MessageRecord]]:
    parser = HtmlExportParser(
        path, source, owner_name=owner_name, owner_id=owner_id, file_name=file_name
    )
    return parser, list(parser.records())


def messages_of(records: list[ChatRecord | MessageRecord]) -> dict[int, MessageRecord]:
    return {r.message_id: r for r in records if isinstance(r, MessageRecord)}


def test_the_fixture_parses_to_the_expected_chats_and_messages(tmp_path: Path) -> None:
    path = zip_fixture(tmp_path)
    parser, records = parse(path, inspect_export(path, "export.zip"))
    chats = [r for r in records if isinstance(r, ChatRecord)]
    assert [chat.title for chat in chats] == ["Sam Lee", "Weekend Hikers"]
    assert all(chat.chat_type == "html_export" for chat in chats)
    assert isinstance(records[0], ChatRecord)
    assert records.index(chats[1]) == 24  # chat 1's record and 23 messages come first
    messages = messages_of(records)
    assert sorted(messages) == sorted(EXPECTED)
    got = {
        mid: (m.sender_name, m.kind, m.reply_to_id, m.forwarded_from, m.via_bot)
        for mid, m in messages.items()
    }
    assert got == EXPECTED
    assert {mid: messages[mid].text for mid in TEXTS} == TEXTS
    assert {mid: messages[mid].date for mid in UTC_DATES} == UTC_DATES
    assert all(m.date.utcoffset() == timedelta(0) for m in messages.values())
    assert {m.chat_id for m in messages.values() if m.message_id < 200} == {chats[0].chat_id}
    assert (parser.kind, parser.file_owner_id, parser.unreadable_messages) == (
        "full_account",
        None,
        0,
    )


def test_owner_flags_follow_the_display_name(tmp_path: Path) -> None:
    parser, records = parse(zip_fixture(tmp_path), owner_name="  alex   MORGAN ")
    messages = messages_of(records).values()
    owner = [m for m in messages if m.is_owner]
    assert len(owner) == 16
    assert {m.sender_name for m in owner} == {OWNER}
    assert parser.owner_id == synthetic_user_id(OWNER)
    assert {m.sender_id for m in owner} == {parser.owner_id}


def test_joined_messages_take_the_previous_sender(tmp_path: Path) -> None:
    messages = messages_of(parse(zip_fixture(tmp_path))[1])
    for joined, before in [(103, 102), (105, 104), (106, 104), (110, 109), (118, 117)]:
        assert messages[joined].sender_id == messages[before].sender_id
        assert messages[joined].is_owner == messages[before].is_owner


def test_the_owners_real_id_marks_their_messages_when_known(tmp_path: Path) -> None:
    parser, records = parse(zip_fixture(tmp_path), owner_id=777)
    messages = messages_of(records)
    assert parser.owner_id == 777
    assert messages[102].sender_id == 777
    assert messages[101].sender_id == synthetic_user_id("Sam Lee")


def test_synthetic_ids_are_stable_and_outside_bot_api_ids(tmp_path: Path) -> None:
    records = parse(zip_fixture(tmp_path))[1]
    (tmp_path / "again").mkdir()
    again = parse(zip_fixture(tmp_path / "again", root="Telegram Desktop/Export/"))[1]
    assert records == again
    bot_api_limit = 2**53
    for record in records:
        if isinstance(record, ChatRecord):
            assert -record.chat_id >= SYNTHETIC_ID_BASE
        elif record.sender_id is not None:
            assert record.sender_id >= SYNTHETIC_ID_BASE > bot_api_limit


def test_one_messages_html_is_a_single_chat_export(tmp_path: Path) -> None:
    page = HTML_DIR / "chats" / "chat_02" / "messages.html"
    parser, records = parse(page, file_name="messages.html")
    whole = parse(zip_fixture(tmp_path))[1]
    assert parser.kind == "single_chat"
    assert records[0] == whole[24]  # the same chat id: it comes from the title
    assert len(records) == 1 + 18


def test_pages_are_read_in_order_whatever_the_chunk_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = zip_fixture(tmp_path)
    expected = parse(path)[1]
    monkeypatch.setattr(export_html, "READ_CHUNK", 7)
    assert parse(path)[1] == expected


def test_two_chats_with_one_title_get_different_ids(tmp_path: Path) -> None:
    page = (HTML_DIR / "chats" / "chat_02" / "messages.html").read_bytes()
    path = tmp_path / "export.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("chats/chat_1/messages.html", page)
        archive.writestr("chats/chat_2/messages.html", page)
    chats = [r for r in parse(path)[1] if isinstance(r, ChatRecord)]
    assert len({chat.chat_id for chat in chats}) == 2


def test_without_the_owner_name_the_error_says_how_to_import(tmp_path: Path) -> None:
    with pytest.raises(errors.HtmlOwnerUnknownError) as caught:
        HtmlExportParser(zip_fixture(tmp_path), owner_name=None, file_name="export.zip")
    message = str(caught.value)
    assert message.startswith("export.zip is an HTML export: it has names but no user ids")
    assert "Machine-readable JSON" in message
    assert '`tgclone import PATH --owner-name "Your Name"`' in message


def test_an_owner_name_nobody_used_lists_the_names_seen(tmp_path: Path) -> None:
    parser = HtmlExportParser(zip_fixture(tmp_path), owner_name="Alex Morgen")
    with pytest.raises(errors.HtmlOwnerNotFoundError) as caught:
        list(parser.records())
    assert '"Sam Lee"' in str(caught.value)
    assert "41 messages" in str(caught.value)
    assert str(caught.value).endswith('are: "Alex Morgan", "Sam Lee", "Jordan Kim".')


@pytest.mark.parametrize(
    "content",
    [
        b'{"messages": []}',
        b"\x89PNG\r\n\x1a\n\x00\x00 garbage",
        b"<!DOCTYPE html><html><body><p>Just a page</p></body></html>",
    ],
    ids=["json", "binary", "html-without-messages"],
)
def test_files_that_are_not_html_exports_are_refused(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "upload.html"
    path.write_bytes(content)
    with pytest.raises(errors.NotHtmlExportError, match="not a Telegram Desktop chat page"):
        list(HtmlExportParser(path, owner_name=OWNER).records())


def test_html_in_another_encoding_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "messages.html"
    path.write_bytes("<html><body>Caf\u00e9</body></html>".encode("latin-1"))
    with pytest.raises(errors.NotUtf8Error):
        list(HtmlExportParser(path, owner_name=OWNER).records())


def test_a_page_cut_short_keeps_what_it_could_read(tmp_path: Path) -> None:
    page = (HTML_DIR / "chats" / "chat_02" / "messages.html").read_bytes()
    path = tmp_path / "messages.html"
    path.write_bytes(page[: page.index(b'id="message210"') + 40])
    parser, records = parse(path)
    assert max(messages_of(records)) == 209
    assert parser.unreadable_messages == 1


def test_emoji_images_give_their_alt_text(tmp_path: Path) -> None:
    path = tmp_path / "messages.html"
    path.write_text(
        '<html><div class="page_header"><div class="text bold">Pat</div></div>'
        '<div class="message default clearfix" id="message5"><div class="body">'
        '<div class="pull_right date details" title="01.02.2024 10:00:00">10:00</div>'
        f'<div class="from_name">{OWNER}</div><div class="text">Hi <img class="emoji" '
        'src="e.png" alt="😀"/><br/>there</div></div></div></html>',
        "utf-8",
    )
    message = messages_of(parse(path)[1])[5]
    assert message.text == "Hi 😀\nthere"
    assert message.date == datetime(2024, 2, 1, 10, tzinfo=UTC)  # no offset: local_tz


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        ("14.03.2024 18:02:11 UTC+03:00", datetime(2024, 3, 14, 15, 2, 11, tzinfo=UTC)),
        ("14.03.2024 18:02:11 UTC-05:30", datetime(2024, 3, 14, 23, 32, 11, tzinfo=UTC)),
        ("14.03.2024 18:02:11 GMT+01:00", datetime(2024, 3, 14, 17, 2, 11, tzinfo=UTC)),
        ("14.03.2024 18:02:11 UTC", datetime(2024, 3, 14, 18, 2, 11, tzinfo=UTC)),
        ("14.03.2024 18:02:11", datetime(2024, 3, 14, 16, 2, 11, tzinfo=UTC)),  # local_tz
        ("31.02.2024 18:02:11 UTC", None),
        ("yesterday", None),
        ("14.03.2024 18:02:11 UTC+99:00", None),  # an offset of a day or more
        ("31.12.9999 23:59:59 UTC-03:00", None),  # after datetime's last day in UTC
        ("01.01.0001 00:00:00 UTC+05:00", None),  # before its first
    ],
)
def test_date_titles(title: str, expected: datetime | None) -> None:
    assert parse_date_title(title, timezone(timedelta(hours=2))) == expected


def test_bytes_read_reaches_the_declared_size(tmp_path: Path) -> None:
    path = zip_fixture(tmp_path)
    source = inspect_export(path, "export.zip")
    parser = parse(path, source)[0]
    assert parser.bytes_read == source.uncompressed_size == sum(p.stat().st_size for p in PAGES)
