"""Big exports parsed in a child process: same results, same errors, no process left behind."""

from __future__ import annotations

import asyncio
import json
import marshal
import multiprocessing
from collections import Counter
from pathlib import Path

import pytest

from storage import errors, import_pipeline
from storage.db import Database
from storage.export_format import SKIP_REASONS, skip_reason
from storage.export_parser import ExportParser
from storage.import_pipeline import ParserProcessError, rebuild_export_error
from storage.importer import IMPORT_BATCH_SIZE, import_export
from storage.messages import load_corpus
from storage.models import ImportProgress
from tests.storage.exports import EXPORTS_DIR, big_export, db_file_digest

ERA_2023 = EXPORTS_DIR / "format-eras" / "2023-01.json"
BATCHES = 12  # more than the pipe and the prefetch queue hold: the child is mid-file


@pytest.fixture
def in_child(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every JSON export, however small, is parsed in a child process."""
    monkeypatch.setattr(import_pipeline, "PIPELINE_MIN_BYTES", 0)


def write_big(tmp_path: Path, *, damaged: bool = False) -> Path:
    data = json.dumps(big_export(IMPORT_BATCH_SIZE * BATCHES + 7), indent=1).encode()
    if damaged:  # broken late: several batches are written before the child finds it
        cut = int(len(data) * 0.9)
        data = data[:cut] + b"\x00#!garbage!#" + data[cut:]
    path = tmp_path / "result.json"
    path.write_bytes(data)
    return path


async def import_both_ways(
    tmp_path: Path, path: Path, monkeypatch: pytest.MonkeyPatch
) -> list[tuple[object, ...]]:
    results: list[tuple[object, ...]] = []
    for threshold in (10**12, 0):  # in this process, then in a child
        monkeypatch.setattr(import_pipeline, "PIPELINE_MIN_BYTES", threshold)
        db = await Database.open(tmp_path / f"db-{threshold}" / "tgclone.db")
        try:
            seen: list[ImportProgress] = []
            report = await import_export(db, path, progress=seen.append)
            corpus = await load_corpus(db)
        finally:
            await db.close()
        results.append((report.messages, report.owner_messages, report.skipped, seen, corpus))
    return results


async def test_child_and_in_process_import_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inline, child = await import_both_ways(tmp_path, ERA_2023, monkeypatch)
    assert child == inline
    path = write_big(tmp_path)
    inline, child = await import_both_ways(tmp_path / "big", path, monkeypatch)
    assert child[:3] == inline[:3]
    assert child[4] == inline[4]
    assert child[3][-1] == inline[3][-1]  # progress ends at the whole file and every message
    assert multiprocessing.active_children() == []


@pytest.mark.usefixtures("in_child")
async def test_error_found_late_in_the_child_is_the_same_error(
    db: Database, tmp_path: Path
) -> None:
    await import_export(db, ERA_2023)
    path = write_big(tmp_path, damaged=True)
    before = await db_file_digest(db)
    with pytest.raises(errors.DamagedExportError) as caught:
        await import_export(db, path)
    assert str(caught.value) == str(errors.DamagedExportError("result.json"))
    assert await db_file_digest(db) == before
    assert multiprocessing.active_children() == []


async def test_owner_mismatch_in_the_child_keeps_its_class_and_message(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(errors.OwnerMismatchError) as inline:
        await import_export(db, ERA_2023, owner_id=99)
    monkeypatch.setattr(import_pipeline, "PIPELINE_MIN_BYTES", 0)
    with pytest.raises(errors.OwnerMismatchError) as child:
        await import_export(db, ERA_2023, owner_id=99)
    assert str(child.value) == str(inline.value)


@pytest.mark.usefixtures("in_child")
async def test_child_killed_mid_import_changes_nothing(db: Database, tmp_path: Path) -> None:
    await import_export(db, ERA_2023)
    path = write_big(tmp_path)
    before = await db_file_digest(db)

    def kill_child(progress: ImportProgress) -> None:
        for process in multiprocessing.active_children():
            process.kill()

    with pytest.raises(ParserProcessError, match="stopped unexpectedly"):
        await import_export(db, path, progress=kill_child)
    assert await db_file_digest(db) == before
    assert multiprocessing.active_children() == []
    assert (await import_export(db, ERA_2023)).new_messages == 0  # the connection is fine


@pytest.mark.usefixtures("in_child")
async def test_cancelled_import_changes_nothing_and_ends_the_child(
    db: Database, tmp_path: Path
) -> None:
    await import_export(db, ERA_2023)
    path = write_big(tmp_path)
    before = await db_file_digest(db)
    first_batch = asyncio.Event()
    task = asyncio.create_task(import_export(db, path, progress=lambda _: first_batch.set()))
    await first_batch.wait()
    assert multiprocessing.active_children() != []
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await db_file_digest(db) == before
    assert multiprocessing.active_children() == []


def every_export_error() -> list[errors.ExportError]:
    return [
        errors.EmptyExportError("f.json"),
        errors.NotJsonError("f.json"),
        errors.TruncatedExportError("f.json"),
        errors.OwnerUnknownError("f.json", single_chat=False),
        errors.OwnerMismatchError("f.json", 1, 2),
        errors.NoOwnerMessagesError("f.json", 1, 3),
        errors.ArchiveTooLargeError("f.zip", "too many files"),
        errors.ExportError("plain"),
    ]


@pytest.mark.parametrize("error", every_export_error(), ids=lambda e: type(e).__name__)
def test_export_errors_are_rebuilt_as_themselves(error: errors.ExportError) -> None:
    sent = marshal.loads(marshal.dumps((type(error).__name__, error.message)))
    rebuilt = rebuild_export_error(*sent)
    assert type(rebuilt) is type(error)
    assert str(rebuilt) == str(error)
    assert rebuilt.message == error.message


def test_batches_count_the_owner_and_every_skip_reason(tmp_path: Path) -> None:
    data = json.loads(ERA_2023.read_text("utf-8"))
    texts = ["", " ", "\u00a0\u2003", "ok", " ok "]
    extra: list[dict[str, object]] = [
        {"id": 900 + n, "type": "message", "date_unixtime": "1700000000", "from_id": "user5",
         "text": text, **fields}
        for n, (text, fields) in enumerate(
            (text, fields)
            for text in texts
            for fields in ({}, {"forwarded_from": None}, {"via_bot": "@b"}, {"photo": "p.jpg"},
                           {"media_type": "sticker", "sticker_emoji": "🙂"})
        )
    ]  # fmt: skip
    data["chats"]["list"][0]["messages"] += extra
    path = tmp_path / "result.json"
    path.write_text(json.dumps(data, ensure_ascii=False), "utf-8")
    parser = ExportParser(path)
    batches = list(import_pipeline.read_batches(parser))
    rows = [row for batch in batches for row in batch.rows]
    expected = Counter(skip_reason(row[7], row[6], row[9], row[10]) for row in rows)
    del expected[None]
    counted: Counter[str] = Counter()
    for batch in batches:
        counted.update(batch.skipped)
    assert counted == expected
    assert set(expected) == set(SKIP_REASONS)  # every reason occurs
    assert sum(batch.owner_messages for batch in batches) == sum(row[4] for row in rows)
    assert len(rows) == len(list(ExportParser(path).items())) - sum(len(b.chats) for b in batches)
