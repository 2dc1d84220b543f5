"""Only the owner administers; allowed users chat; strangers are refused and nothing is stored."""

from __future__ import annotations

import json

from bot.const import OWNER_COMMANDS
from bot.handlers.access import REFUSE_OWNER_ONLY, REFUSE_STRANGER
from bot.settings import Settings
from storage.db import Database
from storage.messages import corpus_counts
from storage.runs import latest_run
from tests.bot.conftest import ALLOWED_ID, STRANGER_ID, running_clone
from tests.export_factory import OWNER_ID, full_export
from tests.fake_telegram import builders
from tests.fake_telegram.server import FakeTelegramServer

STRANGER = builders.user(STRANGER_ID, "Stranger")
FRIEND = builders.user(ALLOWED_ID, "Friend")
OWNER = builders.user(OWNER_ID, "Owner")


def _texts(server: FakeTelegramServer, chat_id: int) -> list[str]:
    return [m.get("text", "") for m in server.sent_messages(chat_id)]


async def test_stranger_cannot_retrain_stats_upload_or_chat(
    settings: Settings, fake_telegram: FakeTelegramServer
) -> None:
    export = json.dumps(full_export()).encode()
    async with running_clone(settings):
        fake_telegram.send_command(STRANGER, "/retrain")
        fake_telegram.send_command(STRANGER, "/stats")
        fake_telegram.send_document(STRANGER, export, "result.json")
        fake_telegram.send_text(STRANGER, "hi there")
        await fake_telegram.wait_until(lambda: len(_texts(fake_telegram, STRANGER_ID)) >= 4)
    texts = _texts(fake_telegram, STRANGER_ID)
    assert texts.count(REFUSE_OWNER_ONLY) == 3
    assert texts.count(REFUSE_STRANGER) == 1
    assert not fake_telegram.calls_to("getFile")
    db = await Database.open(settings.database_path)
    try:
        assert (await corpus_counts(db)).messages == 0
        assert await latest_run(db) is None
    finally:
        await db.close()


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
    # Every owner command is in the owner's menu, except /collect, which is sent in groups.
    assert owner == {"start", "help", "reset"} | (OWNER_COMMANDS - {"collect"})
