"""Streaming reader of Telegram Desktop JSON exports (never loads the whole file).

Two shapes are understood:

* a single-chat ``result.json``: top-level ``name`` (absent for saved messages), ``type``,
  ``id`` and ``messages``;
* a full-account export: ``personal_information.user_id`` (the owner), ``chats.list[]`` and
  ``left_chats.list[]``, each chat with ``name``, ``type``, ``id`` and ``messages``.

A ``.zip`` holding a ``result.json`` is read in place. :meth:`ExportParser.records` yields
each chat's :class:`ChatRecord` before that chat's :class:`MessageRecord` objects. Broken
input raises a specific :class:`~storage.errors.ExportError`, possibly mid-stream.
"""

from __future__ import annotations

import logging
import zipfile
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, tzinfo
from pathlib import Path
from typing import IO, Any, Literal

import ijson

from storage import errors
from storage.export_format import bot_api_chat_id, to_message_record
from storage.models import ChatRecord, MessageRecord

logger = logging.getLogger(__name__)

try:
    _BACKEND: Any = ijson.get_backend("yajl2_c")
except ImportError:  # no compiled backend on this platform: the default is slower but works
    _BACKEND = ijson

UTF8_BOM = b"\xef\xbb\xbf"
OTHER_BOMS = (b"\xff\xfe", b"\xfe\xff")
CHAT_LISTS = ("chats.list.item", "left_chats.list.item")
CHAT_META_KEYS = ("name", "type", "id")
SCALAR_EVENTS = frozenset({"string", "number", "boolean", "null"})

ExportKind = Literal["single_chat", "full_account"]


class _OwnerComesLater(Exception):
    """personal_information follows the chats: a second pass must read it first."""


@dataclass
class _Chat:
    """A chat being read: its metadata and messages read before the metadata was complete."""

    prefix: str
    meta: dict[str, Any] = field(default_factory=dict)
    record: ChatRecord | None = None
    emitted: bool = False
    pending: list[dict[str, Any]] = field(default_factory=list)


class ExportParser:
    """Reads one export file; after :meth:`records` is exhausted, ``owner_id`` is known."""

    def __init__(
        self,
        path: Path,
        *,
        owner_id: int | None = None,
        file_name: str | None = None,
        local_tz: tzinfo = UTC,
    ) -> None:
        self.path = path
        self.file_name = file_name or path.name
        self.local_tz = local_tz
        self.requested_owner_id = owner_id
        self.owner_id: int | None = owner_id
        self.kind: ExportKind | None = None
        self.file_owner_id: int | None = None
        self.unreadable_messages = 0

    def records(self) -> Generator[ChatRecord | MessageRecord, None, None]:
        """Chats and messages in file order; raises ExportError for a bad file."""
        events = self._events()
        try:
            yield from self._walk(events)
            return
        except _OwnerComesLater:
            events.close()
        self.owner_id = self._scan_owner()
        yield from self._walk(self._events())

    # -- reading events -------------------------------------------------------------------

    def _events(self) -> Generator[tuple[str, str, Any], None, None]:
        with _open_export(self.path, self.file_name) as raw:
            reader = _TrackingReader(raw, self.file_name)
            seen = 0
            try:
                for event in _BACKEND.parse(reader, use_float=True):
                    seen += 1
                    yield event
            except ijson.JSONError as exc:
                raise _classify(exc, reader, seen, self.file_name) from None
            except UnicodeDecodeError:
                raise errors.NotUtf8Error(self.file_name) from None

    def _scan_owner(self) -> int:
        for prefix, event, value in self._events():
            if prefix == "personal_information.user_id" and event == "number":
                return int(value)
        raise errors.OwnerUnknownError(self.file_name, single_chat=False)

    # -- walking the structure ------------------------------------------------------------

    def _walk(
        self, events: Iterator[tuple[str, str, Any]]
    ) -> Iterator[ChatRecord | MessageRecord]:
        first = next(events, None)
        if first is None or first[:2] != ("", "start_map"):
            raise errors.NotTelegramExportError(self.file_name)
        single = _Chat(prefix="")  # the top level is the chat in a single-chat export
        chat: _Chat | None = None
        builder: ijson.ObjectBuilder | None = None
        depth = 0
        for prefix, event, value in events:
            if builder is not None:
                builder.event(event, value)
                if event in ("start_map", "start_array"):
                    depth += 1
                elif event in ("end_map", "end_array"):
                    depth -= 1
                if depth == 0:
                    assert chat is not None
                    yield from self._on_message(chat, builder.value)
                    builder = None
                continue
            if prefix == "" and event == "map_key":
                if value == "messages" and self.kind is None:
                    self.kind = "single_chat"
                    chat = single
                elif value in ("chats", "left_chats", "personal_information"):
                    self.kind = "full_account"
            elif prefix == "personal_information.user_id" and event == "number":
                self._set_file_owner(int(value))
            elif prefix in CHAT_LISTS and event == "start_map":
                chat = _Chat(prefix=prefix)
            elif prefix in CHAT_LISTS and event == "end_map" and chat is not None:
                yield from self._end_chat(chat)
                chat = None
            elif (
                chat is not None
                and event == "start_map"
                and prefix == _join(chat, "messages.item")
            ):
                builder = ijson.ObjectBuilder()
                builder.event(event, value)
                depth = 1
            elif event in SCALAR_EVENTS:
                target = single if chat is None else chat
                if prefix in _meta_prefixes(target):
                    target.meta[prefix.rsplit(".", 1)[-1]] = value
        if self.kind is None:
            raise errors.NotTelegramExportError(self.file_name)
        if self.kind == "single_chat":
            if "id" not in single.meta or "type" not in single.meta:
                raise errors.NotTelegramExportError(self.file_name)
            yield from self._end_chat(single)
        elif self.owner_id is None:
            raise errors.OwnerUnknownError(self.file_name, single_chat=False)

    def _on_message(
        self, chat: _Chat, raw: dict[str, Any]
    ) -> Iterator[ChatRecord | MessageRecord]:
        if chat.record is None and not self._chat_ready(chat):
            chat.pending.append(raw)
            return
        yield from self._emit(chat, [*chat.pending, raw])
        chat.pending.clear()

    def _end_chat(self, chat: _Chat) -> Iterator[ChatRecord | MessageRecord]:
        if chat.record is None and not self._chat_ready(chat, at_end=True):
            logger.warning("Skipped a chat without id in %s", self.file_name)
            return
        yield from self._emit(chat, chat.pending)
        chat.pending.clear()

    def _chat_ready(self, chat: _Chat, *, at_end: bool = False) -> bool:
        """Build the chat's record once its id and type are known (and the owner is)."""
        export_id, chat_type = chat.meta.get("id"), chat.meta.get("type")
        if not isinstance(export_id, int) or not isinstance(chat_type, str):
            if at_end and isinstance(export_id, int):
                chat_type = "unknown"
            else:
                return False
        self._resolve_owner(chat_type, export_id)
        title = chat.meta.get("name")
        chat.record = ChatRecord(
            chat_id=bot_api_chat_id(export_id, chat_type),
            title=title if isinstance(title, str) else None,
            chat_type=chat_type,
        )
        return True

    def _emit(
        self, chat: _Chat, raws: list[dict[str, Any]]
    ) -> Iterator[ChatRecord | MessageRecord]:
        assert chat.record is not None and self.owner_id is not None
        if not chat.emitted:
            chat.emitted = True
            yield chat.record
        for raw in raws:
            record = to_message_record(raw, chat.record.chat_id, self.owner_id, self.local_tz)
            if record is None:
                self.unreadable_messages += 1
            else:
                yield record

    def _resolve_owner(self, chat_type: str, export_id: int) -> None:
        if self.owner_id is not None:
            return
        if self.kind == "full_account":
            raise _OwnerComesLater
        if chat_type == "saved_messages":
            self.owner_id = export_id  # only the owner writes in their saved messages
            return
        raise errors.OwnerUnknownError(self.file_name, single_chat=True)

    def _set_file_owner(self, user_id: int) -> None:
        self.file_owner_id = user_id
        expected = self.requested_owner_id
        if expected is not None and expected != user_id:
            raise errors.OwnerMismatchError(self.file_name, user_id, expected)
        self.owner_id = user_id


