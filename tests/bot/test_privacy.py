"""Private data stays private: message text in no log record (any level, any logger) and in no
error note; the bot token in no error text that is logged or sent.

One run drives every path that handles message text with a canary string in it: chats with
the clone (a reply, and one that fails with an error quoting the message), groups (collection,
a mention, an edit), Business chats (both sides, an edit, a deletion, an auto-reply), /fix,
uploads (an export imported, a broken one refused), a stranger.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from telegram.error import NetworkError

from bot.handlers.autoreply import SWITCHED_ON
from bot.handlers.errors import USER_ERROR_TEXT
from bot.handlers.fix import NOTED
from bot.handlers.group_talk import TALK_ON
from bot.process.logs import quiet_libraries, redact_secrets
from bot.settings import Settings
from bot.telegram.http import AiohttpRequest
from storage.db import Database
from storage.importer import import_export
from storage.messages import load_corpus
from tests.bot.conftest import ALLOWED_ID, STRANGER_ID, bot_settings, running_clone, settle
from tests.bot.scripted_engine import ScriptedEngine
from tests.export_factory import OWNER_ID, full_export
from tests.fake_telegram import builders
from tests.fake_telegram.server import FakeTelegramServer
from training.prepare import build_corpus_dataset
from training.settings import PipelineSettings

CANARY = "zebra7731canary"
OWNER = builders.user(OWNER_ID, "Owner")
FRIEND = builders.user(ALLOWED_ID, "Friend")
STRANGER = builders.user(STRANGER_ID, "Stranger")
CONTACT = builders.user(55555555, "Contact")
CONTACT_CHAT = builders.private_chat(CONTACT)
GROUP = builders.group_chat(-1004242, "Friends")
CONNECTION = "biz-1"


def _texts(server: FakeTelegramServer, chat_id: int) -> list[str]:
    return [str(m.get("text", "")) for m in server.sent_messages(chat_id)]


def _with_canary(export: dict[str, Any]) -> bytes:
    """The export with the canary in every message's text."""
    for chat in export["chats"]["list"]:
        for message in chat["messages"]:
            if isinstance(message.get("text"), str) and message["text"]:
                message["text"] = f"{message['text']} {CANARY}"
    return json.dumps(export, ensure_ascii=False).encode()


def _biz(text: str, message_id: int, sender: dict[str, Any], **kw: Any) -> dict[str, Any]:
    return builders.business_message_update(
        CONNECTION, CONTACT_CHAT, sender, text, message_id, **kw
    )


