"""Streaming reader of Telegram Desktop JSON exports (never loads the whole file).

Two shapes are understood:

* a single-chat ``result.json``: top-level ``name`` (absent for saved messages), ``type``,
  ``id`` and ``messages``;
* a full-account export: ``personal_information.user_id`` (the owner), ``chats.list[]`` and
  ``left_chats.list[]``, each chat with ``name``, ``type``, ``id`` and ``messages``.

A ``.zip`` holding a ``result.json`` is read in place. :meth:`ExportParser.chunks` yields
each chat's :class:`ChatRecord` before that chat's message rows, in lists of up to
``chunk_rows``; :meth:`ExportParser.items` yields the rows one by one, and
:meth:`ExportParser.records` as records. Broken input raises a specific
:class:`~storage.errors.ExportError`, possibly mid-stream, and so does a value that no export
holds (an id of 2**70, a date in the year 9999): the error names the field, the chat and the
message. A value of the wrong type is passed over where it can be (a list as a message's
``action``), as a missing one is.

How it stays fast: the file is read in 1 MiB pieces (as Latin-1, see
:mod:`storage.export_text`) and walked in Python only at the level of the export's skeleton
(sections, chats, their keys); each message is one call of the C JSON scanner on the text
in place, then one call of :func:`~storage.export_format.to_message_row`, and the rows go up
the generators a list at a time. Memory is bounded by the piece size, the chunk and the
largest single message (or, for a chat whose ``id`` follows its messages, that chat).
"""

from __future__ import annotations

import logging
from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, tzinfo
from pathlib import Path
from typing import Any, Literal

from storage import errors
from storage.export_archive import ExportSource, inspect_export, open_member
from storage.export_format import (
    ID_LIMIT,
    BadValue,
    MessageRow,
    bot_api_chat_id,
    row_to_record,
    to_message_row,
)
from storage.export_text import JsonText, open_text
from storage.models import ChatRecord, MessageRecord

logger = logging.getLogger(__name__)

CHAT_NAME_SHOWN = 60
"""Characters of a chat's name that an error quotes."""
EXPECTED_CHAT_ID = f"a positive integer of at most {len(str(ID_LIMIT)) - 1} digits"
SKELETON_DEPTH = 4
"""How deep a skipped value is walked piece by piece (chats → list → chat → messages)."""

CHUNK_ROWS = 1_000
"""Rows of one chat handed up the generators at once (each step costs per hand-over)."""

ExportKind = Literal["single_chat", "full_account"]
Item = ChatRecord | MessageRow
Chunk = ChatRecord | list[MessageRow]


class _OwnerComesLater(Exception):
    """personal_information follows the chats: a second pass must read it first."""


@dataclass
class _Chat:
    """A chat being read: its metadata and messages read before the metadata was complete."""

    meta: dict[str, Any] = field(default_factory=dict)
    record: ChatRecord | None = None
    emitted: bool = False
    pending: list[dict[str, Any]] = field(default_factory=list)


