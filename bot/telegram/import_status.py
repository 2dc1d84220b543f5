"""An import as people watch it: progress in an edited Telegram message or a bar on the
terminal, and the report of what it did."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

from telegram import Message

from bot.telegram.status_message import EDIT_INTERVAL_SECONDS, StatusMessage
from storage.models import ImportProgress, ImportReport


def describe_progress(progress: ImportProgress) -> str:
    """'Importing… 42% (120,000 messages in 12 chats)'."""
    share = progress.bytes_read / progress.bytes_total if progress.bytes_total else 0.0
    return (
        f"Importing… {min(share, 1.0):.0%} "
        f"({progress.messages:,} messages in {progress.chats:,} chats)"
    )


class TelegramProgress:
    """Import progress in the owner's status message (see StatusMessage)."""

    def __init__(
        self,
        message: Message,
        interval: float = EDIT_INTERVAL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._status = StatusMessage(message=message, interval=interval, clock=clock)

    def __call__(self, progress: ImportProgress) -> None:
        self._status.show(describe_progress(progress))

    async def finish(self, text: str) -> None:
        """Wait for pending progress edits, then show the final text."""
        await self._status.finish(text)


class TerminalProgress:
    """A one-line progress bar on a terminal; a line per 10% when output is a file."""

    def __init__(self, stream: TextIO = sys.stderr, width: int = 30) -> None:
        self._stream = stream
        self._width = width
        self._tty = stream.isatty()
        self._last_decile = -1

    def __call__(self, progress: ImportProgress) -> None:
        share = progress.bytes_read / progress.bytes_total if progress.bytes_total else 0.0
        share = min(share, 1.0)
        if self._tty:
            filled = int(share * self._width)
            bar = "#" * filled + "." * (self._width - filled)
            self._stream.write(f"\r[{bar}] {share:4.0%} {progress.messages:,} messages")
            self._stream.flush()
            return
        decile = int(share * 10)
        if decile > self._last_decile:
            self._last_decile = decile
            print(describe_progress(progress), file=self._stream, flush=True)

    def close(self) -> None:
        """End the bar's line."""
        if self._tty:
            self._stream.write("\n")
            self._stream.flush()


SKIP_REASONS = {
    "service": "service messages",
    "media_only": "media without text",
    "forwarded": "forwarded",
    "via_bot": "sent via bots",
    "empty": "empty",
}


def format_import_report(report: ImportReport) -> str:
    """A short multi-line summary of what an import did."""
    lines = [
        "Import finished.",
        f"Chats: {report.chats}",
        f"Messages: {report.messages} ({report.owner_messages} yours)",
        f"New: {report.new_messages}, already present: {report.already_present}",
    ]
    skipped = {k: v for k, v in report.skipped.items() if v}
    if skipped:
        parts = [f"{SKIP_REASONS.get(k, k)} {v}" for k, v in sorted(skipped.items())]
        lines.append("Kept out of training text: " + ", ".join(parts))
    return "\n".join(lines)
