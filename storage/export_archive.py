"""What the owner sent, inspected before a byte of it is parsed: a plain file or a .zip.

:func:`inspect_export` tells JSON from HTML and, for a ``.zip`` (recognised by its magic
bytes, not its name), finds the export inside: the shallowest ``result.json``, else the
``messages*.html`` pages of each chat. :func:`open_export` then opens the plain file or the
archive once (a zip's directory is read once, however many pages are read from it), and
:meth:`ExportFiles.open` streams one file's bytes; nothing is ever extracted to disk.
:func:`open_member` does both for a single file.

An archive is refused before reading when it is damaged, password-protected, has a member
with an absolute or ``..`` path, or looks like a zip bomb (the export files it holds unpack to
more than ``max_uncompressed`` bytes, or a member is compressed more than ``max_ratio``
times). While streaming, the bytes actually read are counted against the size the archive
declares, since headers can lie. Media files beside the export are never read.
"""

from __future__ import annotations

import io
import logging
import re
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Literal

from storage import errors

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

logger = logging.getLogger(__name__)

ExportFormat = Literal["json", "html"]

MAX_UNCOMPRESSED = 8 * 1024**3
"""Default limit on the uncompressed size of the export files read from one archive."""
MAX_RATIO = 200.0
"""Default limit on a member's compression ratio (JSON and HTML compress about 10-20x)."""
RATIO_MIN_BYTES = 1 << 20
"""Members smaller than this are never a bomb on their own, however well they compress."""
MAX_EXPORT_DEPTH = 2
"""How many folders may sit above the export: ``Telegram Desktop/DataExport_x/result.json``."""

ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a local file header; an empty archive
UTF8_BOM = b"\xef\xbb\xbf"
HTML_STARTS = (b"<!doctype html", b"<html")
SNIFF_BYTES = 1024
STREAM_BUFFER = 1 << 16
RESULT_JSON = "result.json"
HTML_PAGE = re.compile(r"messages(\d*)\.html")
CHAT_FOLDER = re.compile(r"chat_\d+")
JUNK_PREFIXES = ("__MACOSX/",)
READABLE_COMPRESSION = frozenset(
    {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA}
)


@dataclass(frozen=True)
class ExportSource:
    """Where the export's bytes are: what :func:`inspect_export` found.

    Attributes:
        format: ``json`` (one ``result.json``) or ``html`` (``messages*.html`` pages).
        file_name: the name the owner gave the file; errors name it.
        uncompressed_size: bytes the export files hold (for progress and limits).
        is_zip: whether the bytes are inside a .zip archive.
        member: the ``result.json`` member of a zip; None for a plain file and for HTML.
        html_chats: for HTML in a zip, each chat's pages in reading order
            (``messages.html``, ``messages2.html``, ...); empty for a plain file, which is
            itself the one page of one chat.
    """

    format: ExportFormat
    file_name: str
    uncompressed_size: int
    is_zip: bool = False
    member: str | None = None
    html_chats: tuple[tuple[str, ...], ...] = ()


def inspect_export(
    path: Path,
    file_name: str,
    *,
    max_uncompressed: int = MAX_UNCOMPRESSED,
    max_ratio: float = MAX_RATIO,
) -> ExportSource:
    """Find the export in ``path``; raises a specific ExportError for an unusable archive.

    A plain file that is neither JSON nor HTML is reported as ``json``, so the JSON parser's
    precise errors (empty, not UTF-8, not JSON) reach the owner.
    """
    with path.open("rb") as handle:
        head = handle.read(SNIFF_BYTES)
    if head[:4] in ZIP_MAGIC:
        return _inspect_zip(path, file_name, max_uncompressed, max_ratio)
    size = path.stat().st_size
    return ExportSource(format=_sniff(head), file_name=file_name, uncompressed_size=size)


class ExportFiles:
    """The files of one export, opened by :func:`open_export`."""

    def __init__(self, path: Path, source: ExportSource, archive: zipfile.ZipFile | None) -> None:
        self._path = path
        self._source = source
        self._archive = archive

    @contextmanager
    def open(self, member: str | None = None) -> Iterator[IO[bytes]]:
        """The bytes of ``member`` (default: ``source.member``), or of the plain file itself."""
        if self._archive is None:
            with self._path.open("rb") as raw:
                yield raw
            return
        name = member if member is not None else self._source.member
        if name is None:
            raise ValueError("a zip source needs the name of the member to open")
        file_name = self._source.file_name
        try:
            info = self._archive.getinfo(name)
            opened = self._archive.open(info)
        except (zipfile.BadZipFile, NotImplementedError, zlib.error, EOFError):
            raise errors.DamagedArchiveError(file_name) from None
        with opened as raw:
            yield io.BufferedReader(_GuardedStream(raw, info.file_size, file_name), STREAM_BUFFER)


@contextmanager
def open_export(path: Path, source: ExportSource) -> Iterator[ExportFiles]:
    """The export's files: for a zip, the archive is opened and its directory read once."""
    if not source.is_zip:
        yield ExportFiles(path, source, None)
        return
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError):
        raise errors.DamagedArchiveError(source.file_name) from None
    with archive:
        yield ExportFiles(path, source, archive)


@contextmanager
def open_member(
    path: Path, source: ExportSource, member: str | None = None
) -> Iterator[IO[bytes]]:
    """The bytes of ``member`` (default: ``source.member``), or of the plain file itself."""
    with open_export(path, source) as files, files.open(member) as raw:
        yield raw


