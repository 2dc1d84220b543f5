"""An import holds the database's writer for seconds to minutes; the bot goes on meanwhile.

The test holds an import's transaction open (``bulk=True``, rows written into it, as
``storage.importer`` does) for as long as it needs: replies, /stats and live capture must all
happen while it is open, none of its rows may be seen before it commits, and when it rolls
back the live messages stored behind it are kept.
"""

from __future__ import annotations

import asyncio
from typing import Any

from telegram.ext import Application

from bot.context import Services
from bot.handlers.fix import NOT_A_CLONE_MESSAGE, NOTED
from bot.settings import Settings
from storage.clone_turns import recent_clone_turns
from storage.corrections import count_corrections
from storage.messages import corpus_counts, load_corpus, save_chats
from storage.models import ChatRecord
from storage.reply_labels import count_labels
from tests.bot.conftest import ALLOWED_ID, running_clone, settle
from tests.bot.scripted_engine import ScriptedEngine
from tests.export_factory import OWNER_ID
from tests.fake_telegram import builders
from tests.fake_telegram.server import FakeTelegramServer

OWNER = builders.user(OWNER_ID, "Owner")
FRIEND = builders.user(ALLOWED_ID, "Friend")
CONTACT = builders.user(55555555, "Contact")
CONNECTION = "biz-1"
IMPORTED_CHAT = 777


def _services(app: Application) -> Services:  # type: ignore[type-arg]
    services = app.bot_data["services"]
    assert isinstance(services, Services)
    return services


def _texts(server: FakeTelegramServer, chat_id: int) -> list[str]:
    return [str(m.get("text", "")) for m in server.sent_messages(chat_id)]


class ImportFailed(Exception):
    """Ends the held import the way a bad file would."""


async def _hold_import(services: Services, holding: asyncio.Event, release: asyncio.Event) -> None:
    """An import's transaction with rows in it, open until ``release``, then rolled back."""
    rows = [
        (IMPORTED_CHAT, n, 1, "Someone", 0, 1_600_000_000 + n, f"row {n}", "text")
        for n in range(1, 1001)
    ]
    insert = """
        INSERT INTO messages (chat_id, message_id, sender_id, sender_name, is_owner, date_utc,
                              text, kind, source)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'export')
    """
    try:
        async with services.db.transaction(check_foreign_keys=False, bulk=True) as conn:
            await save_chats(conn, [ChatRecord(IMPORTED_CHAT, "Imported", "personal_chat")])
            await conn.executemany(insert, rows)
            holding.set()
            await release.wait()
            raise ImportFailed
    except ImportFailed:
        pass


async def _import_held(services: Services) -> tuple[asyncio.Task[None], asyncio.Event]:
    """An import holding the database, started; set the event to end it."""
    holding, release = asyncio.Event(), asyncio.Event()
    importing = asyncio.create_task(_hold_import(services, holding, release))
    await asyncio.wait_for(holding.wait(), timeout=10)
    return importing, release


async def test_replies_stats_and_live_capture_go_on_during_an_import(
    settings: Settings, fake_telegram: FakeTelegramServer
) -> None:
    engine = ScriptedEngine()
    async with running_clone(settings, lambda _: engine) as app:
        services = _services(app)
        fake_telegram.push_update(
            {"business_connection": builders.business_connection(CONNECTION, OWNER)}
        )
        await fake_telegram.wait_until(lambda: fake_telegram.sent_messages(OWNER_ID))
        await settle(app, fake_telegram)
        importing, release = await _import_held(services)

        fake_telegram.send_text(FRIEND, "how was the trip")
        await fake_telegram.wait_for_message(ALLOWED_ID, lambda m: "trip" in str(m["text"]))
        fake_telegram.send_text(FRIEND, "and the weather")
        await fake_telegram.wait_for_message(ALLOWED_ID, lambda m: "weather" in str(m["text"]))
        fake_telegram.send_command(OWNER, "/stats")
        stats = await fake_telegram.wait_for_message(
            OWNER_ID, lambda m: str(m.get("text", "")).startswith("Chats:")
        )
        contact_chat = builders.private_chat(CONTACT)
        fake_telegram.push_update(
            builders.business_message_update(CONNECTION, contact_chat, CONTACT, "hi there", 5)
        )
        fake_telegram.push_update(
            builders.business_message_update(CONNECTION, contact_chat, OWNER, "hello!", 6)
        )
        await settle(app, fake_telegram)  # every handler is done: none waited for the import
        still_importing = services.db.bulk_loading and not importing.done()
        during = await corpus_counts(services.db)

        release.set()
        await importing
        await settle(app, fake_telegram)
        stored = {m.message_id: m.text for m in await load_corpus(services.db)}
        turns = await recent_clone_turns(services.db, ALLOWED_ID, limit=10)
        histories: list[Any] = engine.histories
    assert still_importing, "everything above happened while the import held the database"
    assert "Messages: 0 (0 yours)" in str(stats["text"]), "uncommitted rows are never seen"
    assert during.messages == 0
    # The second reply was written with the first exchange, not stored yet, as history.
    assert [m["content"] for m in histories[-1] if m["role"] != "system"] == [
        "how was the trip",
        "re: how was the trip",
        "and the weather",
    ]
    assert stored == {5: "hi there", 6: "hello!"}, "queued behind the import, then stored"
    assert [t.text for t in turns] == [
        "how was the trip",
        "re: how was the trip",
        "and the weather",
        "re: and the weather",
    ]


