"""Where the bot's and the command line's logs go, and what never reaches them.

Records go to stderr. Message text never does: our code logs ids and counts only, and the
libraries that log what they send, receive or store are kept above DEBUG (python-telegram-bot's
DEBUG lines hold every update and request, aiosqlite's every statement with its values).
Secrets never do either: every record, traceback included, is written with the bot token (and
the other secrets the settings hold) replaced by a placeholder, whichever library put it there.
"""

from __future__ import annotations

import logging

REDACTED = "<secret>"
QUIET_LIBRARIES = {
    "httpx": logging.WARNING,  # a line per request, with the URL and so the bot token
    "apscheduler": logging.WARNING,
    "telegram": logging.INFO,  # DEBUG: every update and request, with message text
    "aiosqlite": logging.INFO,  # DEBUG: every statement with its parameters
    "aiohttp": logging.INFO,
}


def configure_logging(level: int) -> None:
    """Logs to stderr at ``level``; the libraries in QUIET_LIBRARIES never below theirs."""
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    quiet_libraries()


def quiet_libraries() -> None:
    """Turn the libraries that log message text or secrets down (QUIET_LIBRARIES)."""
    for name, level in QUIET_LIBRARIES.items():
        logging.getLogger(name).setLevel(level)


def redact(text: str, secrets: tuple[str, ...]) -> str:
    """``text`` with every secret replaced by REDACTED."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    return text


class RedactingFormatter(logging.Formatter):
    """Formats as the formatter it wraps, then takes the secrets out (tracebacks too)."""

    def __init__(self, inner: logging.Formatter, secrets: tuple[str, ...]) -> None:
        super().__init__()
        self._inner = inner
        self._secrets = secrets

    def format(self, record: logging.LogRecord) -> str:
        return redact(self._inner.format(record), self._secrets)


def redact_secrets(*secrets: str, handlers: list[logging.Handler] | None = None) -> None:
    """Every handler of the root logger (or ``handlers``) writes records without ``secrets``."""
    kept = tuple(s for s in secrets if s)
    if not kept:
        return
    for handler in logging.getLogger().handlers if handlers is None else handlers:
        inner = handler.formatter or logging.Formatter()
        if isinstance(inner, RedactingFormatter):
            inner = inner._inner
        handler.setFormatter(RedactingFormatter(inner, kept))
