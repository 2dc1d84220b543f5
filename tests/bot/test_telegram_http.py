"""The aiohttp client under PTB: calls and uploads arrive, failures become PTB's errors."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest
from telegram import Bot
from telegram.error import InvalidToken, NetworkError, TimedOut

from bot.telegram.http import CONNECT_TIMEOUT_MESSAGE, AiohttpRequest
from tests.fake_telegram import builders
from tests.fake_telegram.server import FakeTelegramServer
from tests.fake_telegram.wire import UploadedFile

TOKEN = "123456789:FAKE-token_for-tests"


def bot_at(url: str, request: AiohttpRequest, token: str = TOKEN) -> Bot:
    return Bot(
        token,
        base_url=f"{url}/bot",
        base_file_url=f"{url}/file/bot",
        request=request,
        get_updates_request=AiohttpRequest(connections=1),
    )


@pytest.fixture
async def silent_server() -> AsyncIterator[str]:
    """An HTTP address that accepts connections and reads, but never answers."""
    held: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)
        await reader.read(65536)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_calls_and_uploads_reach_the_bot_api(fake_telegram: FakeTelegramServer) -> None:
    user = builders.user(42, "Ann")
    fake_telegram.send_text(user, "hello")  # the chat must exist for the fake to send to it
    async with bot_at(fake_telegram.url, AiohttpRequest()) as bot:
        assert (await bot.get_me()).username == "tgclone_test_bot"
        sent = await bot.send_message(42, "Привет, мир 👋 & co=1")
        assert sent.text == "Привет, мир 👋 & co=1"
        await bot.send_document(42, b"\x00binary\xff", filename="curve.bin", caption="loss")
    (upload,) = fake_telegram.calls_to("sendDocument")
    assert upload["caption"] == "loss"
    document = upload["document"]
    assert isinstance(document, UploadedFile)
    assert (document.file_name, document.content) == ("curve.bin", b"\x00binary\xff")


async def test_telegram_errors_are_left_to_ptb(fake_telegram: FakeTelegramServer) -> None:
    wrong = "987654321:another-token"
    with pytest.raises(InvalidToken):
        async with bot_at(fake_telegram.url, AiohttpRequest(), token=wrong) as bot:
            await bot.get_me()


async def test_a_refused_connection_is_a_network_error() -> None:
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    request = AiohttpRequest()
    await request.initialize()
    try:
        with pytest.raises(NetworkError, match=r"aiohttp\.ClientConnectorError") as caught:
            await request.post(f"http://127.0.0.1:{port}/bot{TOKEN}/getMe")
        assert not isinstance(caught.value, TimedOut)
    finally:
        await request.shutdown()


async def test_a_server_that_does_not_answer_times_out(silent_server: str) -> None:
    request = AiohttpRequest(read_timeout=0.2)
    await request.initialize()
    try:
        with pytest.raises(TimedOut):
            await request.post(f"{silent_server}/bot{TOKEN}/getMe")
        with pytest.raises(TimedOut):  # a timeout given for one call wins over the default
            await request.post(f"{silent_server}/bot{TOKEN}/getMe", read_timeout=0.05)
    finally:
        await request.shutdown()


async def test_a_request_waiting_for_a_busy_pool_times_out_unsent(silent_server: str) -> None:
    request = AiohttpRequest(1, read_timeout=5, pool_timeout=0.1, connect_timeout=0.1)
    await request.initialize()
    try:
        first = asyncio.create_task(request.post(f"{silent_server}/bot{TOKEN}/getMe"))
        await asyncio.sleep(0.05)  # the only connection is now taken
        with pytest.raises(TimedOut, match="waiting for a free connection"):
            await request.post(f"{silent_server}/bot{TOKEN}/getMe")
        assert CONNECT_TIMEOUT_MESSAGE.startswith("Timed out connecting")
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
    finally:
        await request.shutdown()


async def test_a_request_before_initialize_or_after_shutdown_is_refused() -> None:
    request = AiohttpRequest()
    with pytest.raises(RuntimeError, match="not initialized"):
        await request.do_request("http://127.0.0.1:9/x", "POST")
    await request.initialize()
    await request.shutdown()
    with pytest.raises(RuntimeError, match="not initialized"):
        await request.do_request("http://127.0.0.1:9/x", "POST")