async def test_a_reset_during_an_import_forgets_the_conversation_at_once(
    settings: Settings, fake_telegram: FakeTelegramServer
) -> None:
    engine = ScriptedEngine()
    async with running_clone(settings, lambda _: engine) as app:
        services = _services(app)
        fake_telegram.send_text(FRIEND, "remember the plan")
        await fake_telegram.wait_for_message(ALLOWED_ID, lambda m: "plan" in str(m["text"]))
        await settle(app, fake_telegram)
        importing, release = await _import_held(services)
        fake_telegram.send_text(FRIEND, "what now")
        await fake_telegram.wait_for_message(ALLOWED_ID, lambda m: "now" in str(m["text"]))
        fake_telegram.send_command(FRIEND, "/reset")
        await fake_telegram.wait_for_message(ALLOWED_ID, lambda m: "forgot" in str(m["text"]))
        fake_telegram.send_text(FRIEND, "hello again")
        await fake_telegram.wait_for_message(ALLOWED_ID, lambda m: "again" in str(m["text"]))
        after_reset = [m["content"] for m in engine.histories[-1] if m["role"] != "system"]
        release.set()
        await importing
        await settle(app, fake_telegram)
        turns = await recent_clone_turns(services.db, ALLOWED_ID, limit=10)
    assert after_reset == ["hello again"]
    assert [t.text for t in turns] == ["hello again", "re: hello again"]


async def test_the_owner_marks_and_fixes_a_reply_stored_behind_an_import(
    settings: Settings, fake_telegram: FakeTelegramServer
) -> None:
    """The reply's exchange waits behind the import; a reaction and a /fix that come at once
    wait for it too, instead of finding no clone reply."""
    engine = ScriptedEngine()
    async with running_clone(settings, lambda _: engine) as app:
        services = _services(app)
        importing, release = await _import_held(services)
        fake_telegram.send_text(OWNER, "what do you think")
        reply = await fake_telegram.wait_for_message(
            OWNER_ID, lambda m: "what do you think" in str(m["text"])
        )
        owner_chat = builders.private_chat(OWNER)
        fake_telegram.push_update(
            builders.message_reaction_update(owner_chat, OWNER, int(reply["message_id"]), ["👍"])
        )
        fake_telegram.push_update(
            builders.command_update(owner_chat, OWNER, "/fix I think so", reply_to=reply)
        )
        await asyncio.sleep(0.5)
        answered_during = _texts(fake_telegram, OWNER_ID)[1:]
        release.set()
        await importing
        await fake_telegram.wait_for_message(OWNER_ID, lambda m: m["text"] == NOTED)
        await settle(app, fake_telegram)
        labels = await count_labels(services.db)
        corrections = await count_corrections(services.db)
    assert answered_during == [], "both waited for the reply to be stored"
    assert labels == {"good": 1, "bad": 0}
    assert corrections == 1
    assert NOT_A_CLONE_MESSAGE not in _texts(fake_telegram, OWNER_ID)
