"""Fixtures for bot tests: settings pointed at the fake Bot API, and the real app running."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from telegram.ext import Application

from bot.app import EngineFactory, build_application
from bot.context import Services
from bot.engine.factory import build_engine
from bot.settings import Settings
from bot.telegram.const import ALLOWED_UPDATES
from tests.export_factory import OWNER_ID
from tests.fake_telegram.server import FakeTelegramServer

ALLOWED_ID = 33333333
STRANGER_ID = 44444444


def bot_settings(server: FakeTelegramServer, data_dir: Path, **overrides: Any) -> Settings:
    """Settings for the real app against `server`, with a tiny, fast training recipe."""
    values: dict[str, Any] = {
        "telegram_bot_token": server.token,
        "owner_id": OWNER_ID,
        "allowed_user_ids": frozenset({ALLOWED_ID}),
        "data_dir": data_dir,
        "telegram_api_base_url": f"{server.url}/bot",
        "telegram_file_base_url": f"{server.url}/file/bot",
        "train_max_steps": 12,
        "train_eval_steps": 4,
        "train_batch_size": 2,
        "train_grad_accum": 1,
        "train_learning_rate": 5e-3,
        "train_max_length": 256,
        "generation_do_sample": False,
        "generation_max_new_tokens": 12,
        "engine_device": "cpu",
        "reply_quiet_seconds": 0.05,
        "reply_split_lines": False,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@asynccontextmanager
async def running_clone(
    settings: Settings, engine_factory: EngineFactory = build_engine
) -> AsyncIterator[Application]:  # type: ignore[type-arg]
    """The real tgclone application, polling the fake server until the block ends.

    Same order as `Application.run_polling`, which is what calls post_init/post_shutdown.
    """
    app = build_application(settings, engine_factory)
    await app.initialize()
    assert app.post_init is not None and app.post_shutdown is not None
    await app.post_init(app)
    assert app.updater is not None
    # What `tgclone run` asks for: the fake, like Telegram, sends reactions only when asked.
    await app.updater.start_polling(poll_interval=0, timeout=1, allowed_updates=ALLOWED_UPDATES)
    await app.start()
    try:
        yield app
    finally:
        await app.updater.stop()
        await app.stop()
        await app.shutdown()
        await app.post_shutdown(app)


@pytest.fixture(autouse=True)
def _no_local_env_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run from an empty folder, so a developer's own .env never leaks into a test."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def settings(fake_telegram: FakeTelegramServer, tmp_path: Path) -> Settings:
    return bot_settings(fake_telegram, tmp_path / "data")


async def settle(app: Application, server: FakeTelegramServer) -> None:  # type: ignore[type-arg]
    """Wait until every pushed update was fetched and fully handled (the bot is idle).

    An update leaves the queue a moment before its task takes a processing slot, so idle must
    hold over several looks in a row.
    """
    await server.wait_until(lambda: not server.pending_updates())

    def idle() -> bool:
        return app.update_queue.empty() and app.update_processor.current_concurrent_updates == 0

    quiet = 0
    for _ in range(1000):
        quiet = quiet + 1 if idle() else 0
        if quiet >= 5:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the bot did not become idle")


def services_of(app: Application) -> Services:  # type: ignore[type-arg]
    """The running app's services (its database, engine, ...)."""
    services = app.bot_data["services"]
    assert isinstance(services, Services)
    return services
