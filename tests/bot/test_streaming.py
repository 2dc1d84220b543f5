"""Streaming replies: drafts in private chats, edits in groups, ending as reply_parts."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from bot.context import Services
from bot.engine.base import EngineBusyError, EngineUnavailableError
from bot.handlers.errors import USER_ERROR_TEXT
from bot.replies.parts import reply_parts
from bot.replies.pipeline import BUSY_TEXT, LEARNING_TEXT, UNAVAILABLE_TEXT
from bot.settings import Settings
from storage.clone_turns import turn_for_message
from tests.bot.conftest import ALLOWED_ID, running_clone, settle
from tests.bot.scripted_engine import ScriptedEngine
from tests.export_factory import OWNER_ID
from tests.fake_telegram import builders
from tests.fake_telegram.server import FakeTelegramServer

FRIEND = builders.user(ALLOWED_ID, "Friend")
OWNER = builders.user(OWNER_ID, "Owner")
GROUP = builders.group_chat(-1009876, "Friends")
INTERVAL = 0.2
ASKED = 500  # message id of the user's message in the group
LINES = "one two three\nfour five six seven\neight"


def _streaming(settings: Settings, **changes: Any) -> Settings:
    values: dict[str, Any] = {"reply_split_lines": True, "stream_edit_interval": INTERVAL}
    return settings.model_copy(update={**values, **changes})


def _texts(server: FakeTelegramServer, chat_id: int) -> list[str]:
    return [str(m.get("text", "")) for m in server.sent_messages(chat_id)]


def _gaps(times: list[float]) -> list[float]:
    return [later - earlier for earlier, later in itertools.pairwise(times)]


async def test_a_private_reply_streams_as_drafts_and_ends_as_its_line_messages(
    settings: Settings, fake_telegram: FakeTelegramServer
) -> None:
    engine = ScriptedEngine(delay=0.05, piece_delay=0.1, reply=LINES)
    async with running_clone(_streaming(settings), lambda _: engine) as app:
        fake_telegram.send_text(FRIEND, "hi")
        await fake_telegram.wait_until(lambda: len(_texts(fake_telegram, ALLOWED_ID)) >= 3)
        await settle(app, fake_telegram)
    parts = reply_parts(LINES, split_lines=True)
    assert _texts(fake_telegram, ALLOWED_ID) == parts
    drafts = fake_telegram.drafts(ALLOWED_ID)
    assert len(drafts) >= 2, "the reply was shown while it was generated"
    assert all(any(part.startswith(d.text) for part in parts) for d in drafts)
    assert min(_gaps([d.at for d in drafts])) >= INTERVAL * 0.9, "drafts are throttled"
    assert not fake_telegram.calls_to("editMessageText")
    # The first line became a message while later lines were still being drafted.
    first_sent = fake_telegram.timed_calls("sendMessage")[0][0]
    assert any(d.at > first_sent for d in drafts)
    assert len({d.draft_id for d in drafts}) >= 2, "each message has a draft of its own"
    assert not fake_telegram.calls_to("sendChatAction"), "the drafts show the clone writing"


async def test_a_group_reply_streams_by_throttled_edits_of_its_messages(
    settings: Settings, fake_telegram: FakeTelegramServer
) -> None:
    engine = ScriptedEngine(piece_delay=0.08, reply="a b c d e f g h i j\nk l m")
    async with running_clone(_streaming(settings), lambda _: engine) as app:
        fake_telegram.send_command(OWNER, "/talk on", chat=GROUP)
        await settle(app, fake_telegram)
        bot = fake_telegram.bot_user
        text = f"@{bot['username']} hi"
        fake_telegram.push_update(
            builders.mention_update(GROUP, FRIEND, text, bot, message_id=ASKED)
        )
        await fake_telegram.wait_for_message(GROUP["id"], lambda m: m["text"] == "k l m")
        await settle(app, fake_telegram)
    assert _texts(fake_telegram, GROUP["id"])[1:] == ["a b c d e f g h i j", "k l m"]
    assert not fake_telegram.drafts()
    edits = fake_telegram.timed_calls("editMessageText")
    assert len(edits) >= 2
    assert min(_gaps([at for at, _, _ in edits])) >= INTERVAL * 0.9
    first_reply = fake_telegram.sent_messages(GROUP["id"])[1]
    assert first_reply["reply_to_message"]["message_id"] == ASKED


async def test_a_reply_longer_than_a_message_streams_into_several(
    settings: Settings, fake_telegram: FakeTelegramServer
) -> None:
    reply = " ".join(f"слово{n}" for n in range(1200))
    engine = ScriptedEngine(piece_delay=0.001, reply=reply)
    settings = _streaming(settings, reply_split_lines=False)
    async with running_clone(settings, lambda _: engine) as app:
        fake_telegram.send_text(FRIEND, "tell me everything")
        await fake_telegram.wait_until(lambda: len(_texts(fake_telegram, ALLOWED_ID)) >= 3)
        await settle(app, fake_telegram)
    assert _texts(fake_telegram, ALLOWED_ID) == reply_parts(reply, split_lines=False)
    assert all(len(d.text) <= 4096 for d in fake_telegram.drafts())
    assert " ".join(_texts(fake_telegram, ALLOWED_ID)) == reply


async def test_every_message_of_a_reply_leads_back_to_its_turn(
    settings: Settings, fake_telegram: FakeTelegramServer
) -> None:
    engine = ScriptedEngine(piece_delay=0.02, reply=LINES)
    async with running_clone(_streaming(settings), lambda _: engine) as app:
        fake_telegram.send_text(FRIEND, "hi")
        await fake_telegram.wait_until(lambda: len(_texts(fake_telegram, ALLOWED_ID)) >= 3)
        await settle(app, fake_telegram)
        services = app.bot_data["services"]
        assert isinstance(services, Services)
        for message in fake_telegram.sent_messages(ALLOWED_ID):
            stored = await turn_for_message(services.db, ALLOWED_ID, message["message_id"])
            assert stored is not None
            assert stored.turn.role == "assistant"
            assert stored.turn.text == LINES


async def test_flood_control_is_waited_out_and_the_reply_still_arrives(
    settings: Settings, fake_telegram: FakeTelegramServer
) -> None:
    fake_telegram.fail_next("sendMessage", 429, "Too Many Requests: retry after 1", retry_after=1)
    async with running_clone(_streaming(settings), lambda _: ScriptedEngine()):
        fake_telegram.send_text(FRIEND, "hello")
        await fake_telegram.wait_for_message(ALLOWED_ID, lambda m: m["text"] == "re: hello")
    tries = [at for at, _, params in fake_telegram.timed_calls("sendMessage")]
    assert len(tries) == 2
    assert tries[1] - tries[0] >= 1.0, "RetryAfter's wait was honoured"
    assert USER_ERROR_TEXT not in _texts(fake_telegram, ALLOWED_ID)


async def test_a_server_without_drafts_gets_edits_instead(
    settings: Settings, fake_telegram: FakeTelegramServer
) -> None:
    fake_telegram.fail_next("sendMessageDraft", 400, "Bad Request: method not found")
    engine = ScriptedEngine(piece_delay=0.08, reply="a b c d e f g")
    settings = _streaming(settings)
    async with running_clone(settings, lambda _: engine) as app:
        fake_telegram.send_text(FRIEND, "hi")
        await fake_telegram.wait_until(lambda: fake_telegram.calls_to("editMessageText"))
        await fake_telegram.wait_for_message(ALLOWED_ID, lambda m: m["text"] == "a b c d e f g")
        await settle(app, fake_telegram)
    assert _texts(fake_telegram, ALLOWED_ID) == ["a b c d e f g"]
    assert len(fake_telegram.calls_to("sendMessageDraft")) == 1


async def test_without_streaming_the_reply_is_sent_when_complete(
    settings: Settings, fake_telegram: FakeTelegramServer
) -> None:
    engine = ScriptedEngine(piece_delay=0.05, reply=LINES)
    settings = _streaming(settings, reply_streaming=False)
    async with running_clone(settings, lambda _: engine) as app:
        fake_telegram.send_text(FRIEND, "hi")
        await fake_telegram.wait_until(lambda: len(_texts(fake_telegram, ALLOWED_ID)) >= 3)
        await settle(app, fake_telegram)
    assert _texts(fake_telegram, ALLOWED_ID) == reply_parts(LINES, split_lines=True)
    assert not fake_telegram.drafts()
    assert not fake_telegram.calls_to("editMessageText")


async def test_while_the_engine_is_lent_to_training_the_user_hears_it_is_learning(
    settings: Settings, fake_telegram: FakeTelegramServer
) -> None:
    engine = ScriptedEngine()
    engine.paused = True
    async with running_clone(_streaming(settings), lambda _: engine) as app:
        fake_telegram.send_text(FRIEND, "are you there?")
        await fake_telegram.wait_for_message(ALLOWED_ID, lambda m: m["text"] == LEARNING_TEXT)
        await settle(app, fake_telegram)
        engine.paused = False
        fake_telegram.send_text(FRIEND, "and now?")
        await fake_telegram.wait_for_message(ALLOWED_ID, lambda m: m["text"] == "re: and now?")
        await settle(app, fake_telegram)
    assert _texts(fake_telegram, ALLOWED_ID) == [
        LEARNING_TEXT,
        "re: are you there?",
        "re: and now?",
    ]
    assert not fake_telegram.sent_messages(OWNER_ID), "pausing is no error"
    # The message the paused engine could not answer is part of the conversation.
    assert engine.histories[-1] == [{"role": "user", "content": "are you there?\nand now?"}]


@pytest.mark.parametrize(
    ("error", "text"),
    [
        (EngineBusyError("queue full"), BUSY_TEXT),
        (EngineUnavailableError("connection refused"), UNAVAILABLE_TEXT),
    ],
)
async def test_a_full_queue_or_a_lost_model_server_gets_one_friendly_line(
    settings: Settings, fake_telegram: FakeTelegramServer, error: Exception, text: str
) -> None:
    engine = ScriptedEngine()
    engine.error = error
    async with running_clone(_streaming(settings), lambda _: engine) as app:
        fake_telegram.send_text(FRIEND, "hello?")
        await fake_telegram.wait_for_message(ALLOWED_ID, lambda m: m["text"] == text)
        await settle(app, fake_telegram)
    assert _texts(fake_telegram, ALLOWED_ID) == [text]
    assert not fake_telegram.sent_messages(settings.owner_id)  # no error report
