"""Live collection through the real app: Business chats, opted-in groups, pause, forget."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from telegram.ext import Application

from bot.context import Services
from bot.settings import Settings
from storage.importer import import_export
from storage.messages import load_corpus
from storage.models import MessageRecord
from tests.bot.conftest import STRANGER_ID, running_clone, settle
from tests.export_factory import OWNER_ID
from tests.fake_telegram import builders
from tests.fake_telegram.server import FakeTelegramServer

OWNER = builders.user(OWNER_ID, "Owner")
FRIEND = builders.user(55555555, "Friend")
STRANGER = builders.user(STRANGER_ID, "Stranger")
FRIEND_CHAT = builders.private_chat(FRIEND)
GROUP = builders.group_chat(-1001234567890, "Climbing club")
CONNECTION = "biz-1"


def _services(app: Application) -> Services:  # type: ignore[type-arg]
    services = app.bot_data["services"]
    assert isinstance(services, Services)
    return services


async def _corpus(app: Application) -> list[MessageRecord]:  # type: ignore[type-arg]
    return await load_corpus(_services(app).db)


def _texts(records: list[MessageRecord]) -> dict[int, tuple[str, bool]]:
    return {m.message_id: (m.text, m.is_owner) for m in records}


async def _connect(server: FakeTelegramServer, app: Any) -> None:
    server.push_update({"business_connection": builders.business_connection(CONNECTION, OWNER)})
    await server.wait_until(lambda: server.sent_messages(OWNER_ID))
    await settle(app, server)


def _biz(text: str, message_id: int, sender: dict[str, Any] = FRIEND, **kw: Any) -> dict[str, Any]:
    return builders.business_message_update(
        CONNECTION, FRIEND_CHAT, sender, text, message_id, **kw
    )


async def test_business_chats_are_collected_both_sides_with_edits_and_deletes(
    settings: Settings, fake_telegram: FakeTelegramServer
) -> None:
    async with running_clone(settings) as app:
        await _connect(fake_telegram, app)
        fake_telegram.push_update(_biz("Привет, как ты?", 10))
        fake_telegram.push_update(_biz("Отлично, собираюсь в горы на выходных", 11, OWNER))
        fake_telegram.push_update(
            _biz(
                "Это бот ответил за владельца",
                12,
                OWNER,
                sender_business_bot=builders.user(1, "Bot", is_bot=True),
            )
        )
        await settle(app, fake_telegram)
        fake_telegram.push_update(_biz("Отлично, еду в горы в субботу", 11, OWNER, edited=True))
        fake_telegram.push_update(_biz("Удалю это", 13, OWNER))
        await settle(app, fake_telegram)
        fake_telegram.push_update(
            builders.deleted_business_messages_update(CONNECTION, FRIEND_CHAT, [13])
        )
        await settle(app, fake_telegram)
        stored = _texts(await _corpus(app))
    assert stored == {
        10: ("Привет, как ты?", False),
        11: ("Отлично, еду в горы в субботу", True),
    }
    assert "Business" in fake_telegram.sent_messages(OWNER_ID)[0]["text"]
    assert not fake_telegram.sent_messages(FRIEND["id"]), (
        "the clone never writes in Business chats"
    )


async def test_unknown_connection_is_fetched_and_strangers_connections_ignored(
    settings: Settings, fake_telegram: FakeTelegramServer
) -> None:
    fake_telegram.add_business_connection(builders.business_connection(CONNECTION, OWNER))
    fake_telegram.add_business_connection(builders.business_connection("other", STRANGER))
    async with running_clone(settings) as app:
        fake_telegram.push_update(_biz("Hello there, long time no see", 20))
        fake_telegram.push_update(
            builders.business_message_update("other", FRIEND_CHAT, STRANGER, "not ours", 21)
        )
        fake_telegram.push_update(
            {"business_connection": builders.business_connection("other2", STRANGER)}
        )
        await settle(app, fake_telegram)
        stored = _texts(await _corpus(app))
    assert stored == {20: ("Hello there, long time no see", False)}
    assert fake_telegram.calls_to("getBusinessConnection")
    assert not fake_telegram.sent_messages(STRANGER_ID)


async def test_pause_and_resume(settings: Settings, fake_telegram: FakeTelegramServer) -> None:
    async with running_clone(settings) as app:
        await _connect(fake_telegram, app)
        fake_telegram.send_command(OWNER, "/pause")
        await fake_telegram.wait_for_message(OWNER_ID, lambda m: "paused" in m["text"])
        fake_telegram.push_update(_biz("while paused", 30))
        await settle(app, fake_telegram)
        assert await _corpus(app) == []
        fake_telegram.send_command(OWNER, "/resume")
        await fake_telegram.wait_for_message(OWNER_ID, lambda m: "resumed" in m["text"])
        fake_telegram.push_update(_biz("after resume", 31))
        await settle(app, fake_telegram)
        stored = _texts(await _corpus(app))
    assert stored == {31: ("after resume", False)}


async def test_groups_are_collected_only_when_the_owner_opted_in(
    settings: Settings, fake_telegram: FakeTelegramServer
) -> None:
    async with running_clone(settings) as app:
        fake_telegram.send_text(FRIEND, "before opt-in", chat=GROUP)
        await settle(app, fake_telegram)
        assert await _corpus(app) == []
        fake_telegram.send_command(STRANGER, "/collect on", chat=GROUP)
        await fake_telegram.wait_for_message(GROUP["id"], lambda m: "only the owner" in m["text"])
        fake_telegram.send_command(OWNER, "/collect on", chat=GROUP)
        await fake_telegram.wait_for_message(GROUP["id"], lambda m: "learn from" in m["text"])
        fake_telegram.send_text(FRIEND, "Who is coming on Saturday?", chat=GROUP)
        fake_telegram.send_text(OWNER, "Me, and I will bring the rope", chat=GROUP)
        await settle(app, fake_telegram)
        owner_message = max(m.message_id for m in await _corpus(app))
        fake_telegram.push_update(
            builders.edited_message_update(
                GROUP, OWNER, "Me, and I'll bring two ropes", owner_message
            )
        )
        fake_telegram.send_command(OWNER, "/collect off", chat=GROUP)
        await fake_telegram.wait_for_message(GROUP["id"], lambda m: "stopped" in m["text"])
        fake_telegram.send_text(FRIEND, "after opt-out", chat=GROUP)
        await settle(app, fake_telegram)
        corpus = await _corpus(app)
    assert [(m.text, m.is_owner, m.chat_id) for m in corpus] == [
        ("Who is coming on Saturday?", False, GROUP["id"]),
        ("Me, and I'll bring two ropes", True, GROUP["id"]),
    ]
    assert all(m.source == "live" for m in corpus)


async def test_live_then_export_does_not_duplicate(
    settings: Settings, fake_telegram: FakeTelegramServer, tmp_path: Path
) -> None:
    export = {
        "personal_information": {"user_id": OWNER_ID, "first_name": "Owner"},
        "chats": {
            "list": [
                {
                    "name": "Friend",
                    "type": "personal_chat",
                    "id": FRIEND["id"],
                    "messages": [
                        {
                            "id": 40,
                            "type": "message",
                            "date": "2026-01-01T10:00:00",
                            "date_unixtime": "1767261600",
                            "from": "Friend",
                            "from_id": f"user{FRIEND['id']}",
                            "text": "Same message, seen live first",
                        },
                        {
                            "id": 41,
                            "type": "message",
                            "date": "2026-01-01T10:01:00",
                            "date_unixtime": "1767261660",
                            "from": "Owner",
                            "from_id": f"user{OWNER_ID}",
                            "text": "Only in the export, a reply of mine",
                        },
                    ],
                }
            ]
        },
    }
    path = tmp_path / "result.json"
    path.write_text(json.dumps(export), "utf-8")
    async with running_clone(settings) as app:
        await _connect(fake_telegram, app)
        fake_telegram.push_update(_biz("Same message, seen live first", 40))
        await settle(app, fake_telegram)
        report = await import_export(_services(app).db, path)
        corpus = await _corpus(app)
    assert report.new_messages == 1 and report.already_present == 1
    assert sorted((m.message_id, m.source) for m in corpus) == [(40, "live"), (41, "export")]


async def test_forget_needs_confirmation_from_the_owner(
    settings: Settings, fake_telegram: FakeTelegramServer
) -> None:
    async with running_clone(settings) as app:
        await _connect(fake_telegram, app)
        fake_telegram.push_update(_biz("one", 50))
        fake_telegram.push_update(_biz("two", 51))
        await settle(app, fake_telegram)
        fake_telegram.send_command(OWNER, "/forget all")
        question = await fake_telegram.wait_for_message(
            OWNER_ID, lambda m: "Delete 2 stored messages" in m["text"]
        )
        buttons = question["reply_markup"]["inline_keyboard"][0]
        delete_data = buttons[0]["callback_data"]
        fake_telegram.push_update(builders.callback_query_update(STRANGER, delete_data, question))
        await settle(app, fake_telegram)
        assert len(await _corpus(app)) == 2, "a stranger's press deletes nothing"
        fake_telegram.push_update(builders.callback_query_update(OWNER, delete_data, question))
        await fake_telegram.wait_for_message(
            OWNER_ID, lambda m: m["text"] == "Deleted 2 messages."
        )
        assert await _corpus(app) == []
    alerts = fake_telegram.calls_to("answerCallbackQuery")
    assert any(a.get("show_alert") and "only the owner" in a.get("text", "") for a in alerts)