def _sniff(head: bytes) -> ExportFormat:
    start = head.removeprefix(UTF8_BOM).lstrip().lower()
    return "html" if start.startswith(HTML_STARTS) else "json"


def _inspect_zip(
    path: Path, file_name: str, max_uncompressed: int, max_ratio: float
) -> ExportSource:
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError):
        raise errors.DamagedArchiveError(file_name) from None
    for info in infos:
        _check_member(info, file_name, max_ratio)
    files = [
        info for info in infos if not info.is_dir() and not info.filename.startswith(JUNK_PREFIXES)
    ]
    result = _find_result_json(files)
    if result is not None:
        _check_total(file_name, result.file_size, max_uncompressed)
        return ExportSource(
            format="json",
            file_name=file_name,
            uncompressed_size=result.file_size,
            is_zip=True,
            member=result.filename,
        )
    chats = _find_html_chats(files)
    if not chats:
        raise errors.ZipWithoutExportError(file_name)
    sizes = {info.filename: info.file_size for info in files}
    total = sum(sizes[page] for pages in chats for page in pages)
    _check_total(file_name, total, max_uncompressed)
    return ExportSource(
        format="html",
        file_name=file_name,
        uncompressed_size=total,
        is_zip=True,
        html_chats=chats,
    )


def _check_member(info: zipfile.ZipInfo, file_name: str, max_ratio: float) -> None:
    name = info.filename
    parts = re.split(r"[\\/]", name)
    if name.startswith(("/", "\\")) or re.match(r"[A-Za-z]:", name) or ".." in parts:
        raise errors.UnsafeArchiveError(file_name)
    if info.flag_bits & 0x1:
        raise errors.EncryptedArchiveError(file_name)
    if info.compress_type not in READABLE_COMPRESSION:
        raise errors.DamagedArchiveError(file_name)
    if info.file_size > RATIO_MIN_BYTES and info.file_size > max_ratio * max(
        info.compress_size, 1
    ):
        raise errors.ArchiveTooLargeError(
            file_name,
            f"holds a file compressed more than {max_ratio:.0f} times, which no Telegram "
            "export is (it looks like a zip bomb)",
        )


def _check_total(file_name: str, total: int, max_uncompressed: int) -> None:
    if total > max_uncompressed:
        raise errors.ArchiveTooLargeError(
            file_name,
            f"would unpack to {_size(total)} of export data, more than the "
            f"{_size(max_uncompressed)} I accept",
        )


def _find_result_json(files: list[zipfile.ZipInfo]) -> zipfile.ZipInfo | None:
    """The shallowest result.json, at most MAX_EXPORT_DEPTH folders down."""
    found = [
        info
        for info in files
        if info.filename.rsplit("/", 1)[-1] == RESULT_JSON
        and info.filename.count("/") <= MAX_EXPORT_DEPTH
    ]
    if not found:
        return None
    found.sort(key=lambda info: (info.filename.count("/"), info.filename))
    if len(found) > 1:
        logger.warning("%d result.json files in the archive: reading the shallowest", len(found))
    return found[0]


def _find_html_chats(files: list[zipfile.ZipInfo]) -> tuple[tuple[str, ...], ...]:
    """Each chat's ``messages*.html`` pages under the shallowest export root.

    A single-chat export keeps its pages in its root folder; an account export keeps them in
    ``chats/chat_NNN/`` below its root.
    """
    by_root: dict[tuple[str, ...], dict[tuple[str, ...], list[tuple[int, str]]]] = {}
    for info in files:
        *folder, base = info.filename.split("/")
        page = HTML_PAGE.fullmatch(base)
        if page is None:
            continue
        in_chats = len(folder) >= 2 and folder[-2] == "chats" and CHAT_FOLDER.fullmatch(folder[-1])
        root = tuple(folder[:-2] if in_chats else folder)
        if len(root) > MAX_EXPORT_DEPTH:
            continue
        number = int(page.group(1) or 1)
        by_root.setdefault(root, {}).setdefault(tuple(folder), []).append((number, info.filename))
    if not by_root:
        return ()
    root = min(by_root, key=lambda parts: (len(parts), parts))
    chats = by_root[root]
    return tuple(tuple(name for _, name in sorted(chats[folder])) for folder in sorted(chats))


def _size(count: int) -> str:
    return f"{count / 1024**3:.1f} GiB" if count >= 1024**3 else f"{count / 1024**2:.0f} MiB"


class _GuardedStream(io.RawIOBase):
    """A zip member's bytes, stopped as soon as more arrive than the archive declared."""

    def __init__(self, raw: IO[bytes], declared: int, file_name: str) -> None:
        super().__init__()
        self._raw = raw
        self._declared = declared
        self._file_name = file_name
        self.bytes_read = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        view = memoryview(buffer).cast("B")
        try:
            data = self._raw.read(len(view))
        except (zipfile.BadZipFile, zlib.error, EOFError):
            raise errors.DamagedArchiveError(self._file_name) from None
        self.bytes_read += len(data)
        if self.bytes_read > self._declared:
            raise errors.ArchiveTooLargeError(
                self._file_name, "holds more data than its own table of contents declares"
            )
        view[: len(data)] = data
        return len(data)
