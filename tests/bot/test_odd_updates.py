"""Updates an unlucky user or a stranger sends: a bare '/', an old message edited into a
command, /retrain eight times at once, a flood from someone else's Business account,
stickers and photos."""

from __future__ import annotations

import logging

import pytest

from bot.handlers.access import REFUSE_STRANGER
from bot.handlers.admin import ALREADY_RUNNING
from bot.handlers.chat import TEXT_ONLY
from bot.handlers.errors import USER_ERROR_TEXT
from bot.handlers.upload import NOT_AN_EXPORT
from bot.settings import Settings
from bot.telegram.const import EXPORT_SUFFIXES
from storage import errors
from tests.bot.conftest import ALLOWED_ID, STRANGER_ID, running_clone, settle
from tests.bot.scripted_engine import ScriptedEngine
from tests.export_factory import OWNER_ID
from tests.fake_telegram import builders
from tests.fake_telegram.server import FakeTelegramServer

OWNER = builders.user(OWNER_ID, "Owner")
FRIEND = builders.user(ALLOWED_ID, "Friend")
STRANGER = builders.user(STRANGER_ID, "Stranger")
GROUP = builders.group_chat(-1009876543210, "Some group")


def _texts(server: FakeTelegramServer, chat_id: int) -> list[str]:
    return [str(m.get("text", "")) for m in server.sent_messages(chat_id)]


async def test_a_bare_slash_is_no_error_for_anyone_anywhere(
    settings: Settings, fake_telegram: FakeTelegramServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    async with running_clone(settings, lambda _: ScriptedEngine()) as app:
        for text in ("/", "/ ", "/@clone_bot"):
            fake_telegram.send_text(STRANGER, text, chat=GROUP)
        fake_telegram.send_text(STRANGER, "/")  # a private chat: the daily refusal
        await fake_telegram.wait_for_message(STRANGER_ID)
        await settle(app, fake_telegram)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert _texts(fake_telegram, STRANGER_ID) == [REFUSE_STRANGER]
    assert not fake_telegram.sent_messages(GROUP["id"])
    assert not fake_telegram.sent_messages(OWNER_ID), "no error note reaches the owner"


async def test_an_old_message_edited_into_a_command_does_not_run_it(
    settings: Settings, fake_telegram: FakeTelegramServer
) -> None:
    async with running_clone(settings, lambda _: ScriptedEngine()) as app:
        chat = builders.private_chat(OWNER)
        edit = builders.edited_message_update(chat, OWNER, "/stats", message_id=1)
        edit["edited_message"]["entities"] = [{"type": "bot_command", "offset": 0, "length": 6}]
        fake_telegram.push_update(edit)
        await settle(app, fake_telegram)
        fake_telegram.send_command(OWNER, "/help")  # answered: the edit was handled before it
        await fake_telegram.wait_for_message(OWNER_ID)
        await settle(app, fake_telegram)
    assert not [t for t in _texts(fake_telegram, OWNER_ID) if t.startswith("Chats:")]


async def test_retrain_eight_times_at_once_answers_each(
    settings: Settings, fake_telegram: FakeTelegramServer
) -> None:
    def answered() -> int:
        texts = _texts(fake_telegram, OWNER_ID)
        return sum(
            t == ALREADY_RUNNING or (t.startswith("Training run #") and "started" in t)
            for t in texts
        )

    async with running_clone(settings, lambda _: ScriptedEngine()) as app:
        for _ in range(8):
            fake_telegram.send_command(OWNER, "/retrain")
        await fake_telegram.wait_until(lambda: answered() >= 8, timeout=60)
        await settle(app, fake_telegram)
        await fake_telegram.wait_until(
            lambda: not app.bot_data["services"].retrain.busy, timeout=60
        )
    assert answered() == 8, _texts(fake_telegram, OWNER_ID)


async def test_someone_elses_business_connection_is_asked_about_once(
    settings: Settings, fake_telegram: FakeTelegramServer
) -> None:
    fake_telegram.add_business_connection(builders.business_connection("theirs", STRANGER))
    friend_chat = builders.private_chat(FRIEND)
    async with running_clone(settings) as app:
        for message_id in range(1, 6):
            fake_telegram.push_update(
                builders.business_message_update(
                    "theirs", friend_chat, FRIEND, "not the owner's", message_id
                )
            )
            await settle(app, fake_telegram)
    assert len(fake_telegram.calls_to("getBusinessConnection")) == 1


async def test_stickers_and_photos_get_an_answer(
    settings: Settings, fake_telegram: FakeTelegramServer
) -> None:
    chat = builders.private_chat(FRIEND)
    sticker = {
        "file_id": "sticker-1",
        "file_unique_id": "s1",
        "width": 512,
        "height": 512,
        "is_animated": False,
        "is_video": False,
        "type": "regular",
        "emoji": "👍",
    }
    photo = [{"file_id": "photo-1", "file_unique_id": "p1", "width": 90, "height": 90}]
    async with running_clone(settings, lambda _: ScriptedEngine()) as app:
        fake_telegram.push_update({"message": builders.message(chat, FRIEND, sticker=sticker)})
        await fake_telegram.wait_for_message(ALLOWED_ID, lambda m: m.get("text") == TEXT_ONLY)
        fake_telegram.push_update(
            {"message": builders.message(chat, FRIEND, photo=photo, caption="look at this")}
        )
        reply = await fake_telegram.wait_for_message(
            ALLOWED_ID, lambda m: "look at this" in str(m.get("text", "")), timeout=30
        )
        await settle(app, fake_telegram)
    assert reply["text"] == "re: look at this"
    assert USER_ERROR_TEXT not in _texts(fake_telegram, ALLOWED_ID)


def test_the_upload_help_names_every_format_the_importer_takes() -> None:
    names = {".json": "result.json", ".html": "messages.html", ".zip": ".zip"}
    assert set(EXPORT_SUFFIXES) == set(names)
    for name in names.values():
        assert name in NOT_AN_EXPORT
    assert "messages.html" in errors.NotJsonError("notes.json").message
    assert "not work" not in errors.NotJsonError("notes.json").message
    assert "messages.html" in errors.ZipWithoutExportError("export.zip").message
