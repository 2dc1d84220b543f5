"""Importing exports: counts, idempotency, and all-or-nothing on every kind of bad file."""

from __future__ import annotations

import asyncio
import json
import zipfile
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path

import pytest

from storage import errors
from storage.db import Database
from storage.importer import IMPORT_BATCH_SIZE, file_sha256, import_export
from storage.messages import corpus_counts, load_corpus, save_live_message
from storage.models import ChatRecord, ImportProgress, MessageRecord
from tests.storage.exports import (
    EXPORTS_DIR,
    FORMAT_ERAS,
    FULL_EXPORT_OWNER,
    SAMPLE_OWNERS,
    SAMPLES,
    big_export,
    count_with_json,
    db_file_digest,
)

ERA_2020 = EXPORTS_DIR / "format-eras" / "2020-01.json"
ERA_2023 = EXPORTS_DIR / "format-eras" / "2023-01.json"
LANGCHAIN = EXPORTS_DIR / "samples" / "langchain-personal-chat.json"


async def scalar(db: Database, sql: str) -> int:
    async with db.read() as conn, conn.execute(sql) as cursor:
        row = await cursor.fetchone()
    assert row is not None
    return int(row[0])


@pytest.mark.parametrize("path", FORMAT_ERAS + SAMPLES, ids=lambda p: p.stem)
async def test_every_fixture_imports_with_json_counts(db: Database, path: Path) -> None:
    owner = SAMPLE_OWNERS.get(path.name)
    report = await import_export(db, path, owner_id=owner)
    expected = count_with_json(path, owner or FULL_EXPORT_OWNER)
    assert (report.chats, report.messages, report.owner_messages) == (
        expected.chats,
        expected.messages,
        expected.owner_messages,
    )
    assert report.new_messages == expected.messages  # fixture message ids are unique per chat
    assert report.already_present == 0
    assert report.file_sha256 == file_sha256(path)
    counts = await corpus_counts(db)
    assert (counts.chats, counts.messages, counts.owner_messages) == (
        expected.chats,
        expected.messages,
        expected.owner_messages,
    )


async def test_2020_export_report_in_detail(db: Database) -> None:
    report = await import_export(db, ERA_2020)
    assert (report.chats, report.messages, report.owner_messages) == (4, 50, 13)
    assert report.skipped == {
        "service": 8,  # 6 service actions + 2 phone calls
        "media_only": 11,  # photos, files, animations and the forwarded poll
        "forwarded": 8,
        "via_bot": 0,  # the only via_bot message is a voice message: media_only first
        "empty": 4,  # contacts and the location: stored, but no text
    }
    counts = await corpus_counts(db)
    assert counts.text_messages == 50 - 8 - 11 - 3 - 4  # neither the 3 stickers nor the empty


async def test_reimport_adds_nothing(db: Database) -> None:
    first = await import_export(db, ERA_2020)
    before = await load_corpus(db)
    second = await import_export(db, ERA_2020, file_name="again.json")
    assert (second.new_messages, second.already_present) == (0, first.messages)
    assert second.import_id != first.import_id
    assert await load_corpus(db) == before
    assert await scalar(db, "SELECT COUNT(*) FROM imports") == 2


async def test_import_row_records_the_file(db: Database) -> None:
    report = await import_export(db, LANGCHAIN, owner_id=6565661032, file_name="chat.json")
    async with db.read() as conn, conn.execute("SELECT * FROM imports") as cursor:
        row = await cursor.fetchone()
    assert row is not None
    assert (row["file_sha256"], row["file_name"], row["owner_id"]) == (
        report.file_sha256,
        "chat.json",
        6565661032,
    )
    assert row["finished_at"] >= row["started_at"]
    counts = json.loads(row["counts"])
    assert counts["messages"] == 4 and counts["new_messages"] == 4
    assert await scalar(db, "SELECT COUNT(*) FROM messages WHERE import_id IS NOT NULL") == 4


async def test_live_and_export_rows_meet(db: Database) -> None:
    chat = ChatRecord(chat_id=-123123123, title="My Group", chat_type="group")
    live = MessageRecord(
        chat_id=-123123123,
        message_id=111111,
        sender_id=44444444,
        sender_name="E",
        is_owner=False,
        date=datetime(2016, 11, 17, 13, 57, 40, tzinfo=UTC),
        text="seen live first",
        source="live",
    )
    assert await save_live_message(db, chat, live)
    report = await import_export(db, ERA_2023)
    assert report.already_present == 1
    stored = {m.message_id: m for m in await load_corpus(db)}
    assert stored[111111].source == "live"
    assert stored[111111].text == "seen live first"


async def test_big_import_is_batched_and_leaves_the_loop_free(
    db: Database, tmp_path: Path
) -> None:
    total = IMPORT_BATCH_SIZE * 2 + 500
    path = tmp_path / "result.json"
    path.write_text(json.dumps(big_export(total)), "utf-8")
    ticks = 0
    done = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    report = await import_export(db, path)
    done.set()
    await task
    assert (report.messages, report.new_messages, report.owner_messages) == (
        total,
        total,
        total // 2,
    )
    assert ticks > 3  # the loop kept running while the file was parsed


