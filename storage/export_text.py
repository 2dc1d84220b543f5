"""A JSON document read piece by piece: the cursor the export parser walks with.

:class:`JsonText` holds about one piece (1 MiB) of the decoded text at a time. The caller
walks the skeleton with :meth:`JsonText.members` and :meth:`JsonText.elements`, and decodes
whole values at the cursor with :meth:`JsonText.value`, which is the C scanner of the
standard ``json`` module run on the text in place: fast, and never a copy of the file.
A value cut by the end of the piece is decoded again once the next piece is read.

The pieces are read as Latin-1, not UTF-8: each byte becomes one character, which costs
almost nothing, where decoding UTF-8 (emoji make every piece four bytes a character) took a
third of the scanner's own time. JSON's structure is ASCII, so the scanner walks such text
exactly as the decoded one; only non-ASCII string values come out as their UTF-8 bytes, one
character each, and :func:`utf8` turns them into the real text. Messages yielded by
:meth:`JsonText.objects` are left that way (the converter fixes the few strings it keeps,
see :func:`~storage.export_format.to_message_row`), except a message with a ``\\u``
escape, whose characters are not bytes: it is decoded as UTF-8 and scanned again, and
yielded as a :class:`DecodedObject`. Every other value (:meth:`JsonText.value`) is decoded.
Bytes that are not UTF-8 raise :class:`~storage.errors.NotUtf8Error` where a value that is
read contains them; values only skipped are not checked.

Broken input raises the :class:`~storage.errors.ExportError` the owner should see: not
UTF-8, not JSON, cut short (the error is at the end of the data) or damaged (elsewhere); so
does JSON that Python cannot hold: values nested deeper than its recursion limit, a number
of more than 4,300 digits. Those name the byte they start at and ``where`` the parser is.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import IO, Any

from storage import errors

READ_BYTES = 1 << 20
NEAR_END = 16
"""An error this close to the end of the text read so far may just need more text."""
LOW_WATER = 1 << 16
"""objects() reads the next piece before an object starting this close to the end of the
text: one cut by the end would be scanned twice, through a costly JSONDecodeError."""
UTF8_BOM = b"\xef\xbb\xbf"
OTHER_BOMS = (b"\xff\xfe", b"\xfe\xff")

_SPACE: Any = re.compile(r"[ \t\n\r]*").match  # always matches
_SEPARATOR = re.compile(r"[ \t\n\r]*([,\]])").match
_NEXT_OBJECT: Any = re.compile(r"[ \t\n\r]*,[ \t\n\r]*(?=\{)").match
"""A comma and the next object of an array: the common case after each message."""
ESCAPE = "\\u"
_FIND_ESCAPE: Any = re.compile(r"\\u").search
"""Whether a piece has an escape: the regular expression engine's literal search is three
times as fast as ``in`` on a piece (a twentieth of the parser's time before)."""


def _refuse_constant(name: str) -> Any:
    raise json.JSONDecodeError(f"{name} is not JSON", "", 0)  # NaN, Infinity: not JSON


# The decoder's C scanner: (value, end) of the value at an index, StopIteration if none.
_SCAN: Any = json.JSONDecoder(parse_constant=_refuse_constant).scan_once  # type: ignore[attr-defined]


class DecodedObject(dict[str, Any]):
    """An object of :meth:`JsonText.objects` decoded as UTF-8 (it has ``\\u`` escapes)."""


def utf8(value: str) -> str:
    """The text of a string read from Latin-1 pieces (raises UnicodeDecodeError if not UTF-8)."""
    return value if value.isascii() else value.encode("latin-1").decode("utf-8")


def decode_value(value: Any) -> Any:
    """A value read from Latin-1 pieces, with every string (and key) made real text."""
    if type(value) is str:
        return utf8(value)
    if type(value) is list:
        return [decode_value(item) for item in value]
    if type(value) is dict:
        return {utf8(key): decode_value(item) for key, item in value.items()}
    return value


class JsonText:
    """The decoded text of a JSON document, a cursor ``pos`` in it, and the bytes read."""

    def __init__(self, raw: IO[bytes], file_name: str) -> None:
        self._raw = raw
        self._first = True
        self._escapes = False  # whether the text held now has a "\u" (rare: slow path)
        self._value_start = 0  # where the value _raw_value read last starts
        self.file_name = file_name
        self.where = ""
        """Where the cursor is, for the errors that can say no more (``in the chat "Sam"``)."""
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
        self.buf = self.buf[self.pos :] + data.decode("latin-1")
        self.pos = 0
        self._escapes = _FIND_ESCAPE(self.buf) is not None
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
        return self._decode_last(self._raw_value())

    def _decode_last(self, value: Any) -> Any:
        """``value``, just read by _raw_value, decoded (as read again if it has escapes)."""
        start, end = self._value_start, self.pos
        if self._escapes and self.buf.find(ESCAPE, start, end) >= 0:
            return self._decoded(start, end)
        try:
            return decode_value(value)
        except UnicodeDecodeError:
            raise errors.NotUtf8Error(self.file_name) from None
        except RecursionError:
            raise self._too_deep(start) from None

    def _decoded(self, start: int, end: int) -> Any:
        """The value at ``buf[start:end]`` decoded as UTF-8 first (it has escapes)."""
        try:
            return _SCAN(self.buf[start:end].encode("latin-1").decode("utf-8"), 0)[0]
        except UnicodeDecodeError:
            raise errors.NotUtf8Error(self.file_name) from None
        except RecursionError:  # read once already, but from a deeper stack
            raise self._too_deep(start) from None

    def _raw_value(self) -> Any:
        """The value at the cursor as read (strings as their bytes); moves past it."""
        if self.peek() == "":
            raise errors.TruncatedExportError(self.file_name)
        while True:
            try:
                value, end = _SCAN(self.buf, self.pos)
            except StopIteration as stop:  # no value starts here
                error_at, unterminated = int(stop.value), False
            except json.JSONDecodeError as exc:
                error_at, unterminated = exc.pos, exc.msg.startswith("Unterminated string")
            except ValueError:  # int() of a number longer than sys.get_int_max_str_digits()
                raise errors.NumberTooLongError(self.file_name, self._place(self.pos)) from None
            except RecursionError:
                raise self._too_deep(self.pos) from None
            else:
                if end < len(self.buf) or self.eof:
                    self._value_start, self.pos = self.pos, end
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
            key = self._raw_value()
            if not key.isascii():  # no key we look for is; only a bad one fails here
                key = self._decode_last(key)
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
        then the same separator as last time, then the next object) is decoded without
        leaving this frame. Strings are as read (see the module's docstring), unless the
        object is a :class:`DecodedObject`.
        """
        self.pos += 1  # the "["
        if self.peek() == "]":
            self.pos += 1
            return
        scan, next_object = _SCAN, _NEXT_OBJECT
        separator = "\x00"  # what came between the last two objects; nothing matches it yet
        buf, pos = self.buf, self.pos
        refill_at = len(buf) - LOW_WATER
        while True:
            if pos > refill_at and not self.eof:
                self.pos = pos
                self.fill()
                buf, pos = self.buf, self.pos
                refill_at = len(buf) - LOW_WATER
            try:
                if buf[pos] != "{":  # anything else may be cut by the end of the piece
                    raise StopIteration
                value, end = scan(buf, pos)
            except (StopIteration, IndexError, ValueError, RecursionError):
                self.pos = pos
                value = self._raw_value()  # reads on, or tells what is wrong
                buf, pos, end = self.buf, self._value_start, self.pos
                refill_at = len(buf) - LOW_WATER
            if self._escapes and buf.find(ESCAPE, pos, end) >= 0 and type(value) is dict:
                value = DecodedObject(self._decoded(pos, end))
            if buf.startswith(separator, end):
                pos = end + len(separator)
            else:
                found = next_object(buf, end)
                if found is None:
                    break  # the end of the array, or an element that is not an object
                separator = buf[end : found.end()]
                pos = found.end()
            if type(value) is dict or type(value) is DecodedObject:
                self.pos = pos  # for a reader of the text while the caller holds this object
                yield value
        # The slow way on from the last object read: to the next one, or the array's end.
        while True:
            found = _SEPARATOR(buf, end)
            if found is None:
                self.pos = end
                char = self._separator("]")
            else:
                self.pos = found.end()
                char = found.group(1)
            if type(value) is dict or type(value) is DecodedObject:
                yield value
            if char == "]":
                return
            if self.peek() == "":
                raise self.broken()
            value = self._raw_value()
            buf, end = self.buf, self.pos
            start = self._value_start
            if self._escapes and buf.find(ESCAPE, start, end) >= 0 and type(value) is dict:
                value = DecodedObject(self._decoded(start, end))

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
            self._raw_value()

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
            self._raw_value()
        except errors.ExportError:
            return errors.NotJsonError(self.file_name)
        return errors.NotTelegramExportError(self.file_name)

    def _separator(self, closing: str) -> str:
        char = self.peek()
        if char != "," and char != closing:
            raise self.broken()
        self.pos += 1
        return char

    def _too_deep(self, at: int) -> errors.ExportError:
        return errors.NestedTooDeepError(self.file_name, self._place(at))

    def _place(self, at: int) -> str:
        """``where``, and the byte of the file at index ``at`` of the text held now."""
        byte = self.bytes_read - len(self.buf) + at
        near = f"near byte {byte:,} of the file"
        return f"{self.where}, {near}" if self.where else near

    def _error(self, *, cut: bool) -> errors.ExportError:
        if cut:
            return errors.TruncatedExportError(self.file_name)
        return errors.DamagedExportError(self.file_name)


def open_text(raw: IO[bytes], file_name: str) -> JsonText:
    """A :class:`JsonText` over a binary stream (UTF-8, with or without a BOM)."""
    return JsonText(raw, file_name)
