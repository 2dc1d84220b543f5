"""Business auto-reply: the clone answers as the owner only when switched on and allowed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from telegram import Message
from telegram.ext import Application

from bot.context import Services
from bot.handlers.autoreply import NO_REPLY_RIGHTS, SWITCHED_OFF, SWITCHED_ON
from bot.replies.business import AutoReplier
from bot.settings import Settings
from storage.auto_reply import auto_reply_switch, recent_auto_replies
from storage.collection import BusinessConnectionRecord, forget, get_business_connection
from storage.messages import load_corpus
from tests.bot.conftest import bot_settings, running_clone, settle
from tests.bot.scripted_engine import ScriptedEngine
from tests.export_factory import OWNER_ID
from tests.fake_telegram import builders
from tests.fake_telegram.server import FakeTelegramServer

OWNER = builders.user(OWNER_ID, "Owner")
FRIEND = builders.user(55555555, "Friend")
FRIEND_CHAT = builders.private_chat(FRIEND)
CONNECTION = "biz-1"

App = Application  # type: ignore[type-arg]


def _services(app: Any) -> Services:
    services = app.bot_data["services"]
    assert isinstance(services, Services)
    return services


def _replier(app: Any) -> AutoReplier:
    return _services(app).business


def _biz(text: str, message_id: int, sender: dict[str, Any] = FRIEND, **kw: Any) -> dict[str, Any]:
    return builders.business_message_update(
        CONNECTION, FRIEND_CHAT, sender, text, message_id, **kw
    )


def _auto_replies(server: FakeTelegramServer) -> list[dict[str, Any]]:
    return [p for p in server.calls_to("sendMessage") if p.get("business_connection_id")]


async def _connect(server: FakeTelegramServer, app: Any, *, can_reply: bool = True) -> None:
    before = len(server.sent_messages(OWNER_ID))
    connection = builders.business_connection(CONNECTION, OWNER, can_reply=can_reply)
    server.push_update({"business_connection": connection})
    await server.wait_until(lambda: len(server.sent_messages(OWNER_ID)) > before)
    await settle(app, server)


async def _owner_says(server: FakeTelegramServer, text: str, answer: str) -> None:
    server.send_command(OWNER, text)
    await server.wait_for_message(OWNER_ID, lambda m: m.get("text") == answer)


async def test_switched_on_it_answers_in_the_chat_and_its_reply_is_never_stored(
    settings: Settings, fake_telegram: FakeTelegramServer
) -> None:
    engine = ScriptedEngine()
    async with running_clone(settings, lambda _: engine) as app:
        await _connect(fake_telegram, app)
        fake_telegram.push_update(_biz("Ты где?", 8))
        fake_telegram.push_update(_biz("дома", 9, OWNER))
        await settle(app, fake_telegram)
        await _owner_says(fake_telegram, "/autoreply on", SWITCHED_ON)
        fake_telegram.push_update(_biz("Привет, как ты?", 10))
        [sent] = await fake_telegram.wait_until(lambda: _auto_replies(fake_telegram))
        # Telegram echoes what the bot sent on the owner's behalf as a business message.
        bot_user = fake_telegram.bot_user
        fake_telegram.push_update(
            _biz("re: Привет, как ты?", 11, OWNER, sender_business_bot=bot_user)
        )
        await settle(app, fake_telegram)
        stored = {m.message_id: (m.text, m.is_owner) for m in await load_corpus(_services(app).db)}
        await _owner_says(fake_telegram, "/autoreply off", SWITCHED_OFF)
        assert await auto_reply_switch(_services(app).db) is False
    assert sent["chat_id"] == FRIEND["id"]
    assert sent["business_connection_id"] == CONNECTION
    assert sent["text"] == "re: Привет, как ты?"
    assert engine.histories == [
        [
            {"role": "user", "content": "Ты где?"},
            {"role": "assistant", "content": "дома"},
            {"role": "user", "content": "Привет, как ты?"},
        ]
    ]
    assert stored == {
        8: ("Ты где?", False),
        9: ("дома", True),
        10: ("Привет, как ты?", False),
    }


async def test_the_setting_is_the_default_and_earlier_replies_are_history(
    fake_telegram: FakeTelegramServer, tmp_path: Path
) -> None:
    settings = bot_settings(fake_telegram, tmp_path / "data", auto_reply=True)
    engine = ScriptedEngine()
    async with running_clone(settings, lambda _: engine) as app:
        await _connect(fake_telegram, app)
        fake_telegram.push_update(_biz("Первое", 10))
        await fake_telegram.wait_until(lambda: len(_auto_replies(fake_telegram)) == 1)
        fake_telegram.push_update(_biz("Второе", 12))
        await fake_telegram.wait_until(lambda: len(_auto_replies(fake_telegram)) == 2)
    assert engine.histories[-1] == [
        {"role": "user", "content": "Первое"},
        {"role": "assistant", "content": "re: Первое"},
        {"role": "user", "content": "Второе"},
    ]


async def test_autoreply_on_without_reply_rights_says_so_and_stays_off(
    settings: Settings, fake_telegram: FakeTelegramServer
) -> None:
    async with running_clone(settings, lambda _: ScriptedEngine()) as app:
        await _connect(fake_telegram, app, can_reply=False)
        await _owner_says(fake_telegram, "/autoreply on", NO_REPLY_RIGHTS)
        assert await auto_reply_switch(_services(app).db) is None
        await _owner_says(
            fake_telegram,
            "/autoreply",
            "Auto-reply in your Business chats is off. "
            "Use /autoreply on to let me answer as you in your connected Telegram "
            "Business chats, /autoreply off to stop.",
        )


async def test_no_reply_without_rights_when_off_or_to_the_owner(
    fake_telegram: FakeTelegramServer, tmp_path: Path
) -> None:
    settings = bot_settings(fake_telegram, tmp_path / "data", auto_reply=True)
    async with running_clone(settings, lambda _: ScriptedEngine()) as app:
        await _connect(fake_telegram, app)
        replier = _replier(app)
        db = _services(app).db
        allowed = await get_business_connection(db, CONNECTION)
        assert allowed is not None and allowed.can_reply
        no_rights = BusinessConnectionRecord(CONNECTION, OWNER_ID, OWNER_ID, False, True)

        def message(update: dict[str, Any]) -> Message:
            return Message.de_json(update["business_message"], app.bot)

        bot_user = fake_telegram.bot_user
        assert not await replier.consider(message(_biz("hi", 30)), no_rights)
        assert not await replier.consider(message(_biz("mine", 31, OWNER)), allowed)
        by_bot = _biz("sent for you", 32, OWNER, sender_business_bot=bot_user)
        assert not await replier.consider(message(by_bot), allowed)
        await _owner_says(fake_telegram, "/autoreply off", SWITCHED_OFF)
        assert not await replier.consider(message(_biz("hi", 33)), allowed)
        await _owner_says(fake_telegram, "/autoreply on", SWITCHED_ON)
        # The control: the same message with rights, switched on, is answered.
        assert await replier.consider(message(_biz("hi", 34)), allowed)
        [sent] = await fake_telegram.wait_until(lambda: _auto_replies(fake_telegram))
    assert sent["text"] == "re: hi"


async def test_earlier_replies_are_history_after_a_restart_until_deleted_or_forgotten(
    fake_telegram: FakeTelegramServer, tmp_path: Path
) -> None:
    settings = bot_settings(fake_telegram, tmp_path / "data", auto_reply=True)
    async with running_clone(settings, lambda _: ScriptedEngine()) as app:
        await _connect(fake_telegram, app)
        fake_telegram.push_update(_biz("Первое", 10))
        await fake_telegram.wait_until(lambda: len(_auto_replies(fake_telegram)) == 1)
        await settle(app, fake_telegram)
    [first_reply] = fake_telegram.sent_messages(FRIEND["id"])

    restarted = ScriptedEngine()
    async with running_clone(settings, lambda _: restarted) as app:
        fake_telegram.push_update(_biz("Второе", 12))
        await fake_telegram.wait_until(lambda: len(_auto_replies(fake_telegram)) == 2)
        await settle(app, fake_telegram)
        # The owner deletes the first auto-reply in Telegram: it is no longer history.
        deleted = [first_reply["message_id"]]
        fake_telegram.push_update(
            builders.deleted_business_messages_update(CONNECTION, FRIEND_CHAT, deleted)
        )
        await settle(app, fake_telegram)
        fake_telegram.push_update(_biz("Третье", 14))
        await fake_telegram.wait_until(lambda: len(_auto_replies(fake_telegram)) == 3)
        await settle(app, fake_telegram)
        db = _services(app).db
        since = datetime.now(UTC) - timedelta(days=1)
        kept = await recent_auto_replies(db, FRIEND["id"], since, limit=10)
        await forget(db, FRIEND["id"])
        forgotten = await recent_auto_replies(db, FRIEND["id"], since, limit=10)
    assert restarted.histories[0] == [
        {"role": "user", "content": "Первое"},
        {"role": "assistant", "content": "re: Первое"},
        {"role": "user", "content": "Второе"},
    ]
    assert restarted.histories[1] == [
        {"role": "user", "content": "Первое\nВторое"},  # one turn, as a burst is
        {"role": "assistant", "content": "re: Второе"},
        {"role": "user", "content": "Третье"},
    ]
    assert [reply.text for reply in kept] == ["re: Второе", "re: Третье"]
    assert forgotten == []
