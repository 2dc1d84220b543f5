"""SIGTERM, SIGINT and SIGABRT stop the bot within seconds, even in the middle of an import.

python-telegram-bot's own stop signals end the event loop, and ``Application.stop`` then waits
for every running handler, an import of a million messages too. Here a stop signal first
cancels the running imports (each rolls back: nothing of it is stored, and its owner is told),
then stops the application the usual way (post_stop, shutdown, post_shutdown).
"""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import Any

from telegram.ext import Application

from bot.context import SERVICES_KEY, Services

logger = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGABRT)

AnyApplication = Application[Any, Any, Any, Any, Any, Any]


def stop_on_signals(application: AnyApplication) -> None:
    """Install the stop signals as the application starts (before its post_init: a signal
    during post_init then stops the bot right after it); run the application with
    ``stop_signals=None``, so that PTB installs none of its own."""
    post_init = application.post_init

    async def signals_then_post_init(app: AnyApplication) -> None:
        loop = asyncio.get_running_loop()
        for sig in STOP_SIGNALS:
            loop.add_signal_handler(sig, _stop, app, sig)
        if post_init is not None:
            await post_init(app)

    application.post_init = signals_then_post_init


RETRY_SECONDS = 0.1


def _stop(application: AnyApplication, sig: signal.Signals) -> None:
    services = application.bot_data.get(SERVICES_KEY)
    stopped = services.imports.cancel_all() if isinstance(services, Services) else 0
    logger.info("%s: stopping (imports cancelled: %d)", sig.name, stopped)
    application.stop_running()  # during post_init: PTB stops right after it
    if not application.running:
        _stop_once_running(application)


def _stop_once_running(application: AnyApplication) -> None:
    """A signal after post_init but before the application runs would be lost: PTB only
    looks for it at the end of post_init."""
    if application.running:
        application.stop_running()
        return
    asyncio.get_running_loop().call_later(RETRY_SECONDS, _stop_once_running, application)
