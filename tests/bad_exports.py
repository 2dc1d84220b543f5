"""Every kind of bad export a user can send, with the words the refusal must contain.

Used by the command-line and the bot tests, so both front doors are held to the same list.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.export_factory import OWNER_ID, full_export
from tests.storage.mutations import Raw, export_bytes


@dataclass(frozen=True)
class BadExport:
    """One bad input: how to write it, its file name, and a phrase of its refusal."""

    name: str
    file_name: str
    write: Callable[[Path], None]
    says: str


def _bytes(content: bytes) -> Callable[[Path], None]:
    return lambda path: path.write_bytes(content)


def _zip(members: dict[str, bytes]) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
            for name, content in members.items():
                archive.writestr(name, content)

    return write


def write_zip_bomb(path: Path) -> None:
    """300 MB of zeros as result.json: about 300 KB on disk."""
    with (
        zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive,
        archive.open("result.json", "w", force_zip64=True) as member,
    ):
        zeros = bytes(1 << 20)
        for _ in range(300):
            member.write(zeros)


def _single_chat_of_others() -> bytes:
    chat = full_export(conversations=2)["chats"]["list"][0]
    chat["messages"] = [
        m
        for m in chat["messages"]
        if m.get("from_id") != f"user{OWNER_ID}" and m["type"] != "service"
    ]
    return json.dumps(chat).encode()


def _with_raw(place: Callable[[dict[str, Any], Raw], None], raw: str) -> bytes:
    """A valid export with one value, put where ``place`` puts it, written as the text ``raw``."""
    data = full_export(conversations=2)
    place(data, Raw(raw))
    return export_bytes(data, ensure_ascii=False)


def _first_message(key: str) -> Callable[[dict[str, Any], Raw], None]:
    return lambda data, value: data["chats"]["list"][0]["messages"][0].__setitem__(key, value)


def _owner_id(data: dict[str, Any], value: Raw) -> None:
    data["personal_information"]["user_id"] = value


VALID = json.dumps(full_export(conversations=2), ensure_ascii=False).encode()

BAD_EXPORTS = [
    BadExport("empty", "result.json", _bytes(b""), "is empty"),
    BadExport("not_json", "result.json", _bytes(b"hello, this is not json"), "is not JSON"),
    BadExport("truncated", "result.json", _bytes(VALID[: len(VALID) // 2]), "ends in the middle"),
    BadExport("array", "result.json", _bytes(b"[1, 2, 3]"), "not a Telegram Desktop export"),
    BadExport(
        "other_app",
        "result.json",
        _bytes(json.dumps({"name": "my-package", "version": "1.0.0"}).encode()),
        "not a Telegram Desktop export",
    ),
    BadExport("not_utf8", "result.json", _bytes(VALID.decode().encode("utf-16")), "not UTF-8"),
    BadExport(
        "zip_without_result",
        "export.zip",
        _zip({"photos/photo_1.jpg": b"\xff\xd8\xff" + bytes(100)}),
        "no result.json",
    ),
    BadExport("zip_bomb", "export.zip", write_zip_bomb, "zip bomb"),
    BadExport("zip_traversal", "export.zip", _zip({"../../result.json": VALID}), "unsafe path"),
    BadExport("damaged_zip", "export.zip", _bytes(b"PK\x03\x04" + bytes(64)), "damaged"),
    BadExport(
        "no_owner_messages",
        "result.json",
        _bytes(_single_chat_of_others()),
        "none of its",
    ),
    BadExport(
        "nested_too_deep",
        "result.json",
        _bytes(_with_raw(_first_message("text_entities"), "[" * 5_000 + "]" * 5_000)),
        "nested hundreds of levels deep",
    ),
    BadExport(
        "message_id_2**70",
        "result.json",
        _bytes(_with_raw(_first_message("id"), str(2**70))),
        "as 'id' of a message in the chat",
    ),
    BadExport(
        "user_id_1e400",
        "result.json",
        _bytes(_with_raw(_owner_id, "1e400")),
        "as 'user_id' of personal_information",
    ),
]


def zipped(content: bytes, member: str = "DataExport_2024-05-01/result.json") -> bytes:
    """`content` as the result.json inside a zip of an export folder."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(member, content)
        archive.writestr("DataExport_2024-05-01/photos/photo_1.jpg", b"\xff\xd8\xff")
    return buffer.getvalue()
