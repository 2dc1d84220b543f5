"""Import progress: a throttled, ordered Telegram status message; a terminal bar."""

from __future__ import annotations

import io

from telegram.ext import Application

from bot.telegram.import_status import TelegramProgress, TerminalProgress, describe_progress
from storage.models import ImportProgress
from tests.fake_telegram.server import FakeTelegramServer


def _at(share: float, messages: int) -> ImportProgress:
    return ImportProgress(
        bytes_read=int(share * 1000), bytes_total=1000, messages=messages, chats=3
    )


async def test_status_message_is_throttled_and_ends_with_the_report(
    running_app: Application,
    fake_telegram: FakeTelegramServer,  # type: ignore[type-arg]
) -> None:
    now = [0.0]
    status = await running_app.bot.send_message(7, "Importing your export…")
    progress = TelegramProgress(status, interval=3.0, clock=lambda: now[0])
    for second, share in [(1, 0.1), (3, 0.2), (4, 0.3), (7, 0.5), (8, 0.6)]:
        now[0] = second
        progress(_at(share, int(share * 100_000)))
    await progress.finish("Import finished.")
    edits = [p["text"] for p in fake_telegram.calls_to("editMessageText")]
    assert edits == [
        describe_progress(_at(0.2, 20_000)),
        describe_progress(_at(0.5, 50_000)),
        "Import finished.",
    ]
    assert fake_telegram.sent_messages(7)[-1]["text"] == "Import finished."


def test_describe_progress_reads_well() -> None:
    assert describe_progress(_at(0.42, 120_000)) == (
        "Importing… 42% (120,000 messages in 3 chats)"
    )


def test_terminal_progress_prints_a_line_per_tenth_when_not_a_terminal() -> None:
    stream = io.StringIO()
    bar = TerminalProgress(stream)
    for step in range(101):
        bar(_at(step / 100, step * 10))
    bar.close()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 11
    assert lines[0].startswith("Importing… 0%") and lines[-1].startswith("Importing… 100%")
