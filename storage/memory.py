"""The owner's words, retrieved: BM25 search over the FTS5 index of the owner's messages.

The index (``owner_words_index``, migration m010) holds every message the owner typed
(``kind = 'text'``, not forwarded, not via a bot: the view ``owner_words``). Whoever inserts
messages indexes them in the same transaction with ``index_new_messages`` (the importer after
each batch, ``storage.messages.save_messages`` for live capture); triggers on ``messages``
follow edits and deletions. It refers to messages by their
rowid; VACUUM may renumber the rowids of ``messages`` (it has no INTEGER PRIMARY KEY), so a
database that is ever vacuumed must run ``INSERT INTO owner_words_index (owner_words_index)
VALUES ('rebuild')`` afterwards. Nothing in tgclone vacuums.

A search takes *stems* (``training.words``: the first characters of content words) and
matches each as a prefix (``"встре"*`` finds встреча, встретимся). User text never reaches
the MATCH expression as syntax: a stem is letters and digits only, and is quoted as an FTS5
string, so quotes, ``AND``/``OR``/``NEAR``, ``*`` and parentheses in a message are plain words
or nothing; text without a usable stem gives no search at all (never "match everything").

Ranking every match costs a few microseconds each, so a search takes its rarest stems first
(by the index's own document counts, ``owner_words_terms``) and stops adding stems before
the matches could exceed ``MAX_MATCHES``: a stem too common to tell one message from another
(the owner's "сегодня") is left out, and one search stays within a few milliseconds on a
million stored messages (``benchmarks/memory_recall.py``).

A search runs on a read-only stdlib connection (``MemoryReader``) in a worker thread: the
dataset builder's reader sees one snapshot; the bot's (``Database.memory``, through
``recall``) sees the latest messages and leaves the bot's one connection free.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiosqlite

if TYPE_CHECKING:
    from storage.db import Database

INDEX_VERSION = 1
"""Changes when what the index holds or how a search reads it changes (clone.json records
it: an adapter learnt from the blocks of one version)."""
MAX_MATCHES = 500
"""Messages one search may rank at most (the sum of its stems' document counts): BM25 costs
some 5-20 microseconds a match."""
MMAP_BYTES = 256 << 20
"""The reader maps the file: ranked matches are read at random, a page copy each without."""
COUNT_TTL_SECONDS = 600.0
COUNT_CACHE_SIZE = 50_000
_STEM = re.compile(r"[^\W_]+")

SELECT_LAST_ROWID = """
    SELECT COALESCE(MAX(rowid), 0) FROM messages
"""

INDEX_NEW_MESSAGES = """
    INSERT INTO owner_words_index (rowid, text)
    SELECT message_rowid, text FROM owner_words WHERE message_rowid > ?
"""

SELECT_STEM_DOCS = """
    SELECT COALESCE(SUM(doc), 0) FROM owner_words_terms WHERE term >= ? AND term < ?
"""

SELECT_RECALL = """
    SELECT m.chat_id, m.message_id, m.date_utc, m.text
    FROM owner_words_index AS found
    JOIN messages AS m ON m.rowid = found.rowid
    WHERE owner_words_index MATCH ? AND m.date_utc < ?
    ORDER BY found.rank, m.rowid
    LIMIT ?
"""


@dataclass(frozen=True)
class Recalled:
    """One of the owner's messages a search found (its raw stored text)."""

    chat_id: int
    message_id: int
    date: datetime
    text: str


async def last_message_rowid(conn: aiosqlite.Connection) -> int:
    """The highest rowid of ``messages``: rows inserted after this call get higher ones."""
    async with conn.execute(SELECT_LAST_ROWID) as cursor:
        row = await cursor.fetchone()
    return int(row[0]) if row else 0


async def index_new_messages(conn: aiosqlite.Connection, after: int) -> int:
    """Index the owner's messages inserted since ``last_message_rowid`` gave ``after``
    (inside the inserting transaction); return the new highest rowid.

    One statement for a whole batch: FTS5 writes its pending terms once per statement.
    """
    await conn.execute(INDEX_NEW_MESSAGES, (after,))
    return await last_message_rowid(conn)


def usable_stems(stems: Sequence[str]) -> list[str]:
    """The stems that are one FTS5 token of letters and digits, lower-cased, in order."""
    found = []
    for stem in stems:
        stem = stem.casefold()
        if _STEM.fullmatch(stem) and stem not in found:
            found.append(stem)
    return found


def stem_range(stem: str) -> tuple[str, str]:
    """The index terms that start with ``stem``: ``stem <= term < upper``."""
    return stem, stem[:-1] + chr(ord(stem[-1]) + 1)


def match_expression(stems: Sequence[str]) -> str | None:
    """``"a"* OR "b"*`` for the stems (each quoted as an FTS5 string); None for none."""
    quoted = [f'"{stem}"*' for stem in usable_stems(stems)]
    return " OR ".join(quoted) if quoted else None


def pick_stems(doc_counts: Sequence[tuple[str, int]], max_matches: int) -> list[str]:
    """The rarest stems (that occur at all) whose document counts fit ``max_matches``."""
    picked: list[str] = []
    total = 0
    for stem, count in sorted(doc_counts, key=lambda item: (item[1], item[0])):
        if count == 0:
            continue
        if total + count > max_matches:
            break
        picked.append(stem)
        total += count
    return picked


def _recall_params(stems: list[str], before: datetime, limit: int) -> tuple[Any, ...] | None:
    expression = match_expression(stems)
    return None if expression is None else (expression, int(before.timestamp()), limit)


def _recalled(rows: Sequence[Sequence[Any]]) -> list[Recalled]:
    return [
        Recalled(int(r[0]), int(r[1]), datetime.fromtimestamp(int(r[2]), UTC), str(r[3]))
        for r in rows
    ]


def search(
    conn: sqlite3.Connection,
    stems: Sequence[str],
    *,
    before: datetime,
    limit: int,
    counts: StemCounts,
    max_matches: int = MAX_MATCHES,
) -> list[Recalled]:
    """The owner's messages older than ``before`` that best match ``stems``, best first."""
    usable = usable_stems(stems)
    if not usable or limit < 1:
        return []
    found = [(stem, counts.get(conn, stem)) for stem in usable]
    params = _recall_params(pick_stems(found, max_matches), before, limit)
    if params is None:
        return []
    return _recalled(conn.execute(SELECT_RECALL, params).fetchall())


class StemCounts:
    """Document counts of stems, remembered: FTS5 counts a term's documents by reading its
    whole list, milliseconds for a common one, and the common stems are asked again and again.

    ``ttl``: seconds a count is trusted (None: for ever, for a reader of one snapshot). A
    count only decides whether a stem is too common to search, so one a few minutes old does.
    """

    def __init__(self, ttl: float | None, size: int = COUNT_CACHE_SIZE) -> None:
        self._ttl = ttl
        self._size = size
        self._counts: dict[str, tuple[int, float]] = {}

    def get(self, conn: sqlite3.Connection, stem: str) -> int:
        now = time.monotonic()
        cached = self._counts.get(stem)
        if cached is not None and (self._ttl is None or now - cached[1] < self._ttl):
            return cached[0]
        row = conn.execute(SELECT_STEM_DOCS, stem_range(stem)).fetchone()
        count = int(row[0]) if row else 0
        if len(self._counts) >= self._size:
            self._counts.clear()
        self._counts[stem] = (count, now)
        return count


class MemoryReader:
    """Searches on a read-only connection of its own, from worker threads, one at a time.

    ``snapshot=True`` (the dataset builder): every search sees the database as it was when
    the reader opened, and stem counts are kept for its life. Otherwise (serving, through
    ``Database.memory``) each search sees the latest committed messages, and a stem's count
    is trusted for ``COUNT_TTL_SECONDS``.
    """

    def __init__(
        self, db_path: Path, *, snapshot: bool = True, max_matches: int = MAX_MATCHES
    ) -> None:
        uri = f"{Path(db_path).resolve().as_uri()}?mode=ro"
        self._conn = sqlite3.connect(uri, uri=True, check_same_thread=False, isolation_level=None)
        self._conn.execute(f"PRAGMA mmap_size={MMAP_BYTES}")
        if snapshot:
            self._conn.execute("BEGIN")
        self._lock = threading.Lock()
        self._max_matches = max_matches
        self._counts = StemCounts(None if snapshot else COUNT_TTL_SECONDS)

    def recall(self, stems: Sequence[str], *, before: datetime, limit: int) -> list[Recalled]:
        """The owner's messages older than ``before`` that best match ``stems``, best first."""
        with self._lock:
            return search(
                self._conn,
                stems,
                before=before,
                limit=limit,
                counts=self._counts,
                max_matches=self._max_matches,
            )

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._conn.close()

    def __enter__(self) -> MemoryReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


async def recall(
    db: Database, stems: Sequence[str], *, before: datetime, limit: int
) -> list[Recalled]:
    """``MemoryReader.recall`` on the database's search reader, in a worker thread (the
    bot's one connection and its event loop stay free meanwhile)."""
    if not usable_stems(stems) or limit < 1:
        return []
    reader = db.memory()
    return await asyncio.to_thread(reader.recall, stems, before=before, limit=limit)
