"""The owner sends a Telegram Desktop export; it is imported and the counts come back."""

from __future__ import annotations

import logging
from pathlib import Path

from telegram import Update

from bot.context import CloneContext
from bot.telegram.const import CLOUD_DOWNLOAD_LIMIT_BYTES, EXPORT_SUFFIXES
from bot.telegram.import_status import TelegramProgress, format_import_report
from storage.errors import ExportError
from storage.importer import import_export

logger = logging.getLogger(__name__)

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
    uploads = services.settings.uploads_dir
    uploads.mkdir(parents=True, exist_ok=True)
    path = uploads / f"{document.file_unique_id}{Path(name).suffix.lower()}"
    status = await message.reply_text("Importing your export…")
    progress = TelegramProgress(status)
    try:
        telegram_file = await context.bot.get_file(document.file_id)
        await telegram_file.download_to_drive(path)
        report = await import_export(
            services.db,
            path,
            owner_id=services.settings.owner_id,  # an admin's upload is the owner's data
            # HTML exports sign messages with names only: the uploader's is the owner's.
            owner_name=user.full_name,
            file_name=name,
            local_tz=services.settings.zone,
            progress=progress,
        )
    except ExportError as exc:
        logger.info("export %s refused: %s", document.file_unique_id, type(exc).__name__)
        await progress.finish(f"Nothing was imported. {exc}")
        return
    finally:
        path.unlink(missing_ok=True)
    await progress.finish(format_import_report(report))
