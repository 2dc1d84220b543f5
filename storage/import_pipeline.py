"""Where an import's rows come from: the parser in this process, or in a child process.

Parsing a big JSON export is pure Python work, and so is writing its rows to SQLite; one
process can do only one of them at a time. Above :data:`PIPELINE_MIN_BYTES` of JSON the
parser runs in a child process (``spawn``: no copy of the bot's state, no inherited
connection) that sends its batches of rows through a pipe, as :mod:`marshal` data (plain
tuples, lists, strings and ints: quicker both ways than pickle), while this process writes
the previous ones. Smaller exports, and every HTML export, are parsed here: a child
costs a Python start-up, more than such an import takes.

The child owns nothing the caller must undo: it only reads the export. :meth:`BatchSource.close`
kills and reaps it, whatever state it is in, so a failed or cancelled import leaves no process
behind. An :class:`~storage.errors.ExportError` raised in the child reaches the caller as the
same class with the same message.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import marshal
import multiprocessing
import queue
import threading
from collections.abc import Generator
from dataclasses import dataclass
from datetime import tzinfo
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Protocol

from storage import errors
from storage.export_archive import ExportSource
from storage.export_format import MessageRow, skip_reason
from storage.export_parser import ExportParser, Item
from storage.models import ChatRecord

logger = logging.getLogger(__name__)

IMPORT_BATCH_SIZE = 5_000
PIPELINE_MIN_BYTES = 20_000_000
"""JSON exports at least this big (uncompressed) are parsed in a child process."""
PREFETCH_BATCHES = 3
"""Batches received from the child and not yet written: bounds this process's memory."""
JOIN_SECONDS = 5.0
MARSHAL_VERSION = 4
"""Shares repeated objects (a batch's chat ids, kinds, sender names) as references."""
# glibc's malloc in the parser process: its 1 MiB pieces of text come from the heap, which
# is not trimmed and grown again for each of them (the page faults took a twentieth of its
# time). Up to the trim threshold of freed memory stays with the process until it ends.
CHILD_MMAP_THRESHOLD = 8 << 20
CHILD_TRIM_THRESHOLD = 64 << 20
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


class ParserProcessError(RuntimeError):
    """The parser process stopped without an answer (killed, out of memory, a bug)."""


@dataclass(frozen=True)
class RowBatch:
    """The next rows to write: new chats first, then their message rows.

    ``owner_messages`` and ``skipped`` count the rows for the import's report. For a big
    export they are counted by the thread that receives the parser process's batches: the
    parser is the busier of the two processes.
    """

    chats: list[ChatRecord]
    rows: list[MessageRow]
    bytes_read: int
    owner_messages: int
    skipped: dict[str, int]

    @classmethod
    def of(cls, chats: list[ChatRecord], rows: list[MessageRow], bytes_read: int) -> RowBatch:
        """The batch of these chats and rows, with the rows counted."""
        owner = 0
        skipped: dict[str, int] = {}
        for _, _, _, _, is_owner, _, text, kind, _, forwarded_from, via_bot in rows:
            owner += is_owner
            if (
                (kind == "text" or kind == "sticker")
                and forwarded_from is None
                and via_bot is None
                and text
                and not text.isspace()  # with the test above: text.strip() is not empty
            ):
                continue  # training text: the common case, decided without a call
            reason = skip_reason(kind, text, forwarded_from, via_bot)
            if reason is not None:
                skipped[reason] = skipped.get(reason, 0) + 1
        return cls(chats, rows, bytes_read, owner, skipped)


class Parser(Protocol):
    """What the importer reads from either export format."""

    owner_id: int | None
    file_owner_id: int | None
    unreadable_messages: int

    @property
    def bytes_read(self) -> int: ...

    @property
    def bytes_total(self) -> int: ...

    def items(self) -> Generator[Item, None, None]: ...


