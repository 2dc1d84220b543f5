"""The owner sends a Telegram Desktop export; it is imported and the counts come back."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from telegram import Update
from telegram.error import TelegramError

from bot.context import CloneContext
from bot.telegram.const import CLOUD_DOWNLOAD_LIMIT_BYTES, EXPORT_SUFFIXES
from bot.telegram.import_status import TelegramProgress, format_import_report
from bot.telegram.pending_uploads import INTERRUPTED, PendingUpload, start_upload
from storage.errors import ExportError
from storage.importer import import_export

logger = logging.getLogger(__name__)

STOPPED_NOTICE_SECONDS = 1.0
"""How long a stopping bot tries to tell the owner that their import was stopped."""

TOO_BIG = (
    "This file is {size_mb:.0f} MB, and bots can only download files up to 20 MB from "
    "Telegram's cloud. Two ways out: zip the export folder and send the .zip (JSON compresses "
    "about 10×), or run a self-hosted Bot API server in --local mode, point "
    "TELEGRAM_API_BASE_URL / TELEGRAM_FILE_BASE_URL at it and set TELEGRAM_LOCAL_MODE=true."
)
NOT_AN_EXPORT = (
    "I only import Telegram Desktop exports: Settings → Advanced → Export Telegram data, "
    'choose "Machine-readable JSON", then send me result.json. An HTML export works too: '
    "send a chat's messages.html, or the exported folder as a .zip."
)


async def import_upload(update: Update, context: CloneContext) -> None:
    """Download the sent export, import it in one transaction, and reply with the counts."""
    message = update.effective_message
    user = update.effective_user
    if message is None or message.document is None or user is None:
        return
    document = message.document
    services = context.services
    name = document.file_name or "export.json"
    if not name.lower().endswith(EXPORT_SUFFIXES):
        await message.reply_text(NOT_AN_EXPORT)
        return
    size = document.file_size or 0
    if not services.settings.telegram_local_mode and size > CLOUD_DOWNLOAD_LIMIT_BYTES:
        await message.reply_text(TOO_BIG.format(size_mb=size / 1024 / 1024))
        return
    status = await message.reply_text("Importing your export…")
    progress = TelegramProgress(status)
    upload = start_upload(
        services.settings.uploads_dir,
        update.update_id,
        status.chat_id,
        status.message_id,
        name,
        Path(name).suffix.lower(),
    )
    try:
        with services.imports.track():
            telegram_file = await context.bot.get_file(document.file_id)
            await telegram_file.download_to_drive(upload.export_path)
            upload.downloaded()
            report = await import_export(
                services.db,
                upload.export_path,
                owner_id=services.settings.owner_id,  # an admin's upload is the owner's data
                # HTML exports sign messages with names only: the uploader's is the owner's.
                owner_name=user.full_name,
                file_name=name,
                local_tz=services.settings.zone,
                progress=progress,
            )
    except ExportError as exc:
        upload.remove()
        logger.info("export %s refused: %s", document.file_unique_id, type(exc).__name__)
        await progress.finish(f"Nothing was imported. {exc}")
        return
    except asyncio.CancelledError:
        await _stopped(upload, progress)
        raise
    except BaseException:
        upload.remove()
        raise
    upload.remove()
    await progress.finish(format_import_report(report))


async def _stopped(upload: PendingUpload, progress: TelegramProgress) -> None:
    """The bot is stopping: the import rolled back. Tell the owner now if Telegram answers in
    time; else ``pending.json`` stays and the next start tells them."""
    upload.discard_export()
    try:
        async with asyncio.timeout(STOPPED_NOTICE_SECONDS):
            await progress.finish(INTERRUPTED.format(file_name=upload.file_name))
    except (TelegramError, TimeoutError):
        return
    upload.remove()
