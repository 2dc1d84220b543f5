"""Fixed values of the bot: command names, limits, texts that never change per deployment."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

from telegram import Update

Access = Literal["everyone", "owner"]


@dataclass(frozen=True)
class Command:
    """A bot command: its name, its line in menus and /help, and who may use it."""

    name: str
    description: str
    access: Access
    """``owner``: the owner and ADMIN_IDS only (the access gate refuses everyone else)."""
    arguments: str = ""
    """What follows the command, as /help shows it (e.g. ``on|off``)."""


START = Command("start", "What this bot is", "everyone")
HELP = Command("help", "What this bot is", "everyone")
RESET = Command("reset", "Start a new conversation", "everyone")
RETRAIN = Command("retrain", "Train a new adapter now", "owner")
CANCEL = Command("cancel", "Stop the running training", "owner")
STATS = Command("stats", "Data and training figures", "owner", "[data]")
COLLECT = Command("collect", "In a group: learn from its messages", "owner", "on|off")
PAUSE = Command("pause", "Pause live collection", "owner")
RESUME = Command("resume", "Resume live collection", "owner")
FORGET = Command("forget", "Delete collected messages", "owner", "all|CHAT_ID")
ADAPTERS = Command("adapters", "List trained adapters", "owner")
PROMOTE = Command("promote", "Serve adapter ID", "owner", "ID")
ROLLBACK = Command("rollback", "Serve the previous adapter", "owner")
TALK = Command("talk", "In a group: answer when mentioned", "owner", "on|off")
AUTOREPLY = Command("autoreply", "Answer as you in Business chats", "owner", "on|off")
FIX = Command("fix", "Reply to my message: the answer you'd give", "owner", "TEXT")
QUIZ = Command("quiz", "Blind test: which reply is yours?", "owner", "[ID]")

COMMANDS: tuple[Command, ...] = (
    START,
    HELP,
    RESET,
    RETRAIN,
    CANCEL,
    STATS,
    COLLECT,
    PAUSE,
    RESUME,
    FORGET,
    ADAPTERS,
    PROMOTE,
    ROLLBACK,
    TALK,
    AUTOREPLY,
    FIX,
    QUIZ,
)
"""Every command: the access gate, /help and the command menus all read this table."""

OWNER_COMMANDS = frozenset(c.name for c in COMMANDS if c.access == "owner")
"""Commands only the owner (and ADMIN_IDS) may run; the access gate enforces it."""


def commands_for(*, owner: bool) -> list[Command]:
    """The commands a person may use: everyone's, and the owner's too for the owner."""
    return [c for c in COMMANDS if owner or c.access == "everyone"]


MAX_MESSAGE_CHARS = 4096
"""Telegram's limit for one text message."""

RATE_LIMIT_MAX_RETRIES = 3
"""Times a Bot API call is retried after Telegram's RetryAfter (flood control) before failing."""

CLOUD_DOWNLOAD_LIMIT_BYTES = 20 * 1024 * 1024
"""Files a bot may download from the cloud Bot API; a local Bot API server lifts it."""

EXPORT_SUFFIXES = (".json", ".zip", ".html")

RETRAIN_JOB_ID = "retrain-now"
RETRAIN_CRON_JOB_ID = "retrain-cron"

FORGET_CALLBACK_PREFIX = "forget:"

QUIZ_CALLBACK_PREFIX = "quiz:"
"""A quiz answer button: ``quiz:<quiz id>:<A|B|unsure>``."""
QUIZ_EXPIRY = timedelta(days=2)
"""An unanswered quiz's buttons stop counting after this long."""
LABEL_CALLBACK_PREFIX = "label:"
"""A label button under a clone reply: ``label:good`` or ``label:bad``."""

GOOD_REACTIONS = frozenset({"👍", "❤", "❤️", "🔥"})
"""The owner's reactions that mark a clone reply good."""
BAD_REACTIONS = frozenset({"👎", "💩"})
"""The owner's reactions that mark a clone reply bad."""

ALLOWED_UPDATES: tuple[str, ...] = tuple(Update.ALL_TYPES)
"""What polling and the webhook ask Telegram for: every type, since Business messages, edits
and message_reaction are not all in Telegram's default set (message_reaction never is)."""
