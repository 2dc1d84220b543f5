"""The clone in groups: only where the owner said /talk on, only when mentioned or replied to."""

from __future__ import annotations

from typing import Any

from telegram import Message

from bot.handlers.access import REFUSE_OWNER_ONLY
from bot.handlers.group_talk import TALK_OFF, TALK_ON, TALK_USAGE, addressed_text
from bot.settings import Settings
from tests.bot.conftest import ALLOWED_ID, STRANGER_ID, running_clone, settle
from tests.bot.scripted_engine import ScriptedEngine
from tests.export_factory import OWNER_ID
from tests.fake_telegram import builders
from tests.fake_telegram.server import FakeTelegramServer

FRIEND = builders.user(ALLOWED_ID, "Friend")
STRANGER = builders.user(STRANGER_ID, "Stranger")
OWNER = builders.user(OWNER_ID, "Owner")
GROUP = builders.group_chat(-1005555, "Friends")
OTHER_GROUP = builders.group_chat(-1006666, "Others")


def _texts(server: FakeTelegramServer, chat_id: int) -> list[str]:
    return [str(m.get("text", "")) for m in server.sent_messages(chat_id)]


def _mention(server: FakeTelegramServer, text: str, **kwargs: Any) -> dict[str, Any]:
    bot = server.bot_user
    return builders.mention_update(GROUP, FRIEND, text.format(bot=bot["username"]), bot, **kwargs)


async def test_the_clone_answers_a_mention_only_where_talk_is_on(
    settings: Settings, fake_telegram: FakeTelegramServer
) -> None:
    engine = ScriptedEngine()
    async with running_clone(settings, lambda _: engine) as app:
        # Before /talk on: a mention gets nothing.
        fake_telegram.push_update(_mention(fake_telegram, "@{bot} are you there?"))
        await settle(app, fake_telegram)
        assert not engine.histories
        fake_telegram.send_command(OWNER, "/talk on", chat=GROUP)
        await fake_telegram.wait_for_message(GROUP["id"], lambda m: m["text"] == TALK_ON)
        fake_telegram.push_update(_mention(fake_telegram, "hey @{bot}  how are you?"))
        # In groups every other speaker's line is named, as in the training samples.
        await fake_telegram.wait_for_message(
            GROUP["id"], lambda m: m["text"] == "re: Friend: hey how are you?"
        )
        # Unaddressed chatter and other groups stay unanswered.
        fake_telegram.send_text(FRIEND, "just talking among us", chat=GROUP)
        fake_telegram.push_update(
            builders.mention_update(
                OTHER_GROUP,
                FRIEND,
                f"@{fake_telegram.bot_user['username']} hi",
                fake_telegram.bot_user,
            )
        )
        await settle(app, fake_telegram)
        fake_telegram.send_command(OWNER, "/talk off", chat=GROUP)
        await fake_telegram.wait_for_message(GROUP["id"], lambda m: m["text"] == TALK_OFF)
        fake_telegram.push_update(_mention(fake_telegram, "@{bot} still there?"))
        await settle(app, fake_telegram)
    assert engine.histories == [[{"role": "user", "content": "Friend: hey how are you?"}]]
    assert not fake_telegram.sent_messages(OTHER_GROUP["id"])


async def test_a_reply_to_the_clone_in_a_group_is_answered_with_the_group_history(
    settings: Settings, fake_telegram: FakeTelegramServer
) -> None:
    engine = ScriptedEngine()
    async with running_clone(settings, lambda _: engine) as app:
        fake_telegram.send_command(OWNER, "/talk on", chat=GROUP)
        await settle(app, fake_telegram)
        fake_telegram.push_update(_mention(fake_telegram, "@{bot} hi"))
        first = await fake_telegram.wait_for_message(
            GROUP["id"], lambda m: m["text"] == "re: Friend: hi"
        )
        fake_telegram.push_update(
            builders.message_update(GROUP, FRIEND, "and then?", reply_to=first)
        )
        await fake_telegram.wait_for_message(
            GROUP["id"], lambda m: m["text"] == "re: Friend: and then?"
        )
        await settle(app, fake_telegram)
    assert engine.histories[-1] == [
        {"role": "user", "content": "Friend: hi"},
        {"role": "assistant", "content": "re: Friend: hi"},
        {"role": "user", "content": "Friend: and then?"},
    ]


async def test_only_the_owner_switches_talk_and_strangers_are_never_answered(
    settings: Settings, fake_telegram: FakeTelegramServer
) -> None:
    engine = ScriptedEngine()
    async with running_clone(settings, lambda _: engine) as app:
        fake_telegram.send_command(FRIEND, "/talk on", chat=GROUP)
        await fake_telegram.wait_for_message(GROUP["id"], lambda m: m["text"] == REFUSE_OWNER_ONLY)
        fake_telegram.send_command(OWNER, "/talk on", chat=GROUP)
        await fake_telegram.wait_for_message(GROUP["id"], lambda m: m["text"] == TALK_ON)
        bot = fake_telegram.bot_user
        fake_telegram.push_update(
            builders.mention_update(GROUP, STRANGER, f"@{bot['username']} hi", bot)
        )
        await settle(app, fake_telegram)
        fake_telegram.send_command(OWNER, "/talk maybe", chat=GROUP)
        await fake_telegram.wait_for_message(GROUP["id"], lambda m: m["text"] == TALK_USAGE)
        fake_telegram.send_command(OWNER, "/talk on")
        await fake_telegram.wait_for_message(OWNER_ID, lambda m: m["text"] == TALK_USAGE)
    assert not engine.histories


def _message(update: dict[str, Any], bot_id: int) -> Message:
    msg = dict(update["message"], message_id=1)
    return Message.de_json(msg, None)  # type: ignore[arg-type]


def test_addressed_text_strips_the_mention_and_knows_text_mentions_and_replies() -> None:
    bot = builders.user(777, "Clone", "clone_bot", is_bot=True)
    mention = builders.mention_update(GROUP, FRIEND, "👋 @Clone_Bot как дела?", bot)
    assert addressed_text(_message(mention, 777), 777, "clone_bot") == "👋 как дела?"
    named = builders.mention_update(GROUP, FRIEND, "Clone, hi", bot, text_mention=True)
    assert addressed_text(_message(named, 777), 777, "clone_bot") == ", hi"
    other = builders.user(778, "Other", "other_bot", is_bot=True)
    not_us = builders.mention_update(GROUP, FRIEND, "@other_bot hi", other)
    assert addressed_text(_message(not_us, 777), 777, "clone_bot") is None
    bot_message = builders.message(GROUP, bot, text="re: hi", message_id=5)
    reply = builders.message_update(GROUP, FRIEND, "ok", reply_to=bot_message)
    assert addressed_text(_message(reply, 777), 777, "clone_bot") == "ok"
    plain = builders.message_update(GROUP, FRIEND, "ok")
    assert addressed_text(_message(plain, 777), 777, "clone_bot") is None
