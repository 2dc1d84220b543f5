"""Pytest fixtures for the fake Telegram server.

Register them for the whole suite from ``tests/conftest.py`` with::

    pytest_plugins = ["tests.fake_telegram.fixtures"]

(``pytest_plugins`` is only allowed in the root conftest), or import the fixtures by name into a
conftest or test module: ``from tests.fake_telegram.fixtures import fake_telegram, ptb_app``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any, TypeAlias

import pytest
from telegram.ext import Application, ApplicationBuilder

from tests.fake_telegram.server import FakeTelegramServer

AnyApplication: TypeAlias = Application[Any, Any, Any, Any, Any, Any]
AnyApplicationBuilder: TypeAlias = ApplicationBuilder[Any, Any, Any, Any, Any, Any]


@pytest.fixture
def fake_telegram() -> Iterator[FakeTelegramServer]:
    """A running fake Bot API server, stopped (threads joined) after the test."""
    with FakeTelegramServer() as server:
        yield server


def application_builder(server: FakeTelegramServer) -> AnyApplicationBuilder:
    """An ``ApplicationBuilder`` whose bot talks to ``server`` instead of api.telegram.org."""
    return (
        ApplicationBuilder()
        .token(server.token)
        .base_url(f"{server.url}/bot")
        .base_file_url(f"{server.url}/file/bot")
    )


async def start_polling(app: AnyApplication) -> None:
    """Initialize and start ``app`` and poll the fake with a 1 s long-poll timeout."""
    await app.initialize()
    await app.start()
    assert app.updater is not None, "build the Application with an Updater to poll"
    await app.updater.start_polling(poll_interval=0, timeout=1)


async def stop_polling(app: AnyApplication) -> None:
    """Stop polling (confirming fetched updates), then the application, then shut it down."""
    if app.updater is not None and app.updater.running:
        await app.updater.stop()
    if app.running:
        await app.stop()
    await app.shutdown()


@pytest.fixture
async def running_app(
    fake_telegram: FakeTelegramServer,
) -> AsyncIterator[AnyApplication]:
    """A bare PTB ``Application`` polling ``fake_telegram``; add handlers before pushing updates.

    Handlers added after start are picked up, since PTB looks them up per update.
    """
    app = application_builder(fake_telegram).build()
    await start_polling(app)
    try:
        yield app
    finally:
        await stop_polling(app)