async def _drive_every_text_path(app: Any, server: FakeTelegramServer, engine: Any) -> None:
    # A chat with the clone: a reply, then a reply that fails quoting the message.
    server.send_text(FRIEND, f"hello {CANARY}")
    await server.wait_for_message(ALLOWED_ID, lambda m: CANARY in str(m["text"]))
    engine.fail = True
    server.send_text(FRIEND, f"and {CANARY} again")
    await server.wait_for_message(ALLOWED_ID, lambda m: m["text"] == USER_ERROR_TEXT)
    await server.wait_for_message(OWNER_ID, lambda m: "hit an error" in str(m["text"]))
    engine.fail = False
    # /fix of the clone's reply to the owner.
    server.send_text(OWNER, f"owner says {CANARY}")
    reply = await server.wait_for_message(OWNER_ID, lambda m: "owner says" in str(m["text"]))
    owner_chat = builders.private_chat(OWNER)
    server.push_update(
        builders.command_update(owner_chat, OWNER, f"/fix better {CANARY}", reply_to=reply)
    )
    await server.wait_for_message(OWNER_ID, lambda m: m["text"] == NOTED)
    # Groups: collected, talked in, edited.
    server.send_command(OWNER, "/collect on", chat=GROUP)
    server.send_command(OWNER, "/talk on", chat=GROUP)
    await server.wait_for_message(GROUP["id"], lambda m: m["text"] == TALK_ON)
    server.send_text(FRIEND, f"group chatter {CANARY}", chat=GROUP)
    bot = server.bot_user
    server.push_update(
        builders.mention_update(GROUP, FRIEND, f"@{bot['username']} hi {CANARY}", bot)
    )
    await server.wait_for_message(GROUP["id"], lambda m: CANARY in str(m["text"]))
    server.push_update(builders.edited_message_update(GROUP, FRIEND, f"edited {CANARY}", 1))
    # Business chats: both sides, an edit, a deletion, an auto-reply.
    server.push_update({"business_connection": builders.business_connection(CONNECTION, OWNER)})
    await server.wait_for_message(OWNER_ID, lambda m: "Business" in str(m["text"]))
    server.send_command(OWNER, "/autoreply on")
    await server.wait_for_message(OWNER_ID, lambda m: m["text"] == SWITCHED_ON)
    server.push_update(_biz(f"are you free {CANARY}", 10, CONTACT))
    server.push_update(_biz(f"owner's own words {CANARY}", 11, OWNER))
    server.push_update(_biz(f"edited words {CANARY}", 11, OWNER, edited=True))
    server.push_update(_biz(f"one more {CANARY}", 12, CONTACT))
    await server.wait_until(
        lambda: [p for p in server.calls_to("sendMessage") if p.get("business_connection_id")],
        timeout=30,
    )
    server.push_update(builders.deleted_business_messages_update(CONNECTION, CONTACT_CHAT, [10]))
    # Uploads: one imported, one refused.
    export = _with_canary(full_export(conversations=3))
    server.send_document(OWNER, export, "result.json")
    await server.wait_for_message(OWNER_ID, lambda m: str(m["text"]).startswith("Import finished"))
    server.send_document(OWNER, export[: len(export) // 2], "result.json")
    await server.wait_for_message(OWNER_ID, lambda m: str(m["text"]).startswith("Nothing was"))
    # A stranger.
    server.send_text(STRANGER, f"let me in {CANARY}")
    await server.wait_for_message(STRANGER_ID)
    await settle(app, server)


async def test_message_text_reaches_no_log_record_and_no_error_note(
    settings: Settings, fake_telegram: FakeTelegramServer, caplog: pytest.LogCaptureFixture
) -> None:
    quiet_libraries()  # the library levels the bot's command line sets
    caplog.set_level(logging.DEBUG)  # every record of ours, at every level
    engine = ScriptedEngine()
    async with running_clone(settings, lambda _: engine) as app:
        await _drive_every_text_path(app, fake_telegram, engine)
    records = _bot_records(caplog)
    assert len(records) > 5, "the run logged (the check below is not vacuous)"
    assert any("Traceback" in r.getMessage() for r in records), "tracebacks were logged"
    leaking = [r for r in records if CANARY in _formatted(r)]
    assert not leaking, [f"{r.name}: {r.getMessage()[:80]}" for r in leaking]
    notes = [t for t in _texts(fake_telegram, OWNER_ID) if "hit an error" in t]
    assert notes and not [t for t in notes if CANARY in t]
    assert [t for t in _texts(fake_telegram, ALLOWED_ID) if t == USER_ERROR_TEXT]


def _bot_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """Every record but those of the test's servers (the fake Bot API, the redirect loop)."""
    return [r for r in caplog.records if not r.name.startswith(("tests.", "aiohttp.access"))]


def _formatted(record: logging.LogRecord) -> str:
    """The record as a handler writes it, its traceback included."""
    return logging.Formatter("%(name)s %(message)s").format(record)


@pytest.fixture
async def redirect_loop() -> AsyncIterator[str]:
    """An HTTP server that answers every request with a redirect to itself."""

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound(str(request.url))

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", redirect)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def _texts_of(error: BaseException | None) -> str:
    """The error and every error it chains, as a traceback prints them."""
    texts = []
    while error is not None:
        texts.append(f"{type(error).__name__}: {error!s} {error!r}")
        error = error.__cause__ or (None if error.__suppress_context__ else error.__context__)
    return "\n".join(texts)


async def test_an_error_quoting_a_bot_api_url_holds_no_token(redirect_loop: str) -> None:
    token = "123456:SECRET-token-value"
    request = AiohttpRequest()
    await request.initialize()
    try:
        with pytest.raises(NetworkError) as raised:
            await request.do_request(f"{redirect_loop}/bot{token}/getMe", "POST")
    finally:
        await request.shutdown()
    assert "TooManyRedirects" in str(raised.value)
    assert token not in _texts_of(raised.value)


async def test_a_failed_download_tells_the_owner_and_the_log_without_the_token(
    fake_telegram: FakeTelegramServer,
    tmp_path: Path,
    redirect_loop: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    quiet_libraries()
    settings = bot_settings(
        fake_telegram, tmp_path / "data", telegram_file_base_url=f"{redirect_loop}/file/bot"
    )
    export = json.dumps(full_export(conversations=3)).encode()
    async with running_clone(settings, lambda _: ScriptedEngine()) as app:
        fake_telegram.send_document(OWNER, export, "result.json")
        note = await fake_telegram.wait_for_message(
            OWNER_ID, lambda m: "hit an error" in str(m["text"]), timeout=30
        )
        await settle(app, fake_telegram)
        await asyncio.sleep(0)
    assert "NetworkError" in note["text"] and "TooManyRedirects" in note["text"]
    assert fake_telegram.token not in note["text"]
    logged = "\n".join(_formatted(r) for r in _bot_records(caplog))
    assert "NetworkError" in logged, "the error was logged"
    assert fake_telegram.token not in logged
    assert not list(settings.uploads_dir.iterdir())


FORWARDED = "somebody else's words about the weekend trip"


async def test_what_the_owner_forwards_never_becomes_the_owners_turn_in_an_export(
    tmp_path: Path,
) -> None:
    export = full_export(conversations=8)
    messages = export["chats"]["list"][0]["messages"]
    owner_replies = [m for m in messages if m.get("from_id") == f"user{OWNER_ID}"]
    for message in owner_replies[2:4]:
        message["text"] = FORWARDED
        message["text_entities"] = [{"type": "plain", "text": FORWARDED}]
        message["forwarded_from"] = "Some Channel"
    path = tmp_path / "result.json"
    path.write_text(json.dumps(export, ensure_ascii=False), "utf-8")
    settings = PipelineSettings(_env_file=None, data_dir=tmp_path / "data")  # type: ignore[call-arg]
    db = await Database.open(settings.database_path)
    try:
        await import_export(db, path)
        stored = [m for m in await load_corpus(db) if m.text == FORWARDED]
        build = await build_corpus_dataset(db, settings)
    finally:
        await db.close()
    assert len(stored) == 2 and all(m.is_owner and m.forwarded_from for m in stored)
    samples = [*build.train, *build.eval]
    assert sum(m["role"] == "assistant" for s in samples for m in s) > 5, "owner turns exist"
    assert not [m for s in samples for m in s if FORWARDED in str(m["content"])]


async def test_what_the_owner_forwards_never_becomes_the_owners_turn_live(
    settings: Settings, fake_telegram: FakeTelegramServer
) -> None:
    engine = ScriptedEngine()
    origin = {"type": "user", "date": 1_700_000_000, "sender_user": STRANGER}
    forwarded = builders.message(
        CONTACT_CHAT,
        OWNER,
        text=FORWARDED,
        message_id=21,
        business_connection_id=CONNECTION,
        forward_origin=origin,
    )
    async with running_clone(settings, lambda _: engine) as app:
        server = fake_telegram
        server.push_update(
            {"business_connection": builders.business_connection(CONNECTION, OWNER)}
        )
        await server.wait_for_message(OWNER_ID, lambda m: "Business" in str(m["text"]))
        server.send_command(OWNER, "/autoreply on")
        await server.wait_for_message(OWNER_ID, lambda m: m["text"] == SWITCHED_ON)
        server.push_update(_biz("what did they say?", 20, CONTACT))
        server.push_update({"business_message": forwarded})
        server.push_update(_biz("and what do you think?", 22, CONTACT))
        await server.wait_until(
            lambda: [p for p in server.calls_to("sendMessage") if p.get("business_connection_id")],
            timeout=30,
        )
        await settle(app, server)
        stored = {m.message_id: m for m in await load_corpus(app.bot_data["services"].db)}
    assert stored[21].is_owner and stored[21].forwarded_from == "Stranger"
    [history] = engine.histories
    assert history[-1] == {"role": "user", "content": "what did they say?\nand what do you think?"}
    assert not [m for m in history if FORWARDED in str(m["content"])]


async def test_the_error_handler_takes_the_token_out_of_what_it_logs_and_sends(
    settings: Settings, fake_telegram: FakeTelegramServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    engine = ScriptedEngine()
    # A Telegram error's text is shown (it comes from the Bot API), and one may quote a URL.
    engine.error = NetworkError(f"request to /bot{fake_telegram.token}/sendMessage failed")
    async with running_clone(settings, lambda _: engine) as app:
        fake_telegram.send_text(FRIEND, "hello")
        note = await fake_telegram.wait_for_message(
            OWNER_ID, lambda m: "hit an error" in str(m["text"]), timeout=30
        )
        await settle(app, fake_telegram)
    logged = "\n".join(_formatted(r) for r in _bot_records(caplog))
    assert "request to /bot<secret>/sendMessage failed" in note["text"]
    assert "request to /bot<secret>/sendMessage failed" in logged
    assert fake_telegram.token not in note["text"] and fake_telegram.token not in logged


def test_every_log_line_and_traceback_is_written_without_the_secrets() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    log = logging.getLogger("tests.redaction")
    log.addHandler(handler)
    try:
        redact_secrets("123:token-value", "", "webhook-secret", handlers=[handler])
        log.error("calling /bot123:token-value/getMe with webhook-secret")
        try:
            raise ValueError("a library quoting https://host/bot123:token-value/x")
        except ValueError:
            log.exception("it failed")
    finally:
        log.removeHandler(handler)
    written = stream.getvalue()
    assert "ERROR calling /bot<secret>/getMe with <secret>" in written
    assert "ValueError: a library quoting https://host/bot<secret>/x" in written
    assert "token-value" not in written and "webhook-secret" not in written
