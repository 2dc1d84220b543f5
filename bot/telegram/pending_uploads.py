"""Uploaded exports on disk while they are imported, and imports a stopped bot left behind.

Each upload gets a private folder of its own, ``DATA_DIR/uploads/<update id>-<random>/``
(0700, whoever else uploads the same file at the same moment), holding the downloaded export
and ``pending.json``: the chat, the status message and the file's name, never its content.
The folder is removed when the import ends, however it ends. One still there when the bot
starts belongs to an import that a killed bot never finished (an import is one transaction,
so nothing of it was stored): the status message stops saying "Importing… 56%", the owner is
told to send the file again, and the folder goes.

``RunningImports`` knows the tasks importing right now, so that a stop signal can end them
first (python-telegram-bot's ``Application.stop`` waits for every running handler).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from telegram import Bot
from telegram.error import TelegramError

from storage.private_files import PRIVATE_FILE_MODE, private_dir, write_private_text

logger = logging.getLogger(__name__)

PENDING_FILE = "pending.json"
EXPORT_STEM = "export"
INTERRUPTED = (
    "The bot stopped before this import finished, so nothing of {file_name} was imported (an "
    "import is all or nothing). Send the file again."
)


@dataclass(frozen=True)
class PendingUpload:
    """One upload's folder, and where its owner watches the import."""

    folder: Path
    chat_id: int
    status_message_id: int
    file_name: str
    suffix: str

    @property
    def export_path(self) -> Path:
        """Where the export is downloaded (named by us: the sender's name is only shown)."""
        return self.folder / f"{EXPORT_STEM}{self.suffix}"

    def downloaded(self) -> None:
        """Make the downloaded export owner-only (the download wrote it with default modes)."""
        if self.export_path.exists():
            self.export_path.chmod(PRIVATE_FILE_MODE)

    def discard_export(self) -> None:
        """Delete the export now; ``pending.json`` stays for the next start to report."""
        self.export_path.unlink(missing_ok=True)

    def remove(self) -> None:
        """The import ended: the folder goes, export and note alike."""
        shutil.rmtree(self.folder, ignore_errors=True)


def start_upload(
    uploads_dir: Path,
    update_id: int,
    chat_id: int,
    status_message_id: int,
    file_name: str,
    suffix: str,
) -> PendingUpload:
    """A new private folder for one upload, with its ``pending.json``."""
    folder = Path(tempfile.mkdtemp(prefix=f"{update_id}-", dir=private_dir(uploads_dir)))
    upload = PendingUpload(folder, chat_id, status_message_id, file_name, suffix)
    note = {"chat_id": chat_id, "status_message_id": status_message_id, "file_name": file_name}
    write_private_text(folder / PENDING_FILE, json.dumps(note, ensure_ascii=False))
    return upload


def _leftover(entry: Path) -> PendingUpload | None:
    """The upload a folder of the uploads directory was made for; None if it says nothing."""
    try:
        note = json.loads((entry / PENDING_FILE).read_text("utf-8"))
        return PendingUpload(
            entry,
            int(note["chat_id"]),
            int(note["status_message_id"]),
            str(note["file_name"]),
            "",
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


async def report_interrupted_imports(bot: Bot, uploads_dir: Path) -> int:
    """At start: correct the status message of every import a stopped bot left, tell its
    owner, and delete what is left on disk (also files of older versions); return how many."""
    if not uploads_dir.is_dir():
        return 0
    entries = sorted(uploads_dir.iterdir())
    for entry in entries:
        upload = _leftover(entry) if entry.is_dir() else None
        if upload is not None:
            await _tell(bot, upload)
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
    if entries:
        logger.info("removed %d uploads left by an earlier bot process", len(entries))
    return len(entries)


async def _tell(bot: Bot, upload: PendingUpload) -> None:
    text = INTERRUPTED.format(file_name=upload.file_name)
    try:
        await bot.edit_message_text(text, upload.chat_id, upload.status_message_id)
    except TelegramError:
        logger.info("the status message of an interrupted import could not be edited")
    try:
        await bot.send_message(upload.chat_id, text, reply_to_message_id=upload.status_message_id)
    except TelegramError:
        logger.warning(
            "could not tell chat %s of its interrupted import", upload.chat_id, exc_info=True
        )


class RunningImports:
    """The tasks importing an upload right now."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[object]] = set()

    @contextlib.contextmanager
    def track(self) -> Iterator[None]:
        """The current task imports while the block runs."""
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            yield
        finally:
            self._tasks.discard(task)

    def cancel_all(self) -> int:
        """Cancel every running import (the bot is stopping); return how many there were."""
        for task in self._tasks:
            task.cancel()
        return len(self._tasks)
