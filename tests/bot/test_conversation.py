"""How talking to the clone feels: one reply per burst, in order, typing shown, bursts kept."""

from __future__ import annotations

from bot.handlers.errors import USER_ERROR_TEXT
from bot.settings import Settings
from tests.bot.conftest import ALLOWED_ID, running_clone, settle
from tests.bot.scripted_engine import ScriptedEngine
from tests.export_factory import OWNER_ID
from tests.fake_telegram import builders
from tests.fake_telegram.server import FakeTelegramServer

FRIEND = builders.user(ALLOWED_ID, "Friend")


def _texts(server: FakeTelegramServer) -> list[str]:
    return [str(m.get("text", "")) for m in server.sent_messages(ALLOWED_ID)]


async def test_a_burst_gets_one_reply_split_like_the_owner_writes(
    settings: Settings, fake_telegram: FakeTelegramServer
) -> None:
    engine = ScriptedEngine(delay=0.6)  # longer than TYPING_AFTER_SECONDS: typing shows
    settings = settings.model_copy(update={"reply_quiet_seconds": 0.5, "reply_split_lines": True})
    async with running_clone(settings, lambda _: engine):
        for text in ("привет", "как дела?", "что нового"):
            fake_telegram.send_text(FRIEND, text)
        await fake_telegram.wait_until(lambda: len(_texts(fake_telegram)) >= 3)
    assert engine.histories == [[{"role": "user", "content": "привет\nкак дела?\nчто нового"}]]
    assert _texts(fake_telegram) == ["re: привет", "re: как дела?", "re: что нового"]
    assert fake_telegram.calls_to("sendChatAction")


async def test_a_message_during_generation_is_answered_next_in_order(
    settings: Settings, fake_telegram: FakeTelegramServer
) -> None:
    engine = ScriptedEngine(delay=1.0)
    async with running_clone(settings, lambda _: engine):
        fake_telegram.send_text(FRIEND, "first")
        await fake_telegram.wait_until(lambda: engine.histories)
        fake_telegram.send_text(FRIEND, "second")
        await fake_telegram.wait_until(lambda: len(_texts(fake_telegram)) >= 2, timeout=10)
    assert _texts(fake_telegram) == ["re: first", "re: second"]
    assert engine.histories[1] == [
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "re: first"},
        {"role": "user", "content": "second"},
    ]


async def test_an_engine_failure_is_one_friendly_line_and_a_note_to_the_owner(
    settings: Settings, fake_telegram: FakeTelegramServer
) -> None:
    async with running_clone(settings, lambda _: ScriptedEngine(fail=True)):
        fake_telegram.send_text(FRIEND, "hello?")
        await fake_telegram.wait_for_message(ALLOWED_ID, lambda m: m["text"] == USER_ERROR_TEXT)
        note = await fake_telegram.wait_for_message(OWNER_ID, lambda m: "error" in m["text"])
    assert "RuntimeError" in note["text"]
    assert "hello" not in note["text"], "message text never reaches the owner's error note"


async def test_a_quick_reply_needs_no_typing_action(
    settings: Settings, fake_telegram: FakeTelegramServer
) -> None:
    async with running_clone(settings, lambda _: ScriptedEngine()) as app:
        fake_telegram.send_text(FRIEND, "hi")
        await fake_telegram.wait_for_message(ALLOWED_ID, lambda m: m["text"] == "re: hi")
        await settle(app, fake_telegram)
    assert not fake_telegram.calls_to("sendChatAction")
