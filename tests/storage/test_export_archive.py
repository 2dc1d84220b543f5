"""Inspecting what the owner sent: plain files, zips, and the archives we refuse."""

from __future__ import annotations

import io
import json
import struct
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest

from storage import errors
from storage.db import Database
from storage.export_archive import _GuardedStream, inspect_export, open_member
from storage.export_parser import ExportParser
from storage.importer import import_export
from tests.bad_exports import write_zip_bomb
from tests.html_exports import HTML_OWNER_NAME, write_html_zip

EXPORT = {"name": "Sam", "type": "personal_chat", "id": 42, "messages": []}
EXPORT_BYTES = json.dumps(EXPORT).encode()
PAGE = b"<!DOCTYPE html>\n<html>\n<body></body>\n</html>\n"


def make_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def patch_central_directory(path: Path, offset: int, fmt: str, value: int) -> None:
    """Overwrite one field of the (first) central directory entry of a zip on disk."""
    data = bytearray(path.read_bytes())
    start = data.index(b"PK\x01\x02")
    struct.pack_into(fmt, data, start + offset, value)
    path.write_bytes(bytes(data))


def read_all(path: Path, member: str | None = None) -> bytes:
    source = inspect_export(path, path.name)
    with open_member(path, source, member) as stream:
        return stream.read()


# -- plain files ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b'{"messages": []}', "json"),
        (b'\xef\xbb\xbf  \n {"a": 1}', "json"),
        (b"[1, 2]", "json"),
        (b"", "json"),
        (b"\x89PNG\r\n\x1a\n", "json"),
        (PAGE, "html"),
        (b"\xef\xbb\xbf\n<HTML lang='en'><body>", "html"),
        (b"  <!doctype HTML>", "html"),
    ],
)
def test_a_plain_file_is_json_or_html_by_its_first_bytes(
    tmp_path: Path, content: bytes, expected: str
) -> None:
    path = tmp_path / "upload.bin"
    path.write_bytes(content)
    source = inspect_export(path, "upload.bin")
    assert (source.format, source.is_zip, source.member) == (expected, False, None)
    assert source.uncompressed_size == len(content)
    with open_member(path, source) as stream:
        assert stream.read() == content


def test_a_plain_file_that_is_not_json_reaches_the_json_parsers_error(tmp_path: Path) -> None:
    path = tmp_path / "photo.jpg"
    path.write_bytes(b"\xff\xd8\xff\xe0 not an export at all")
    assert inspect_export(path, "photo.jpg").format == "json"
    with pytest.raises(errors.ExportError):
        list(ExportParser(path).records())


# -- finding the export in a zip -----------------------------------------------------------


def test_a_zip_is_recognised_by_its_magic_bytes_not_its_name(tmp_path: Path) -> None:
    path = make_zip(tmp_path / "export.json", {"result.json": EXPORT_BYTES})
    source = inspect_export(path, "export.json")
    assert (source.format, source.is_zip, source.member) == ("json", True, "result.json")
    assert source.uncompressed_size == len(EXPORT_BYTES)
    assert read_all(path) == EXPORT_BYTES


def test_the_shallowest_result_json_is_read_and_media_ignored(tmp_path: Path) -> None:
    nested = "Telegram Desktop/DataExport_2024-05-01/"
    path = make_zip(
        tmp_path / "export.zip",
        {
            f"{nested}photos/photo_1@01-05-2024.jpg": b"\xff\xd8" * 100,
            f"{nested}chats/chat_01/result.json": b"{}",
            f"{nested}result.json": EXPORT_BYTES,
            "__MACOSX/Telegram Desktop/._result.json": b"junk",
        },
    )
    source = inspect_export(path, "export.zip")
    assert source.member == f"{nested}result.json"
    assert read_all(path) == EXPORT_BYTES
    with open_member(path, source) as stream:
        assert json.load(stream) == EXPORT


@pytest.mark.parametrize(
    "members",
    [
        {"photos/photo_1.jpg": b"\xff\xd8", "notes.txt": b"hello"},
        {"a/b/c/result.json": EXPORT_BYTES},  # deeper than any export folder
        {},
    ],
    ids=["media-only", "too-deep", "empty"],
)
def test_a_zip_without_an_export_is_refused(tmp_path: Path, members: dict[str, bytes]) -> None:
    path = make_zip(tmp_path / "export.zip", members)
    with pytest.raises(errors.ZipWithoutExportError, match=r"export\.zip"):
        inspect_export(path, "export.zip")


def test_html_pages_are_found_per_chat_in_numeric_order(tmp_path: Path) -> None:
    root = "DataExport_2024-05-01/"
    path = make_zip(
        tmp_path / "export.zip",
        {
            f"{root}export_results.html": PAGE,
            f"{root}lists/chats.html": PAGE,
            f"{root}chats/chat_02/messages.html": PAGE,
            f"{root}chats/chat_01/messages10.html": PAGE,
            f"{root}chats/chat_01/messages2.html": PAGE,
            f"{root}chats/chat_01/messages.html": PAGE,
            f"{root}chats/chat_01/photos/photo_1.jpg": b"\xff\xd8",
        },
    )
    source = inspect_export(path, "export.zip")
    chat = f"{root}chats/chat_0"
    assert source.format == "html"
    assert source.member is None
    assert source.html_chats == (
        (f"{chat}1/messages.html", f"{chat}1/messages2.html", f"{chat}1/messages10.html"),
        (f"{chat}2/messages.html",),
    )
    assert source.uncompressed_size == 4 * len(PAGE)
    assert read_all(path, f"{chat}1/messages2.html") == PAGE


