"""Fixed values of the bot: command names, limits, texts that never change per deployment."""

from __future__ import annotations

CMD_START = "start"
CMD_HELP = "help"
CMD_RETRAIN = "retrain"
CMD_STATS = "stats"
CMD_COLLECT = "collect"
CMD_PAUSE = "pause"
CMD_RESUME = "resume"
CMD_FORGET = "forget"
CMD_ADAPTERS = "adapters"
CMD_PROMOTE = "promote"
CMD_ROLLBACK = "rollback"
CMD_CANCEL = "cancel"
CMD_RESET = "reset"
CMD_TALK = "talk"
CMD_AUTOREPLY = "autoreply"
CMD_FIX = "fix"

OWNER_COMMANDS = frozenset(
    {
        CMD_RETRAIN,
        CMD_CANCEL,
        CMD_STATS,
        CMD_COLLECT,
        CMD_PAUSE,
        CMD_RESUME,
        CMD_FORGET,
        CMD_ADAPTERS,
        CMD_PROMOTE,
        CMD_ROLLBACK,
        CMD_TALK,
        CMD_AUTOREPLY,
        CMD_FIX,
    }
)
"""Commands only the owner (and ADMIN_IDS) may run; the access gate enforces it."""

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