class ExportParser:
    """Reads one export file; after :meth:`items` is exhausted, ``owner_id`` is known."""

    def __init__(
        self,
        path: Path,
        *,
        owner_id: int | None = None,
        file_name: str | None = None,
        local_tz: tzinfo = UTC,
        source: ExportSource | None = None,
        chunk_rows: int = CHUNK_ROWS,
    ) -> None:
        self.path = path
        self.file_name = file_name or path.name
        self.source = source or inspect_export(path, self.file_name)
        self.local_tz = local_tz
        self.requested_owner_id = owner_id
        self.owner_id: int | None = owner_id
        self.kind: ExportKind | None = None
        self.file_owner_id: int | None = None
        self.unreadable_messages = 0
        self.bytes_total = self.source.uncompressed_size
        self.chunk_rows = chunk_rows
        self._text: JsonText | None = None
        self._bytes_done = 0

    @property
    def bytes_read(self) -> int:
        """Bytes of the export's JSON read so far (in the current pass)."""
        return self._bytes_done if self._text is None else self._text.bytes_read

    def records(self) -> Iterator[ChatRecord | MessageRecord]:
        """Chats and messages in file order; raises ExportError for a bad file."""
        for item in self.items():
            yield item if isinstance(item, ChatRecord) else row_to_record(item)

    def items(self) -> Generator[Item, None, None]:
        """Chats and message rows in file order; raises ExportError for a bad file."""
        for chunk in self.chunks():
            if type(chunk) is list:
                yield from chunk
            else:
                yield chunk  # type: ignore[misc]

    def chunks(self) -> Generator[Chunk, None, None]:
        """Chats, and lists of one chat's message rows, in file order; raises ExportError."""
        try:
            yield from self._read(self._walk)
            return
        except _OwnerComesLater:
            pass
        self.owner_id = self._read_owner()
        self.kind = None
        yield from self._read(self._walk)

    # -- reading ---------------------------------------------------------------------------

    def _read(self, walk: Any) -> Iterator[Chunk]:
        with open_member(self.path, self.source) as raw:
            text = self._text = open_text(raw, self.file_name)
            try:
                yield from walk(text)
            finally:
                self._bytes_done, self._text = text.bytes_read, None

    def _read_owner(self) -> int:
        with open_member(self.path, self.source) as raw:
            text = open_text(raw, self.file_name)
            self._open_top(text)
            for key in text.members():
                if key == "personal_information":
                    self._personal_information(text.value())
                    if self.file_owner_id is not None:
                        return self.file_owner_id
                else:
                    text.skip(SKELETON_DEPTH)
        raise errors.OwnerUnknownError(self.file_name, single_chat=False)

    def _open_top(self, text: JsonText) -> None:
        first = text.peek()
        if first == "":
            raise errors.EmptyExportError(self.file_name)
        if first != "{":
            raise text.not_an_export()

    # -- walking the structure ------------------------------------------------------------

    def _walk(self, text: JsonText) -> Iterator[Chunk]:
        self._open_top(text)
        single = _Chat()  # the top level is the chat in a single-chat export
        for key in text.members():
            if key == "messages" and self.kind is None:
                self.kind = "single_chat"
                yield from self._messages(text, single)
            elif key in ("chats", "left_chats"):
                self.kind = "full_account"
                yield from self._chat_list(text)
            elif key == "personal_information":
                self.kind = "full_account"
                self._personal_information(text.value())
            elif key in ("name", "type", "id"):
                _remember(single.meta, key, text.value())
            else:
                text.skip(SKELETON_DEPTH)
        text.end()
        if self.kind is None:
            raise errors.NotTelegramExportError(self.file_name)
        if self.kind == "single_chat":
            if "id" not in single.meta or "type" not in single.meta:
                raise errors.NotTelegramExportError(self.file_name)
            yield from self._end_chat(single)
        elif self.owner_id is None:
            raise errors.OwnerUnknownError(self.file_name, single_chat=False)

    def _chat_list(self, text: JsonText) -> Iterator[Chunk]:
        if text.peek() != "{":
            text.skip(SKELETON_DEPTH - 1)
            return
        for key in text.members():
            if key != "list" or text.peek() != "[":
                text.skip(SKELETON_DEPTH - 2)
                continue
            for _ in text.elements():
                if text.peek() != "{":
                    text.skip(SKELETON_DEPTH - 3)
                    continue
                chat = _Chat()
                for chat_key in text.members():
                    if chat_key == "messages":
                        yield from self._messages(text, chat)
                    elif chat_key in ("name", "type", "id"):
                        _remember(chat.meta, chat_key, text.value())
                    else:
                        text.skip(0)
                yield from self._end_chat(chat)

    def _messages(self, text: JsonText, chat: _Chat) -> Iterator[Chunk]:
        if text.peek() != "[":
            text.skip(0)
            return
        text.where = f"in the messages of {chat_label(chat.meta)}"
        try:
            objects = text.objects()
            for raw in objects:
                chat.pending.append(raw)
                if chat.record is not None or self._chat_ready(chat):
                    break
                # else the chat's id or type comes after its messages
            else:
                return  # _end_chat decides about the chat and its pending messages
            yield from self._emit(chat, chat.pending)
            chat.pending = []
            yield from self._rows(objects, chat)
        finally:
            text.where = ""

    def _rows(self, raws: Iterable[dict[str, Any]], chat: _Chat) -> Iterator[list[MessageRow]]:
        """The rows of a chat's messages, in lists of up to ``chunk_rows``.

        Each message's object is dropped once converted: objects held longer would cost the
        garbage collector more than the hand-overs that lists save.
        """
        assert chat.record is not None and self.owner_id is not None
        chat_id, owner_id, local_tz = chat.record.chat_id, self.owner_id, self.local_tz
        size, convert = self.chunk_rows, to_message_row
        rows: list[MessageRow] = []
        append = rows.append
        unreadable = 0
        try:
            for raw in raws:
                # A plain dict's strings are bytes read as Latin-1 (see JsonText.objects).
                row = convert(raw, chat_id, owner_id, local_tz, latin1=type(raw) is dict)
                if row is None:
                    unreadable += 1
                    continue
                append(row)
                if len(rows) >= size:
                    yield rows
                    rows = []
                    append = rows.append
        except UnicodeDecodeError:
            raise errors.NotUtf8Error(self.file_name) from None
        except BadValue as bad:
            raise self._bad_message(bad, raw, chat) from None
        finally:
            self.unreadable_messages += unreadable
        if rows:
            yield rows

    def _end_chat(self, chat: _Chat) -> Iterator[Chunk]:
        if chat.record is None and not self._chat_ready(chat, at_end=True):
            if self.kind == "single_chat":  # the file is this chat: nothing to import
                raise errors.MalformedValueError(
                    self.file_name,
                    chat_label(chat.meta),
                    "id",
                    chat.meta.get("id"),
                    EXPECTED_CHAT_ID,
                )
            logger.warning("Skipped a chat without id in %s", self.file_name)
            return
        yield from self._emit(chat, chat.pending)
        chat.pending = []

    def _chat_ready(self, chat: _Chat, *, at_end: bool = False) -> bool:
        """Build the chat's record once its id and type are known (and the owner is)."""
        export_id, chat_type = chat.meta.get("id"), chat.meta.get("type")
        if type(export_id) is not int or not isinstance(chat_type, str):
            if at_end and type(export_id) is int:
                chat_type = "unknown"
            else:
                return False
        # Export ids are positive: the Bot API's negative ones are derived from them, so a
        # negative one would come out as another chat's.
        if not 0 < export_id < ID_LIMIT:
            raise errors.MalformedValueError(
                self.file_name, chat_label(chat.meta), "id", export_id, EXPECTED_CHAT_ID
            )
        self._resolve_owner(chat_type, export_id)
        title = chat.meta.get("name")
        chat.record = ChatRecord(
            chat_id=bot_api_chat_id(export_id, chat_type),
            title=_storable(title) if isinstance(title, str) else None,
            chat_type=_storable(chat_type),
        )
        return True

    def _emit(self, chat: _Chat, raws: list[dict[str, Any]]) -> Iterator[Chunk]:
        assert chat.record is not None
        if not chat.emitted:
            chat.emitted = True
            yield chat.record
        yield from self._rows(raws, chat)

    def _resolve_owner(self, chat_type: str, export_id: int) -> None:
        if self.owner_id is not None:
            return
        if self.kind == "full_account":
            raise _OwnerComesLater
        if chat_type == "saved_messages":
            self.owner_id = export_id  # only the owner writes in their saved messages
            return
        raise errors.OwnerUnknownError(self.file_name, single_chat=True)

    def _personal_information(self, value: object) -> None:
        if not isinstance(value, dict) or "user_id" not in value:
            return  # without it, the owner must be given (OwnerUnknownError)
        user_id = value["user_id"]
        if type(user_id) is float and user_id.is_integer():
            user_id = int(user_id)
        if type(user_id) is not int or not 0 < user_id < ID_LIMIT:
            raise errors.MalformedValueError(
                self.file_name, "personal_information", "user_id", user_id, EXPECTED_CHAT_ID
            )
        self._set_file_owner(user_id)

    def _bad_message(
        self, bad: BadValue, raw: dict[str, Any], chat: _Chat
    ) -> errors.MalformedValueError:
        """The error for a bad value of the message ``raw`` of ``chat``."""
        message_id = raw.get("id")
        where = f"a message in {chat_label(chat.meta)}"
        if bad.field != "id" and type(message_id) is int:
            where = f"message {message_id} in {chat_label(chat.meta)}"
        return errors.MalformedValueError(
            self.file_name, where, bad.field, bad.value, bad.expected
        )

    def _set_file_owner(self, user_id: int) -> None:
        self.file_owner_id = user_id
        expected = self.requested_owner_id
        if expected is not None and expected != user_id:
            raise errors.OwnerMismatchError(self.file_name, user_id, expected)
        self.owner_id = user_id


def chat_label(meta: dict[str, Any]) -> str:
    """How an error names a chat: ``the chat "Sam"``, ``the chat with id 42``, ``a chat``."""
    name, export_id = meta.get("name"), meta.get("id")
    if isinstance(name, str) and name.strip():
        name = " ".join(name.split())
        if len(name) > CHAT_NAME_SHOWN:
            name = name[: CHAT_NAME_SHOWN - 1] + "…"
        return f'the chat "{name}"'
    if type(export_id) is int and abs(export_id) < ID_LIMIT:
        return f"the chat with id {export_id}"
    return "a chat"


def _storable(text: str) -> str:
    """``text`` with a lone surrogate (``"\\ud800"`` in the JSON) as "?": SQLite takes UTF-8."""
    return text.encode("utf-8", "replace").decode("utf-8")


def _remember(meta: dict[str, Any], key: str, value: object) -> None:
    """Keep a scalar chat field (``name``, ``type``, ``id``); containers are not metadata."""
    if not isinstance(value, dict | list):
        meta[key] = value
