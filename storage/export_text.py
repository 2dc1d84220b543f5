"""A JSON document read piece by piece: the cursor the export parser walks with.

:class:`JsonText` holds about one piece (1 MiB) of the decoded text at a time. The caller
walks the skeleton with :meth:`JsonText.members` and :meth:`JsonText.elements`, and decodes
whole values at the cursor with :meth:`JsonText.value`, which is the C scanner of the
standard ``json`` module run on the text in place: fast, and never a copy of the file.
A value cut by the end of the piece is decoded again once the next piece is read.

Broken input raises the :class:`~storage.errors.ExportError` the owner should see: not
UTF-8, not JSON, cut short (the error is at the end of the data) or damaged (elsewhere).
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Iterator
from typing import IO, Any

from storage import errors

READ_BYTES = 1 << 20
NEAR_END = 16
"""An error this close to the end of the text read so far may just need more text."""
UTF8_BOM = b"\xef\xbb\xbf"
OTHER_BOMS = (b"\xff\xfe", b"\xfe\xff")

_SPACE: Any = re.compile(r"[ \t\n\r]*").match  # always matches
_SEPARATOR = re.compile(r"[ \t\n\r]*([,\]])").match


def _refuse_constant(name: str) -> Any:
    raise json.JSONDecodeError(f"{name} is not JSON", "", 0)  # NaN, Infinity: not JSON


# The decoder's C scanner: (value, end) of the value at an index, StopIteration if none.
_SCAN: Any = json.JSONDecoder(parse_constant=_refuse_constant).scan_once  # type: ignore[attr-defined]


class JsonText:
    """The decoded text of a JSON document, a cursor ``pos`` in it, and the bytes read."""

    def __init__(self, raw: IO[bytes], file_name: str) -> None:
        self._raw = raw
        self._decoder = codecs.getincrementaldecoder("utf-8")()
        self._first = True
        self.file_name = file_name
        self.buf = ""
        self.pos = 0
        self.eof = False
        self.bytes_read = 0

    # -- reading ---------------------------------------------------------------------------

    def fill(self) -> bool:
        """Read the next piece (bigger when a value spans pieces); False at the end."""
        if self.eof:
            return False
        size = max(READ_BYTES, 2 * (len(self.buf) - self.pos))
        data = self._raw.read(size)
        self.bytes_read += len(data)
        if self._first and data:
            self._first = False
            if data.startswith(UTF8_BOM):
                data = data[len(UTF8_BOM) :]
            elif data.startswith(OTHER_BOMS):
                raise errors.NotUtf8Error(self.file_name)
        self.eof = not data
        try:
            text = self._decoder.decode(data, final=self.eof)
        except UnicodeDecodeError:
            if self.eof:  # a character cut in half by the end of the file
                raise errors.TruncatedExportError(self.file_name) from None
            raise errors.NotUtf8Error(self.file_name) from None
        self.buf = self.buf[self.pos :] + text
        self.pos = 0
        return True

    def peek(self) -> str:
        """The next character that is not white space ('' at the end); the cursor moves to it."""
        while True:
            self.pos = _SPACE(self.buf, self.pos).end()
            if self.pos < len(self.buf):
                return self.buf[self.pos]
            if not self.fill():
                return ""

    def value(self) -> Any:
        """Decode the whole value at the cursor and move past it."""
        if self.peek() == "":
            raise errors.TruncatedExportError(self.file_name)
        while True:
            try:
                value, end = _SCAN(self.buf, self.pos)
            except StopIteration as stop:  # no value starts here
                error_at, unterminated = int(stop.value), False
            except json.JSONDecodeError as exc:
                error_at, unterminated = exc.pos, exc.msg.startswith("Unterminated string")
            else:
                if end < len(self.buf) or self.eof:
                    self.pos = end
                    return value
                self.fill()  # a number at the very end may go on in the next piece
                continue
            maybe_cut = unterminated or len(self.buf) - error_at <= NEAR_END
            if self.eof or not maybe_cut:
                raise self._error(cut=maybe_cut and self.eof)
            self.fill()

    # -- walking ---------------------------------------------------------------------------

    def members(self) -> Iterator[str]:
        """The keys of the object at the cursor; the caller reads or skips each value."""
        self.pos += 1  # the "{"
        char = self.peek()
        if char == "}":
            self.pos += 1
            return
        while True:
            if char != '"':
                raise self.broken()
            key = self.value()
            if self.peek() != ":":
                raise self.broken()
            self.pos += 1
            yield key
            char = self._separator("}")
            if char == "}":
                return
            char = self.peek()

    def elements(self) -> Iterator[None]:
        """Stops at each element of the array at the cursor; the caller reads or skips it."""
        self.pos += 1  # the "["
        if self.peek() == "]":
            self.pos += 1
            return
        while True:
            yield
            if self._separator("]") == "]":
                return
            if self.peek() == "":
                raise self.broken()

    def objects(self) -> Iterator[dict[str, Any]]:
        """The objects in the array at the cursor (other elements are skipped).

        The loop every message of an export goes through: the common case (a whole object,
        then a comma) is decoded without leaving this frame.
        """
        self.pos += 1  # the "["
        if self.peek() == "]":
            self.pos += 1
            return
        while True:
            buf, pos = self.buf, self.pos
            try:
                if buf[pos] != "{":  # anything else may be cut by the end of the piece
                    raise StopIteration
                value, end = _SCAN(buf, pos)
            except (StopIteration, json.JSONDecodeError):
                value = self.value()  # reads on, or tells what is wrong
                buf, end = self.buf, self.pos
            found = _SEPARATOR(buf, end)
            if found is None:
                self.pos = end
                char = self._separator("]")
            else:
                self.pos = found.end()
                char = found.group(1)
            if type(value) is dict:
                yield value
            if char == "]":
                return
            if self.peek() == "":
                raise self.broken()

    def skip(self, depth: int) -> None:
        """Move past the value at the cursor, walking ``depth`` levels of it piece by piece."""
        char = self.peek()
        if depth > 0 and char == "{":
            for _ in self.members():
                self.skip(depth - 1)
        elif depth > 0 and char == "[":
            for _ in self.elements():
                self.skip(depth - 1)
        else:
            self.value()

    def end(self) -> None:
        """Check that only white space follows the document."""
        if self.peek() != "":
            raise errors.DamagedExportError(self.file_name)

    # -- errors ----------------------------------------------------------------------------

    def broken(self) -> errors.ExportError:
        """The error for an unexpected character at the cursor (or the end of the data)."""
        return self._error(cut=self.peek() == "")

    def not_an_export(self) -> errors.ExportError:
        """The error for a document that does not start with ``{``: JSON or not at all?"""
        if self.peek() == "[":
            return errors.NotTelegramExportError(self.file_name)
        try:
            self.value()
        except errors.ExportError:
            return errors.NotJsonError(self.file_name)
        return errors.NotTelegramExportError(self.file_name)

    def _separator(self, closing: str) -> str:
        char = self.peek()
        if char != "," and char != closing:
            raise self.broken()
        self.pos += 1
        return char

    def _error(self, *, cut: bool) -> errors.ExportError:
        if cut:
            return errors.TruncatedExportError(self.file_name)
        return errors.DamagedExportError(self.file_name)


def open_text(raw: IO[bytes], file_name: str) -> JsonText:
    """A :class:`JsonText` over a binary stream (UTF-8, with or without a BOM)."""
    return JsonText(raw, file_name)
