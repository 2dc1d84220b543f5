"""Only the owner administers; allowed users chat; strangers are refused and nothing is stored."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

from telegram.ext import Application

from bot.context import Services
from bot.handlers.access import REFUSE_OWNER_ONLY, REFUSE_STRANGER, DailyRefusals
from bot.settings import Settings
from bot.telegram.const import OWNER_COMMANDS
from storage.clone_turns import recent_clone_turns
from storage.messages import corpus_counts
from storage.runs import latest_run
from tests.bot.conftest import ALLOWED_ID, STRANGER_ID, bot_settings, running_clone, settle
from tests.bot.scripted_engine import ScriptedEngine
from tests.export_factory import OWNER_ID, full_export
from tests.fake_telegram import builders
from tests.fake_telegram.server import FakeTelegramServer

STRANGER = builders.user(STRANGER_ID, "Stranger")
FRIEND = builders.user(ALLOWED_ID, "Friend")
OWNER = builders.user(OWNER_ID, "Owner")
ADMIN_ID = 66666666
ADMIN = builders.user(ADMIN_ID, "Admin")


def _services(app: Application) -> Services:  # type: ignore[type-arg]
    services = app.bot_data["services"]
    assert isinstance(services, Services)
    return services


def _texts(server: FakeTelegramServer, chat_id: int) -> list[str]:
    return [m.get("text", "") for m in server.sent_messages(chat_id)]


async def test_stranger_is_refused_once_a_day_and_nothing_is_stored(
    settings: Settings, fake_telegram: FakeTelegramServer
) -> None:
    export = json.dumps(full_export()).encode()
    engine = ScriptedEngine()
    async with running_clone(settings, lambda _: engine) as app:
        fake_telegram.send_text(STRANGER, "hi there")
        await fake_telegram.wait_until(lambda: _texts(fake_telegram, STRANGER_ID))
        fake_telegram.send_command(STRANGER, "/retrain")
        fake_telegram.send_command(STRANGER, "/stats")
        fake_telegram.send_document(STRANGER, export, "result.json")
        fake_telegram.send_text(STRANGER, "hello again")
        await settle(app, fake_telegram)
        # The owner's reply shows the bot handled everything pushed before it.
        fake_telegram.send_command(OWNER, "/help")
        await fake_telegram.wait_until(lambda: _texts(fake_telegram, OWNER_ID))
        db = _services(app).db
        assert await recent_clone_turns(db, STRANGER_ID, limit=100) == []
        assert (await corpus_counts(db)).messages == 0
        assert await latest_run(db) is None
    assert _texts(fake_telegram, STRANGER_ID) == [REFUSE_STRANGER]
    assert not fake_telegram.calls_to("getFile")
    assert engine.histories == []


def test_daily_refusals_reset_each_utc_day() -> None:
    refusals = DailyRefusals()
    monday, tuesday = date(2026, 11, 23), date(2026, 11, 24)
    assert refusals.first_today(STRANGER_ID, monday)
    assert not refusals.first_today(STRANGER_ID, monday)
    assert refusals.first_today(ALLOWED_ID, monday)
    assert refusals.first_today(STRANGER_ID, tuesday)
    assert not refusals.first_today(STRANGER_ID, tuesday)


async def test_admin_may_do_what_the_owner_may(
    fake_telegram: FakeTelegramServer, tmp_path: Path
) -> None:
    settings = bot_settings(fake_telegram, tmp_path / "data", admin_ids=frozenset({ADMIN_ID}))
    async with running_clone(settings, lambda _: ScriptedEngine()):
        fake_telegram.send_command(ADMIN, "/stats")
        stats = await fake_telegram.wait_for_message(
            ADMIN_ID, lambda m: m.get("text", "").startswith("Chats:")
        )
        fake_telegram.send_text(ADMIN, "hello clone")
        reply = await fake_telegram.wait_for_message(
            ADMIN_ID, lambda m: m.get("text", "").startswith("re:")
        )
        admin_scope = {"type": "chat", "chat_id": ADMIN_ID}
        await fake_telegram.wait_until(lambda: fake_telegram.my_commands(admin_scope))
    assert "Messages: 0" in stats["text"]
    assert reply["text"] == "re: hello clone"
    assert REFUSE_OWNER_ONLY not in _texts(fake_telegram, ADMIN_ID)
    owner_scope = {"type": "chat", "chat_id": OWNER_ID}
    assert fake_telegram.my_commands(admin_scope) == fake_telegram.my_commands(owner_scope)


async def test_allow_all_lets_anyone_chat_but_not_administer(
    fake_telegram: FakeTelegramServer, tmp_path: Path
) -> None:
    settings = bot_settings(fake_telegram, tmp_path / "data", allow_all=True)
    async with running_clone(settings, lambda _: ScriptedEngine()):
        fake_telegram.send_text(STRANGER, "hello clone")
        reply = await fake_telegram.wait_for_message(
            STRANGER_ID, lambda m: m.get("text", "").startswith("re:")
        )
        fake_telegram.send_command(STRANGER, "/retrain")
        refusal = await fake_telegram.wait_for_message(
            STRANGER_ID, lambda m: m.get("text") == REFUSE_OWNER_ONLY
        )
    assert reply["text"] == "re: hello clone"
    assert refusal["text"] == REFUSE_OWNER_ONLY
    assert REFUSE_STRANGER not in _texts(fake_telegram, STRANGER_ID)


async def test_allowed_user_chats_but_cannot_administer(
    settings: Settings, fake_telegram: FakeTelegramServer
) -> None:
    async with running_clone(settings):
        for command in sorted(OWNER_COMMANDS):
            fake_telegram.send_command(FRIEND, f"/{command} 1")
        fake_telegram.send_document(FRIEND, b"{}", "result.json")
        fake_telegram.send_text(FRIEND, "hi there")
        expected = len(OWNER_COMMANDS) + 2
        await fake_telegram.wait_until(lambda: len(_texts(fake_telegram, ALLOWED_ID)) >= expected)
    texts = _texts(fake_telegram, ALLOWED_ID)
    assert texts.count(REFUSE_OWNER_ONLY) == len(OWNER_COMMANDS) + 1
    assert any("owner has not trained me" in t for t in texts)
    assert not fake_telegram.calls_to("getFile")


async def test_owner_stats_and_no_adapter_notice(
    settings: Settings, fake_telegram: FakeTelegramServer
) -> None:
    async with running_clone(settings):
        fake_telegram.send_command(OWNER, "/stats")
        stats = await fake_telegram.wait_for_message(
            OWNER_ID, lambda m: m.get("text", "").startswith("Chats:")
        )
        fake_telegram.send_text(OWNER, "hello clone")
        notice = await fake_telegram.wait_for_message(
            OWNER_ID, lambda m: "no adapter has been trained" in m.get("text", "")
        )
    assert "Messages: 0 (0 yours)" in stats["text"]
    assert "Training samples: 0 train / 0 eval" in stats["text"]
    assert "Last run: none yet" in stats["text"]
    assert "/retrain" in notice["text"]


async def test_owner_gets_owner_command_menu(
    settings: Settings, fake_telegram: FakeTelegramServer
) -> None:
    async with running_clone(settings):
        owner_scope = {"type": "chat", "chat_id": OWNER_ID}
        await fake_telegram.wait_until(lambda: fake_telegram.my_commands(owner_scope))
    public = {c["command"] for c in fake_telegram.my_commands()}
    owner = {c["command"] for c in fake_telegram.my_commands(owner_scope)}
    assert public == {"start", "help", "reset"}
    # Every owner command is in the owner's menu, except the ones sent in groups.
    assert owner - {"start", "help", "reset"} <= OWNER_COMMANDS
    assert OWNER_COMMANDS - owner <= {"collect", "talk"}
    assert {"autoreply", "fix"} <= owner


async def test_gate_stops_the_update_even_when_the_refusal_cannot_be_sent(
    settings: Settings, fake_telegram: FakeTelegramServer
) -> None:
    async with running_clone(settings, lambda _: ScriptedEngine()) as app:
        fake_telegram.fail_next("sendMessage", 403, "Forbidden: bot was blocked by the user")
        fake_telegram.send_command(FRIEND, "/retrain")
        await settle(app, fake_telegram)
        fake_telegram.send_command(FRIEND, "/stats")
        await fake_telegram.wait_for_message(
            ALLOWED_ID, lambda m: m.get("text") == REFUSE_OWNER_ONLY
        )
        await settle(app, fake_telegram)
        assert await latest_run(_services(app).db) is None
    assert not any("Training run" in m.get("text", "") for m in fake_telegram.sent_messages())