def test_result_json_wins_over_html_pages(tmp_path: Path) -> None:
    path = make_zip(
        tmp_path / "export.zip", {"x/messages.html": PAGE, "x/result.json": EXPORT_BYTES}
    )
    assert inspect_export(path, "export.zip").format == "json"


def test_a_single_chat_html_export(tmp_path: Path) -> None:
    members = {"ChatExport_2024-05-01/messages.html": PAGE, "ChatExport_2024-05-01/x.jpg": b""}
    source = inspect_export(make_zip(tmp_path / "chat.zip", members), "chat.zip")
    assert source.html_chats == (("ChatExport_2024-05-01/messages.html",),)


class CountingZipFile(zipfile.ZipFile):
    """The real ZipFile, counting how often an archive is opened (its directory read)."""

    opened = 0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        type(self).opened += 1
        super().__init__(*args, **kwargs)


@pytest.mark.parametrize("pages", [3, 60])
async def test_a_zip_of_html_pages_is_opened_once_to_inspect_and_once_to_read(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pages: int
) -> None:
    path = write_html_zip(tmp_path / "export.zip", pages)
    monkeypatch.setattr(zipfile, "ZipFile", CountingZipFile)
    monkeypatch.setattr(CountingZipFile, "opened", 0)
    report = await import_export(db, path, owner_name=HTML_OWNER_NAME)
    assert report.messages == 5 * pages
    assert CountingZipFile.opened == 2  # not once per page: that made big exports quadratic


# -- archives we refuse --------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["../evil.json", "export/../../evil.json", "/etc/result.json", "..\\evil.json", "C:/x.json"],
)
def test_members_with_unsafe_paths_are_refused(tmp_path: Path, name: str) -> None:
    path = make_zip(tmp_path / "export.zip", {"result.json": EXPORT_BYTES, name: b"{}"})
    with pytest.raises(errors.UnsafeArchiveError, match="unsafe path"):
        inspect_export(path, "export.zip")


def test_a_real_zip_bomb_is_refused_from_its_headers(tmp_path: Path) -> None:
    path = tmp_path / "bomb.zip"
    started = time.monotonic()
    write_zip_bomb(path)
    assert path.stat().st_size < 5 * 1024**2
    with pytest.raises(errors.ArchiveTooLargeError, match="zip bomb"):
        inspect_export(path, "bomb.zip")
    assert time.monotonic() - started < 30


def test_the_ratio_limit_is_a_parameter(tmp_path: Path) -> None:
    messages = [{"id": n, "text": f"message {n} {n * 7919 % 10007}"} for n in range(60_000)]
    text = json.dumps({"messages": messages}).encode()  # 2.6 MB, compresses about 5x
    path = make_zip(tmp_path / "export.zip", {"result.json": text})
    assert inspect_export(path, "export.zip").member == "result.json"
    with pytest.raises(errors.ArchiveTooLargeError, match="compressed more than 3 times"):
        inspect_export(path, "export.zip", max_ratio=3)


def test_the_total_size_limit_counts_the_export_files(tmp_path: Path) -> None:
    path = make_zip(
        tmp_path / "export.zip", {"result.json": EXPORT_BYTES, "video.mp4": bytes(5000)}
    )
    assert inspect_export(path, "export.zip", max_uncompressed=len(EXPORT_BYTES)).is_zip
    with pytest.raises(errors.ArchiveTooLargeError, match="more than the 0 MiB I accept"):
        inspect_export(path, "export.zip", max_uncompressed=len(EXPORT_BYTES) - 1)


def test_a_header_that_understates_the_size_stops_the_stream(tmp_path: Path) -> None:
    data = json.dumps({"messages": [{"id": n} for n in range(2000)]}).encode()
    path = make_zip(tmp_path / "export.zip", {"result.json": data})
    patch_central_directory(path, 24, "<I", len(data) - 500)  # uncompressed size
    source = inspect_export(path, "export.zip")
    assert source.uncompressed_size == len(data) - 500
    with pytest.raises(errors.DamagedArchiveError), open_member(path, source) as stream:
        stream.read()


def test_the_stream_guard_stops_past_the_declared_size() -> None:
    guard = _GuardedStream(io.BytesIO(bytes(100)), declared=60, file_name="export.zip")
    stream = io.BufferedReader(guard, 16)
    assert len(stream.read(48)) == 48
    with pytest.raises(errors.ArchiveTooLargeError, match="more data than"):
        stream.read()


def test_a_damaged_zip_is_reported_as_damaged(tmp_path: Path) -> None:
    whole = make_zip(tmp_path / "whole.zip", {"result.json": EXPORT_BYTES * 50}).read_bytes()
    path = tmp_path / "cut.zip"
    path.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(errors.DamagedArchiveError, match="damaged"):
        inspect_export(path, "cut.zip")


def test_an_encrypted_member_is_refused(tmp_path: Path) -> None:
    path = make_zip(tmp_path / "export.zip", {"result.json": EXPORT_BYTES})
    patch_central_directory(path, 8, "<H", 0x1)  # general purpose flag: encrypted
    with pytest.raises(errors.EncryptedArchiveError, match="password"):
        inspect_export(path, "export.zip")


def test_refusals_name_the_file_and_the_fix_without_internals(tmp_path: Path) -> None:
    path = make_zip(tmp_path / "export.zip", {"../evil.json": b"{}"})
    with pytest.raises(errors.UnsafeArchiveError) as caught:
        inspect_export(path, "my export.zip")
    message = str(caught.value)
    assert "my export.zip" in message
    assert "result.json" in message
    assert "Traceback" not in message and "zipfile" not in message
