"""The words an import report is shown in, on the command line and in Telegram."""

from __future__ import annotations

from storage.models import ImportReport

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
