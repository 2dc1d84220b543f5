"""/start in the user's language, and /reset of the clone's context."""

from __future__ import annotations

from datetime import UTC, datetime

from bot.context import Services
from bot.handlers.start import HELP_TEXT, OWNER_HELP, RESET_TEXT
from bot.settings import Settings
from storage.clone_turns import add_clone_turn, recent_clone_turns
from storage.models import CloneTurn
from tests.bot.conftest import ALLOWED_ID, running_clone
from tests.export_factory import OWNER_ID
from tests.fake_telegram import builders
from tests.fake_telegram.server import FakeTelegramServer


async def test_start_speaks_the_clients_language(
    settings: Settings, fake_telegram: FakeTelegramServer
) -> None:
    russian = builders.user(ALLOWED_ID, "Маша", language_code="ru")
    owner = builders.user(OWNER_ID, "Owner", language_code="en-GB")
    async with running_clone(settings):
        fake_telegram.send_command(russian, "/start")
        ru = await fake_telegram.wait_for_message(ALLOWED_ID)
        fake_telegram.send_command(owner, "/help")
        en = await fake_telegram.wait_for_message(OWNER_ID)
    assert ru["text"] == HELP_TEXT["ru"]
    assert en["text"] == HELP_TEXT["en"] + OWNER_HELP


async def test_reset_forgets_only_this_chat(
    settings: Settings, fake_telegram: FakeTelegramServer
) -> None:
    friend = builders.user(ALLOWED_ID, "Friend")
    now = datetime.now(UTC)
    async with running_clone(settings) as app:
        services = app.bot_data["services"]
        assert isinstance(services, Services)
        for chat_id in (ALLOWED_ID, OWNER_ID):
            await add_clone_turn(services.db, CloneTurn(chat_id, "user", "hello", now))
            await add_clone_turn(services.db, CloneTurn(chat_id, "assistant", "hi", now))
        fake_telegram.send_command(friend, "/reset")
        reply = await fake_telegram.wait_for_message(ALLOWED_ID)
        assert reply["text"] == RESET_TEXT["en"]
        assert await recent_clone_turns(services.db, ALLOWED_ID, limit=10) == []
        assert len(await recent_clone_turns(services.db, OWNER_ID, limit=10)) == 2