class BatchSource(Protocol):
    """Batches of one export, then what the parser learned (valid once exhausted)."""

    owner_id: int | None
    file_owner_id: int | None
    unreadable_messages: int
    bytes_total: int

    def next_batch(self) -> RowBatch | None:
        """The next batch, None at the end; raises ExportError for a bad file."""
        ...

    def close(self) -> None:
        """Stop reading (also when not at the end) and release what reading holds."""
        ...


def read_batches(parser: Parser) -> Generator[RowBatch, None, None]:
    """The parser's items grouped into batches of up to IMPORT_BATCH_SIZE messages."""
    if isinstance(parser, ExportParser):
        yield from _chunk_batches(parser)
        return
    chats: list[ChatRecord] = []
    rows: list[MessageRow] = []
    append = rows.append
    for item in parser.items():
        if type(item) is ChatRecord:
            chats.append(item)
            continue
        append(item)  # type: ignore[arg-type]
        if len(rows) >= IMPORT_BATCH_SIZE:
            yield RowBatch.of(chats, rows, parser.bytes_read)
            chats, rows = [], []
            append = rows.append
    if chats or rows:
        yield RowBatch.of(chats, rows, parser.bytes_read)


def _chunk_batches(parser: ExportParser) -> Generator[RowBatch, None, None]:
    """read_batches for the JSON parser, which hands over lists of rows (fewer steps)."""
    for chats, rows in _chunk_rows(parser):
        yield RowBatch.of(chats, rows, parser.bytes_read)


def _chunk_rows(
    parser: ExportParser,
) -> Generator[tuple[list[ChatRecord], list[MessageRow]], None, None]:
    """The JSON parser's chats and rows, grouped into batches of up to IMPORT_BATCH_SIZE rows.

    Read ``parser.bytes_read`` when a batch arrives: it is where that batch ends.
    """
    chats: list[ChatRecord] = []
    rows: list[MessageRow] = []
    for chunk in parser.chunks():
        if type(chunk) is ChatRecord:
            chats.append(chunk)
            continue
        assert type(chunk) is list
        if rows and len(rows) + len(chunk) > IMPORT_BATCH_SIZE:
            yield chats, rows
            chats, rows = [], []
        if rows:
            rows += chunk
        else:
            rows = chunk
    if chats or rows:
        yield chats, rows


class InProcessSource:
    """Batches read by a parser in this process (called from a worker thread)."""

    def __init__(self, parser: Parser) -> None:
        self._parser = parser
        self._batches = read_batches(parser)
        self.bytes_total = parser.bytes_total
        self.owner_id: int | None = None
        self.file_owner_id: int | None = None
        self.unreadable_messages = 0

    def next_batch(self) -> RowBatch | None:
        batch = next(self._batches, None)
        parser = self._parser
        self.owner_id = parser.owner_id
        self.file_owner_id = parser.file_owner_id
        self.unreadable_messages = parser.unreadable_messages
        return batch

    def close(self) -> None:
        # A cancelled import can leave a worker thread inside the parser; it ends on its own.
        with contextlib.suppress(ValueError):
            self._batches.close()