@pytest.mark.parametrize("zipped", [False, True], ids=["json", "zip"])
async def test_progress_is_reported_per_batch_up_to_the_whole_file(
    db: Database, tmp_path: Path, zipped: bool
) -> None:
    total = IMPORT_BATCH_SIZE * 3 + 10
    data = json.dumps(big_export(total), indent=1).encode()
    path = tmp_path / "result.json"
    path.write_bytes(data)
    if zipped:
        path = tmp_path / "export.zip"
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("DataExport/result.json", data)
    seen: list[ImportProgress] = []
    report = await import_export(db, path, progress=seen.append)
    assert len(seen) >= 4  # one per batch, and the last once more at the end
    assert all(p.bytes_total == len(data) for p in seen)  # uncompressed, for a zip too
    for earlier, later in pairwise(seen):
        assert earlier.bytes_read <= later.bytes_read
        assert earlier.messages <= later.messages
        assert earlier.chats <= later.chats
    assert seen[-1] == ImportProgress(len(data), len(data), report.messages, report.chats)
    assert seen[-1].messages == total


# -- bad files: a specific error each, and the database byte-for-byte unchanged -------------


def truncated(tmp_path: Path) -> Path:
    data = json.dumps(big_export(IMPORT_BATCH_SIZE * 2 + 500), indent=1).encode()
    path = tmp_path / "result.json"
    path.write_bytes(data[: int(len(data) * 0.9)])  # past two full batches of rows
    return path


def damaged(tmp_path: Path) -> Path:
    data = json.dumps(big_export(IMPORT_BATCH_SIZE * 2 + 500), indent=1).encode()
    cut = int(len(data) * 0.9)
    path = tmp_path / "result.json"
    path.write_bytes(data[:cut] + b"\x00#!garbage!#" + data[cut:])
    return path


def write(name: str, content: bytes) -> object:
    def make(tmp_path: Path) -> Path:
        path = tmp_path / name
        path.write_bytes(content)
        return path

    return make


def cp1251(tmp_path: Path) -> Path:
    path = tmp_path / "result.json"
    path.write_bytes(ERA_2020.read_text("utf-8").encode("cp1251", errors="replace"))
    return path


def utf16(tmp_path: Path) -> Path:
    path = tmp_path / "result.json"
    path.write_bytes(ERA_2023.read_text("utf-8").encode("utf-16"))
    return path


def no_owner_messages(tmp_path: Path) -> Path:
    return LANGCHAIN  # imported below with an owner id nobody in the chat has


BAD_FILES = {
    "empty": (write("result.json", b""), errors.EmptyExportError, "is empty"),
    "blank": (write("result.json", b"  \n\n "), errors.EmptyExportError, "is empty"),
    "html_without_owner_name": (
        write("messages.html", b"<!DOCTYPE html><html><body>Exported Data</body></html>"),
        errors.HtmlOwnerUnknownError,
        "--owner-name",
    ),
    "cp1251": (cp1251, errors.NotUtf8Error, "not UTF-8"),
    "utf16": (utf16, errors.NotUtf8Error, "not UTF-8"),
    "truncated": (truncated, errors.TruncatedExportError, "ends in the middle"),
    "truncated-small": (
        write("result.json", b'{"personal_information": {"user_id": 1}, "chats": {"li'),
        errors.TruncatedExportError,
        "ends in the middle",
    ),
    "damaged": (damaged, errors.DamagedExportError, "damaged further on"),
    "array": (write("result.json", b"[1, 2, 3]"), errors.NotTelegramExportError, "not a Telegram"),
    "other-app": (
        write("result.json", b'{"version": 3, "items": [{"name": "x"}]}'),
        errors.NotTelegramExportError,
        "not a Telegram",
    ),
    "single-chat-no-owner": (
        lambda tmp_path: LANGCHAIN,
        errors.OwnerUnknownError,
        "can't tell which participant is you",
    ),
    "no-owner-messages": (no_owner_messages, errors.NoOwnerMessagesError, "none of its 4"),
}


@pytest.mark.parametrize("case", BAD_FILES, ids=str)
async def test_bad_file_gives_its_error_and_changes_nothing(
    db: Database, tmp_path: Path, case: str
) -> None:
    make, error_type, phrase = BAD_FILES[case]
    await import_export(db, ERA_2023)  # something already stored
    path = make(tmp_path)  # type: ignore[operator]
    owner = 424242 if case == "no-owner-messages" else None
    before = await db_file_digest(db)
    with pytest.raises(error_type) as caught:
        await import_export(db, path, owner_id=owner)
    assert phrase in str(caught.value)
    assert path.name in str(caught.value)
    assert await db_file_digest(db) == before
    # ...and the connection is fine afterwards.
    assert (await import_export(db, ERA_2023)).new_messages == 0


async def test_full_export_of_someone_else_changes_nothing(db: Database) -> None:
    before = await db_file_digest(db)
    with pytest.raises(errors.OwnerMismatchError):
        await import_export(db, ERA_2023, owner_id=99)
    assert await db_file_digest(db) == before


def test_error_messages_are_distinct() -> None:
    messages = [
        str(errors.EmptyExportError("f")),
        str(errors.NotJsonError("f")),
        str(errors.NotUtf8Error("f")),
        str(errors.TruncatedExportError("f")),
        str(errors.DamagedExportError("f")),
        str(errors.NotTelegramExportError("f")),
        str(errors.OwnerUnknownError("f")),
        str(errors.OwnerUnknownError("f", single_chat=False)),
        str(errors.OwnerMismatchError("f", 1, 2)),
        str(errors.NoOwnerMessagesError("f", 1, 3)),
        str(errors.ZipWithoutExportError("f")),
    ]
    assert len(set(messages)) == len(messages)
    assert all(message.endswith((".", "`.")) for message in messages)
