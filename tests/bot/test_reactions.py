"""The owner's reactions (and label buttons) mark clone replies good or bad, through the fake
Bot API; nobody else's do."""

from __future__ import annotations

from typing import Any

from telegram.ext import Application

from bot.handlers.access import REFUSE_OWNER_ONLY
from bot.settings import Settings
from storage.clone_turns import prompt_of_turn, turn_for_message
from storage.reply_labels import ReplyLabel, count_labels, load_labels
from tests.bot.conftest import (
    ALLOWED_ID,
    STRANGER_ID,
    bot_settings,
    running_clone,
    services_of,
    settle,
)
from tests.bot.scripted_engine import ScriptedEngine
from tests.export_factory import OWNER_ID
from tests.fake_telegram import builders
from tests.fake_telegram.server import FakeTelegramServer
from training.config import DEFAULT_SYSTEM_PROMPT

OWNER = builders.user(OWNER_ID, "Owner")
OWNER_CHAT = builders.private_chat(OWNER)
FRIEND = builders.user(ALLOWED_ID, "Friend")
STRANGER = builders.user(STRANGER_ID, "Stranger")
QUESTION = "Пойдём в кино сегодня?"


async def _react(
    app: Application,  # type: ignore[type-arg]
    server: FakeTelegramServer,
    who: dict[str, Any],
    message_id: int,
    emoji: list[str],
) -> list[ReplyLabel]:
    server.push_update(builders.message_reaction_update(OWNER_CHAT, who, message_id, emoji))
    await settle(app, server)
    return await load_labels(services_of(app).db)


async def test_reactions_label_the_reply_and_follow_every_change(
    settings: Settings, fake_telegram: FakeTelegramServer
) -> None:
    async with running_clone(settings, lambda _: ScriptedEngine()) as app:
        db = services_of(app).db
        fake_telegram.send_text(OWNER, QUESTION)
        reply = await fake_telegram.wait_for_message(
            OWNER_ID, lambda m: m.get("text", "").startswith("re:")
        )
        await settle(app, fake_telegram)
        stored = await turn_for_message(db, OWNER_ID, reply["message_id"])
        assert stored is not None
        # What the clone saw is kept with the reply: its system message (no memory block:
        # nothing of the owner's is stored here) and the turns.
        prompt = [
            {"role": "system", "content": DEFAULT_SYSTEM_PROMPT},
            {"role": "user", "content": QUESTION},
        ]
        assert await prompt_of_turn(db, stored.turn_id) == prompt

        [good] = await _react(app, fake_telegram, OWNER, reply["message_id"], ["👍"])
        assert (good.label, good.source, good.turn_id) == ("good", "reaction", stored.turn_id)
        assert good.context == prompt and good.reply_text == f"re: {QUESTION}"
        [bad] = await _react(app, fake_telegram, OWNER, reply["message_id"], ["💩"])
        assert bad.label == "bad"
        assert await _react(app, fake_telegram, OWNER, reply["message_id"], ["🤔"]) == []
        [fire] = await _react(app, fake_telegram, OWNER, reply["message_id"], ["🔥"])
        assert fire.label == "good"
        # Several reactions at once (Premium): the last of ours counts.
        [mixed] = await _react(app, fake_telegram, OWNER, reply["message_id"], ["❤", "👎"])
        assert mixed.label == "bad"
        assert await _react(app, fake_telegram, OWNER, reply["message_id"], []) == []
        [heart] = await _react(app, fake_telegram, OWNER, reply["message_id"], ["❤"])
        assert heart.label == "good"

        # Nobody else's reaction counts, and nobody is told anything.
        sent_before = len(fake_telegram.sent_messages())
        for other in (FRIEND, STRANGER):
            labels = await _react(app, fake_telegram, other, reply["message_id"], ["👎"])
            assert [(x.label, x.updated_at) for x in labels] == [("good", heart.updated_at)]
        assert len(fake_telegram.sent_messages()) == sent_before
        # A reaction to the owner's own message or to an unknown one labels nothing.
        own = reply["message_id"] - 1
        assert len(await _react(app, fake_telegram, OWNER, own, ["👍"])) == 1
        assert len(await _react(app, fake_telegram, OWNER, 9999, ["👍"])) == 1

        fake_telegram.send_command(OWNER, "/stats")
        stats = await fake_telegram.wait_for_message(
            OWNER_ID, lambda m: "Chats:" in m.get("text", "")
        )
        assert await count_labels(db) == {"good": 1, "bad": 0}
    assert "Replies you rated: 1 good, 0 bad" in stats["text"]


async def test_label_buttons_stand_in_where_reactions_do_not_arrive(
    fake_telegram: FakeTelegramServer, tmp_path: Any
) -> None:
    settings = bot_settings(fake_telegram, tmp_path / "data", reply_label_buttons=True)
    async with running_clone(settings, lambda _: ScriptedEngine()) as app:
        db = services_of(app).db
        fake_telegram.send_text(OWNER, QUESTION)
        await fake_telegram.wait_until(
            lambda: any("reply_markup" in m for m in fake_telegram.sent_messages(OWNER_ID))
        )
        [reply] = fake_telegram.sent_messages(OWNER_ID)
        keyboard = reply["reply_markup"]["inline_keyboard"]
        assert [b["text"] for b in keyboard[0]] == ["👍", "👎"]
        bad = keyboard[0][1]["callback_data"]
        # Someone else pressing is refused and changes nothing.
        press = builders.callback_query_update(STRANGER, bad, reply, query_id="q-stranger")
        fake_telegram.push_update(press)
        await settle(app, fake_telegram)
        assert await load_labels(db) == []
        refusal = fake_telegram.calls_to("answerCallbackQuery")[-1]
        assert refusal["text"] == REFUSE_OWNER_ONLY

        fake_telegram.push_update(builders.callback_query_update(OWNER, bad, reply))
        await settle(app, fake_telegram)
        [label] = await load_labels(db)
        assert (label.label, label.source) == ("bad", "button")
        assert label.context == [
            {"role": "system", "content": DEFAULT_SYSTEM_PROMPT},
            {"role": "user", "content": QUESTION},
        ]
        assert fake_telegram.calls_to("answerCallbackQuery")[-1]["text"].startswith("Noted")

        # A friend's chat with the clone gets no buttons: they are for the owner's replies.
        fake_telegram.send_text(FRIEND, "hi")
        await fake_telegram.wait_for_message(ALLOWED_ID)
        await settle(app, fake_telegram)
        assert all("reply_markup" not in m for m in fake_telegram.sent_messages(ALLOWED_ID))