class ChildSource:
    """Batches read by an :class:`ExportParser` in a child process.

    A reader thread receives and loads the child's messages into a queue of at most
    PREFETCH_BATCHES; the child blocks on the pipe when the queue is full.
    """

    def __init__(
        self,
        path: Path,
        source: ExportSource,
        *,
        owner_id: int | None,
        file_name: str,
        local_tz: tzinfo,
    ) -> None:
        context = multiprocessing.get_context("spawn")
        receive, send = context.Pipe(duplex=False)
        self._process = context.Process(
            target=_child_main,
            args=(send, path, source, owner_id, file_name, local_tz),
            name="tgclone-export-parser",
            daemon=True,
        )
        self._process.start()
        send.close()  # the child holds the only write end: its exit means end of file
        self._receive = receive
        self._queue: queue.Queue[tuple[Any, ...]] = queue.Queue(PREFETCH_BATCHES)
        self._stop = threading.Event()
        self._reader = threading.Thread(target=self._read, name="export-parser-reader")
        self._reader.daemon = True
        self._reader.start()
        self._done = False
        self.bytes_total = source.uncompressed_size
        self.owner_id: int | None = None
        self.file_owner_id: int | None = None
        self.unreadable_messages = 0

    def next_batch(self) -> RowBatch | None:
        if self._done:
            return None
        message = self._queue.get()
        kind = message[0]
        if kind == "batch":
            return message[1]  # type: ignore[no-any-return]
        self._done = True
        if kind == "closed":
            return None  # the import stopped reading: nobody waits for this answer
        if kind == "done":
            self.owner_id, self.file_owner_id, self.unreadable_messages = message[1]
            return None
        if kind == "error":
            raise rebuild_export_error(*message[1])
        self._process.join(JOIN_SECONDS)
        raise ParserProcessError(
            f"The export parser process stopped unexpectedly (exit code "
            f"{self._process.exitcode}); nothing was imported."
        )

    def close(self) -> None:
        self._stop.set()  # a reader blocked on a full queue sees it within 0.1 s
        process = self._process
        if process.is_alive():
            process.kill()  # the reader's recv then ends: the pipe has no writer left
        process.join(JOIN_SECONDS)
        self._reader.join(JOIN_SECONDS)
        self._receive.close()
        process.close()
        with contextlib.suppress(queue.Empty):  # wake a next_batch still waiting, then end
            while True:
                self._queue.get_nowait()
        self._queue.put(("closed",))

    def _read(self) -> None:
        put = self._queue.put
        while not self._stop.is_set():
            try:
                message = marshal.loads(self._receive.recv_bytes())
            except (EOFError, OSError):
                message = ("crashed",)
            if message[0] == "batch":
                chats, rows, bytes_read = message[1]
                records = [ChatRecord(*chat) for chat in chats]
                message = ("batch", RowBatch.of(records, rows, bytes_read))
            while not self._stop.is_set():
                try:
                    put(message, timeout=0.1)
                    break
                except queue.Full:
                    continue
            if message[0] != "batch":
                return


def rebuild_export_error(class_name: str, message: str) -> errors.ExportError:
    """The ExportError the child raised, rebuilt from its class name and message.

    Subclasses take the pieces of their sentence as arguments, not the sentence, so they do
    not unpickle as themselves; their class and message are what the owner and tests see.
    """
    cls = getattr(errors, class_name, None)
    if not (isinstance(cls, type) and issubclass(cls, errors.ExportError)):
        cls = errors.ExportError
    error = cls.__new__(cls)
    errors.ExportError.__init__(error, message)
    return error


def _child_main(
    send: Connection,
    path: Path,
    source: ExportSource,
    owner_id: int | None,
    file_name: str,
    local_tz: tzinfo,
) -> None:
    """The child process: parse the export and send every batch, then the parser's findings."""
    _tune_allocator()
    try:
        parser = ExportParser(
            path, owner_id=owner_id, file_name=file_name, local_tz=local_tz, source=source
        )
        for chats, rows in _chunk_rows(parser):
            chat_tuples = [(chat.chat_id, chat.title, chat.chat_type) for chat in chats]
            _send(send, ("batch", (chat_tuples, rows, parser.bytes_read)))
        findings = (parser.owner_id, parser.file_owner_id, parser.unreadable_messages)
        _send(send, ("done", findings))
    except errors.ExportError as error:
        _send(send, ("error", (type(error).__name__, error.message)))
    except BrokenPipeError:
        pass  # the importer stopped listening: it failed or was cancelled
    finally:
        send.close()


def _send(send: Connection, message: tuple[Any, ...]) -> None:
    send.send_bytes(marshal.dumps(message, MARSHAL_VERSION))


def _tune_allocator() -> None:
    """Set glibc's malloc thresholds for the parser process (elsewhere: nothing to do)."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError, TypeError):  # not glibc (musl, macOS, Windows)
        return
    mallopt(_M_MMAP_THRESHOLD, CHILD_MMAP_THRESHOLD)
    mallopt(_M_TRIM_THRESHOLD, CHILD_TRIM_THRESHOLD)