def _join(chat: _Chat, suffix: str) -> str:
    return f"{chat.prefix}.{suffix}" if chat.prefix else suffix


def _meta_prefixes(chat: _Chat) -> tuple[str, ...]:
    return tuple(_join(chat, key) for key in CHAT_META_KEYS)


class _TrackingReader:
    """A binary reader that remembers whether it reached the end and how the data ended."""

    def __init__(self, raw: IO[bytes], file_name: str) -> None:
        self._raw = raw
        self._first = True
        self.file_name = file_name
        self.eof = False
        self.has_content = False
        self.last_byte = b""

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        if self._first and data:
            self._first = False
            if data.startswith(UTF8_BOM):
                data = data[len(UTF8_BOM) :]
            elif data.startswith(OTHER_BOMS):
                raise errors.NotUtf8Error(self.file_name)
        if not data:
            self.eof = size != 0  # ijson first calls read(0) to learn bytes from str
            return data
        stripped = data.rstrip()
        if stripped:
            self.has_content = True
            self.last_byte = stripped[-1:]
        return data


def _classify(
    exc: ijson.JSONError, reader: _TrackingReader, events_seen: int, file_name: str
) -> errors.ExportError:
    """Turn a JSON error into the specific ExportError the owner should see."""
    message = str(exc)
    if "UTF8" in message or "UTF-8" in message:
        return errors.NotUtf8Error(file_name)
    if not reader.has_content:
        return errors.EmptyExportError(file_name)
    if "premature EOF" in message:
        return errors.TruncatedExportError(file_name)
    if events_seen == 0:
        return errors.NotJsonError(file_name)
    if reader.eof and reader.last_byte not in (b"}", b"]"):
        return errors.TruncatedExportError(file_name)
    return errors.DamagedExportError(file_name)


@contextmanager
def _open_export(path: Path, file_name: str) -> Iterator[IO[bytes]]:
    """The export's bytes: the file itself, or the result.json inside a .zip."""
    if not zipfile.is_zipfile(path):
        with path.open("rb") as raw:
            yield raw
        return
    with zipfile.ZipFile(path) as archive:
        names = [name for name in archive.namelist() if name.endswith("result.json")]
        if not names:
            raise errors.ZipWithoutExportError(file_name)
        with archive.open(min(names, key=len)) as raw:
            yield raw
