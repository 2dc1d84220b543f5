"""The fake Bot API server, driven by the real PTB 22.8 ``Application`` over real HTTP."""

from __future__ import annotations

import asyncio
import hashlib
import socket
import threading
import time
from collections.abc import AsyncIterator

import httpx
import pytest
from telegram import BotCommand, Update
from telegram.error import BadRequest, InvalidToken, RetryAfter
from telegram.ext import (
    Application,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    TypeHandler,
    filters,
)

from tests.fake_telegram import FakeTelegramServer, builders
from tests.fake_telegram.arrivals import SO_TIMESTAMPNS
from tests.fake_telegram.fixtures import (
    AnyApplication,
    application_builder,
    fake_telegram,
    running_app,
    start_polling,
    stop_polling,
)

__all__ = ["fake_telegram", "running_app"]  # fixtures, used by name below

OWNER = builders.user(1001, "Ada", "ada")
FRIEND = builders.user(1002, "Bob")

App = AnyApplication


async def echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """The user gets their own text back."""
    assert update.effective_message is not None and update.effective_message.text is not None
    await update.effective_message.reply_text(f"echo: {update.effective_message.text}")


async def retrain(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """The user gets the arguments of /retrain back."""
    assert update.effective_message is not None
    await update.effective_message.reply_text(f"retrain {' '.join(context.args or [])}")


async def progress(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """The user sees a status message that is then edited to its final text."""
    assert update.effective_message is not None
    status = await update.effective_message.reply_text("working…")
    await status.edit_text("done")


async def receive_document(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """The user gets the size and SHA-256 of the document they sent."""
    message = update.effective_message
    assert message is not None and message.document is not None
    await context.bot.send_chat_action(message.chat_id, "typing")
    data = await (await context.bot.get_file(message.document.file_id)).download_as_bytearray()
    digest = hashlib.sha256(data).hexdigest()
    await message.reply_text(f"{len(data)} bytes {digest}")


def build_app(server: FakeTelegramServer) -> App:
    """A small bot with one handler of each kind the tests exercise."""
    app = application_builder(server).build()
    app.add_handler(CommandHandler("retrain", retrain))
    app.add_handler(CommandHandler("progress", progress))
    app.add_handler(MessageHandler(filters.Document.ALL, receive_document))
    app.add_handler(MessageHandler(filters.TEXT & ~filters.COMMAND, echo))
    return app


@pytest.fixture
async def app(fake_telegram: FakeTelegramServer) -> AsyncIterator[App]:
    """The small bot, polling the fake server."""
    application = build_app(fake_telegram)
    await start_polling(application)
    try:
        yield application
    finally:
        await stop_polling(application)


async def test_echo_round_trip(fake_telegram: FakeTelegramServer, app: App) -> None:
    fake_telegram.send_text(OWNER, "hello there")

    reply = await fake_telegram.wait_for_message(OWNER["id"], timeout=5)

    assert reply["text"] == "echo: hello there"
    assert reply["from"]["id"] == fake_telegram.bot_user["id"]
    assert reply["chat"] == builders.private_chat(OWNER)
    assert reply["message_id"] == 2  # the user's message was 1: one sequence per chat


async def test_command_with_arguments_in_a_group(
    fake_telegram: FakeTelegramServer, app: App
) -> None:
    group = builders.group_chat(-100123, "Friends")
    fake_telegram.send_command(FRIEND, "/retrain 3 epochs", chat=group)

    reply = await fake_telegram.wait_for_message(group["id"], timeout=5)

    assert reply["text"] == "retrain 3 epochs"
    assert reply["chat"]["type"] == "supergroup"


async def test_document_is_downloaded_through_get_file(
    fake_telegram: FakeTelegramServer, app: App
) -> None:
    content = bytes(range(256)) * 1000
    fake_telegram.send_document(OWNER, content, "export.json", mime_type="application/json")

    reply = await fake_telegram.wait_for_message(OWNER["id"], timeout=5)

    assert reply["text"] == f"{len(content)} bytes {hashlib.sha256(content).hexdigest()}"
    assert [p["action"] for p in fake_telegram.calls_to("sendChatAction")] == ["typing"]
    assert fake_telegram.calls_to("getFile")[0]["file_id"].startswith("FAKE-FILE-")


async def test_edit_is_applied_to_sent_messages(
    fake_telegram: FakeTelegramServer, app: App
) -> None:
    fake_telegram.send_command(OWNER, "/progress")

    first = await fake_telegram.wait_for_message(OWNER["id"], timeout=5)
    second = await fake_telegram.wait_for_message(OWNER["id"], timeout=5)

    assert (first["text"], "edit_date" in first) == ("working…", False)
    assert (second["text"], second["message_id"]) == ("done", first["message_id"])
    assert [m["text"] for m in fake_telegram.sent_messages(OWNER["id"])] == ["done"]


async def test_wait_for_message_times_out_with_a_summary(
    fake_telegram: FakeTelegramServer, app: App
) -> None:
    fake_telegram.send_text(OWNER, "ping")

    with pytest.raises(AssertionError, match="echo: ping"):
        await fake_telegram.wait_for_message(
            OWNER["id"], lambda m: m.get("text") == "never", timeout=0.5
        )


async def test_set_my_commands_is_recorded(fake_telegram: FakeTelegramServer, app: App) -> None:
    commands = [BotCommand("retrain", "Train the clone again"), BotCommand("help", "Help")]

    assert await app.bot.set_my_commands(commands)

    assert fake_telegram.my_commands() == [c.to_dict() for c in commands]
    assert await app.bot.get_my_commands() == tuple(commands)
    assert fake_telegram.calls_to("setMyCommands")[0]["commands"][0]["command"] == "retrain"
    with pytest.raises(BadRequest, match="Bot_command_invalid"):
        await app.bot.set_my_commands([BotCommand("Bad-Name", "x")])


async def test_long_poll_answers_as_soon_as_an_update_arrives(
    fake_telegram: FakeTelegramServer,
) -> None:
    application = build_app(fake_telegram)
    await application.initialize()
    await application.start()
    assert application.updater is not None
    await application.updater.start_polling(poll_interval=0, timeout=10)
    try:
        polls = await fake_telegram.wait_until(lambda: fake_telegram.calls_to("getUpdates"))
        await asyncio.sleep(0.2)  # the first long poll is now parked on the server
        assert len(fake_telegram.calls_to("getUpdates")) == len(polls)

        started = time.monotonic()
        fake_telegram.send_text(OWNER, "quick")
        await fake_telegram.wait_for_message(OWNER["id"], timeout=5)

        assert time.monotonic() - started < 1.0
    finally:
        await stop_polling(application)


async def test_stop_confirms_updates_and_leaves_no_threads() -> None:
    threads_before = set(threading.enumerate())
    with FakeTelegramServer() as server:
        application = build_app(server)
        await start_polling(application)
        ids = [server.send_text(OWNER, f"message {n}") for n in range(3)]
        await server.wait_until(lambda: len(server.sent_messages()) == 3, timeout=5)
        started = time.monotonic()
        await stop_polling(application)

        assert time.monotonic() - started < 2.0
        assert server.updates_confirmed() == ids
        assert server.pending_updates() == []
    assert not server.running
    assert set(threading.enumerate()) - threads_before == set()


async def test_file_above_the_download_limit_is_a_bad_request(
    fake_telegram: FakeTelegramServer, app: App
) -> None:
    big = fake_telegram.register_file(b"\0" * (20 * 1024 * 1024 + 1), "big.zip")
    small = fake_telegram.register_file(b"\0" * (20 * 1024 * 1024), "small.zip")

    with pytest.raises(BadRequest, match="File is too big"):
        await app.bot.get_file(big)
    assert (await app.bot.get_file(small)).file_size == 20 * 1024 * 1024
    with pytest.raises(BadRequest, match="Invalid file_id"):
        await app.bot.get_file("no-such-file")


async def test_editing_an_unknown_message_is_a_bad_request(
    fake_telegram: FakeTelegramServer, app: App
) -> None:
    with pytest.raises(BadRequest, match="Message to edit not found"):
        await app.bot.edit_message_text("x", chat_id=OWNER["id"], message_id=99)
    sent = await app.bot.send_message(OWNER["id"], "same")
    with pytest.raises(BadRequest, match="Message is not modified"):
        await sent.edit_text("same")


# PTB 22.x warns from inside RetryAfter that retry_after will become a timedelta.
@pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")
async def test_injected_flood_error_raises_retry_after(
    fake_telegram: FakeTelegramServer, app: App
) -> None:
    fake_telegram.fail_next("sendMessage", 429, "Too Many Requests: retry after 3", retry_after=3)

    with pytest.raises(RetryAfter, match="Retry in 3"):
        await app.bot.send_message(OWNER["id"], "first")
    assert (await app.bot.send_message(OWNER["id"], "second")).text == "second"


async def test_uploads_and_unknown_methods_are_recorded(
    fake_telegram: FakeTelegramServer, app: App
) -> None:
    sent = await app.bot.send_document(
        OWNER["id"], b"adapter bytes", filename="clone.json", caption="your clone"
    )
    assert await app.bot.set_my_description("A clone")

    assert sent.document is not None and sent.caption == "your clone"
    assert sent.document.file_name == "clone.json"
    assert fake_telegram.file_content(sent.document.file_id) == b"adapter bytes"
    assert fake_telegram.calls_to("setMyDescription") == [{"description": "A clone"}]
    assert fake_telegram.sent_messages(OWNER["id"])[-1]["caption"] == "your clone"


async def test_reply_keeps_replied_message_and_string_params(
    fake_telegram: FakeTelegramServer, app: App
) -> None:
    fake_telegram.send_text(OWNER, "42")

    reply = await fake_telegram.wait_for_message(OWNER["id"], timeout=5)

    assert reply["text"] == "echo: 42"
    quoted = await app.bot.send_message(OWNER["id"], "true", reply_to_message_id=1)
    assert quoted.text == "true"
    assert quoted.reply_to_message is not None and quoted.reply_to_message.text == "42"


async def test_wrong_token_is_refused(fake_telegram: FakeTelegramServer) -> None:
    application = (
        Application.builder()
        .token("999:WRONG")
        .base_url(f"{fake_telegram.url}/bot")
        .base_file_url(f"{fake_telegram.url}/file/bot")
        .build()
    )
    with pytest.raises(InvalidToken):
        await application.initialize()


async def test_running_app_fixture_takes_handlers_after_start(
    fake_telegram: FakeTelegramServer, running_app: App
) -> None:
    running_app.add_handler(MessageHandler(filters.TEXT, echo))
    fake_telegram.send_text(FRIEND, "late handler")

    reply = await fake_telegram.wait_for_message(FRIEND["id"], timeout=5)

    assert reply["text"] == "echo: late handler"


def test_json_and_get_requests_are_understood(fake_telegram: FakeTelegramServer) -> None:
    base = f"{fake_telegram.url}/bot{fake_telegram.token}"
    as_json = httpx.post(f"{base}/sendMessage", json={"chat_id": 5, "text": "12"}).json()
    as_query = httpx.get(f"{base}/getMe").json()
    missing = httpx.post(f"{base}/sendMessage", json={"text": "x"})

    assert fake_telegram.wait_for(lambda: fake_telegram.sent_messages(5), timeout=1)
    assert as_json["result"]["text"] == "12" and as_json["result"]["chat"]["id"] == 5
    assert as_query["result"]["username"] == "tgclone_test_bot"
    assert missing.status_code == 400
    assert missing.json()["description"] == "Bad Request: chat_id is empty"


def test_kept_alive_connections_serve_many_requests_and_close_quickly() -> None:
    threads_before = set(threading.enumerate())
    with FakeTelegramServer(keep_alive=True) as server:
        peers: set[object] = set()
        with httpx.Client(base_url=f"{server.url}/bot{server.token}") as client:
            for _ in range(3):
                response = client.post("/getMe")
                assert response.json()["result"]["username"] == "tgclone_test_bot"
                assert response.http_version == "HTTP/1.1"
                peers.add(response.extensions["network_stream"].get_extra_info("client_addr"))
            assert len(peers) == 1  # one connection carried all three
            started = time.monotonic()
            server.stop()  # the client still holds its idle connection open
            assert time.monotonic() - started < 2.0
    assert set(threading.enumerate()) - threads_before == set()


def _post_slowly(sock: socket.socket, token: str, text: str, pause: float) -> float:
    """Send a sendMessage request's head, then after `pause` its body; when it began."""
    body = f"chat_id=5&text={text}".encode()
    head = (
        f"POST /bot{token}/sendMessage HTTP/1.1\r\nHost: fake\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    began = time.monotonic()
    sock.sendall(head)
    time.sleep(pause)
    sock.sendall(body)
    response = b""
    while not response.endswith(b"}"):  # the JSON body ends the response
        response += sock.recv(65536)
    assert response.startswith(b"HTTP/1.1 200")
    return began


@pytest.mark.skipif(SO_TIMESTAMPNS is None, reason="kernel receive timestamps are Linux's")
def test_a_call_is_timed_by_its_first_byte_reaching_the_server() -> None:
    # The latency benchmark's clock: when the bytes arrived, not when a handler thread (which
    # waits for the body here, and under load for the interpreter) got to the request.
    with FakeTelegramServer(keep_alive=True) as server:
        host, port = server.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port))) as sock:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            began = [_post_slowly(sock, server.token, text, 0.3) for text in ("one", "two")]
        arrived = server.timed_calls("sendMessage")
        handled = server.timed_calls("sendMessage", handled=True)

    assert [params["text"] for _, _, params in arrived] == ["one", "two"]
    for start, (arrival, _, _), (handling, _, _) in zip(began, arrived, handled, strict=True):
        assert start - 0.005 <= arrival < start + 0.1  # the second call has its own stamp
        assert handling >= start + 0.3


async def test_reactions_arrive_only_when_the_bot_asks_for_them(
    fake_telegram: FakeTelegramServer,
) -> None:
    """As on Telegram: message_reaction is not in the default set of update types."""
    seen: list[Update] = []

    async def collect(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        seen.append(update)

    chat = builders.private_chat(OWNER)
    default = application_builder(fake_telegram).build()
    default.add_handler(TypeHandler(Update, collect))
    await start_polling(default)
    try:
        fake_telegram.push_update(builders.message_reaction_update(chat, OWNER, 1, ["👍"]))
        fake_telegram.send_text(OWNER, "hi")
        await fake_telegram.wait_until(lambda: len(seen) == 1)
        assert seen[0].message is not None
    finally:
        await stop_polling(default)
    asking = application_builder(fake_telegram).build()
    asking.add_handler(TypeHandler(Update, collect))
    await asking.initialize()
    assert asking.updater is not None
    await asking.updater.start_polling(
        poll_interval=0, timeout=1, allowed_updates=["message", "message_reaction"]
    )
    await asking.start()
    try:
        # The choice holds from the first getUpdates that makes it.
        await fake_telegram.wait_until(
            lambda: any("allowed_updates" in c for c in fake_telegram.calls_to("getUpdates"))
        )
        fake_telegram.push_update(builders.message_reaction_update(chat, OWNER, 1, ["🔥"], ["👍"]))
        await fake_telegram.wait_until(lambda: len(seen) == 2)
    finally:
        await stop_polling(asking)
    reaction = seen[1].message_reaction
    assert reaction is not None and reaction.user is not None and reaction.user.id == OWNER["id"]
    assert [r.emoji for r in reaction.new_reaction] == ["🔥"]  # type: ignore[union-attr]
    assert [r.emoji for r in reaction.old_reaction] == ["👍"]  # type: ignore[union-attr]
