"""Uploads that survive races and kills: the same file twice at once, a bot killed or stopped
in the middle of an import. Nothing half-imported, nothing left on disk, the owner told."""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from benchmarks.synthetic_export import write_export
from bot.handlers.errors import USER_ERROR_TEXT
from bot.settings import Settings
from bot.telegram.pending_uploads import INTERRUPTED
from tests.bot.conftest import running_clone, settle
from tests.export_factory import OWNER_ID, full_export
from tests.fake_telegram import builders
from tests.fake_telegram.server import FakeTelegramServer

ROOT = Path(__file__).resolve().parents[2]
OWNER = builders.user(OWNER_ID, "Owner")
BIG_EXPORT_MESSAGES = 150_000
"""Enough for an import that takes seconds on a slow machine (about 70 MB of JSON)."""


def _text(message: dict[str, object]) -> str:
    return str(message.get("text", ""))


def _is_final(message: dict[str, object]) -> bool:
    return _text(message).startswith(("Import finished", "Nothing was imported"))


async def test_the_same_export_sent_twice_at_once_is_imported_once_and_both_answered(
    settings: Settings, fake_telegram: FakeTelegramServer
) -> None:
    export = json.dumps(full_export(conversations=400), ensure_ascii=False).encode()
    file_id = fake_telegram.register_file(export, "result.json")
    chat = builders.private_chat(OWNER)
    update = builders.document_update(
        chat, OWNER, file_id, "result.json", len(export), file_unique_id="same-file"
    )
    async with running_clone(settings) as app:
        fake_telegram.push_update(update)
        fake_telegram.push_update(update)
        await fake_telegram.wait_until(
            lambda: len([m for m in fake_telegram.sent_messages(OWNER_ID) if _is_final(m)]) == 2,
            timeout=120,
        )
        await settle(app, fake_telegram)
    finals = sorted(_text(m) for m in fake_telegram.sent_messages(OWNER_ID) if _is_final(m))
    total = finals[0].split("Messages: ")[1].split(" ")[0]
    assert all(text.startswith("Import finished") for text in finals), finals
    assert f"New: 0, already present: {total}" in finals[0]
    assert f"New: {total}, already present: 0" in finals[1]
    assert USER_ERROR_TEXT not in [_text(m) for m in fake_telegram.sent_messages()]
    assert not list(settings.uploads_dir.iterdir()), "both uploads were removed"


@pytest.fixture(scope="module")
def big_export(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """Written once per run (6 s of JSON): the xdist workers share their temporary root."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent
    path = root / f"big-export-{BIG_EXPORT_MESSAGES}.json"
    with (root / "big-export.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # the other worker waits until it is written
        if not path.exists():
            write_export(path.with_suffix(".partial"), BIG_EXPORT_MESSAGES)
            path.with_suffix(".partial").rename(path)
    return path.read_bytes()


def _fingerprint(database: Path) -> tuple[int, ...]:
    """Rows of every table an import writes (the database may not exist yet)."""
    if not database.exists():
        return (0, 0, 0)
    with sqlite3.connect(database) as conn:
        tables = ("messages", "chats", "imports")
        return tuple(
            conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] for table in tables
        )


@contextmanager
def _bot_process(
    server: FakeTelegramServer, tmp_path: Path, data: Path
) -> Iterator[subprocess.Popen[bytes]]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": str(ROOT),
        "HOME": str(tmp_path),
        "HF_HUB_OFFLINE": "1",
        "TELEGRAM_BOT_TOKEN": server.token,
        "OWNER_ID": str(OWNER_ID),
        "DATA_DIR": str(data),
        "TELEGRAM_API_BASE_URL": f"{server.url}/bot",
        "TELEGRAM_FILE_BASE_URL": f"{server.url}/file/bot",
        "TELEGRAM_LOCAL_MODE": "true",
    }
    with (tmp_path / "bot.log").open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "bot"], cwd=tmp_path, env=env, stdout=log, stderr=log
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()


async def _import_under_way(server: FakeTelegramServer, data: Path, export: bytes) -> None:
    """Upload ``export`` and return once its import transaction is writing rows."""
    await server.wait_until(lambda: server.calls_to("getUpdates"), timeout=60)
    server.send_document(OWNER, export, "result.json")
    wal = data / "tgclone.sqlite3-wal"

    def writing() -> bool:
        return wal.exists() and wal.stat().st_size > 4 << 20

    await server.wait_until(writing, timeout=120)
    assert not [m for m in server.sent_messages(OWNER_ID) if _is_final(m)], "still importing"


@pytest.mark.slow
async def test_a_killed_import_changes_nothing_and_the_next_start_says_so(
    tmp_path: Path, big_export: bytes
) -> None:
    data = tmp_path / "data"
    with FakeTelegramServer(local_dir=tmp_path / "bot-api") as server:
        with _bot_process(server, tmp_path, data) as bot:
            await _import_under_way(server, data, big_export)
            bot.send_signal(signal.SIGKILL)  # power cut, OOM killer
            bot.wait()
        assert _fingerprint(data / "tgclone.sqlite3") == (0, 0, 0)
        assert list((data / "uploads").iterdir()), "the killed bot left its upload"
        status = next(m for m in server.sent_messages(OWNER_ID) if "Importing" in _text(m))
        expected = INTERRUPTED.format(file_name="result.json")
        with _bot_process(server, tmp_path, data) as bot:
            # The status message edited, and a new message that notifies the owner.
            await server.wait_until(
                lambda: [_text(m) for m in server.sent_messages(OWNER_ID)].count(expected) == 2,
                timeout=60,
            )
            bot.send_signal(signal.SIGINT)
            assert bot.wait(timeout=30) == 0
        edited = [
            m for m in server.sent_messages(OWNER_ID) if m["message_id"] == status["message_id"]
        ]
    assert [_text(m) for m in edited] == [expected], "the status no longer says 'Importing…'"
    assert not list((data / "uploads").iterdir())
    assert _fingerprint(data / "tgclone.sqlite3") == (0, 0, 0)
    assert "Traceback" not in (tmp_path / "bot.log").read_text()


@pytest.mark.slow
async def test_sigterm_during_an_import_stops_the_bot_within_two_seconds_changing_nothing(
    tmp_path: Path, big_export: bytes
) -> None:
    data = tmp_path / "data"
    with FakeTelegramServer(local_dir=tmp_path / "bot-api") as server:
        with _bot_process(server, tmp_path, data) as bot:
            await _import_under_way(server, data, big_export)
            signalled = time.monotonic()
            bot.send_signal(signal.SIGTERM)
            while bot.poll() is None and time.monotonic() - signalled < 30:
                await asyncio.sleep(0.01)
            stopped_after = time.monotonic() - signalled
            assert bot.returncode == 0
        texts = [_text(m) for m in server.sent_messages(OWNER_ID)]
    log = (tmp_path / "bot.log").read_text()
    print(f"stopped {stopped_after:.2f} s after SIGTERM")
    assert stopped_after < 2.0, f"stopped {stopped_after:.2f} s after SIGTERM"
    assert _fingerprint(data / "tgclone.sqlite3") == (0, 0, 0)
    assert INTERRUPTED.format(file_name="result.json") in texts
    assert not list((data / "uploads").iterdir())
    assert "Traceback" not in log, log
