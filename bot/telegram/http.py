"""The bot's HTTP client for the Bot API: aiohttp behind PTB's ``BaseRequest``.

PTB's default client (httpx) scans its whole connection pool for every request, so its cost
per request grows with the connections a busy bot holds open: with 200 chats answered at
once, most of the event loop went to it. aiohttp keeps idle connections per host in a queue
and parses HTTP in C. Errors map to PTB's as ``HTTPXRequest`` maps them: a timeout is
``TimedOut``, any other failure ``NetworkError``; Telegram's own errors (HTTP status and
body) are left to PTB. The Bot API's URLs carry the bot token (``/bot<token>/method``) and
aiohttp's errors quote them (a redirect, an invalid URL): the error raised here has the token
taken out, and does not chain aiohttp's own.
"""

from __future__ import annotations

import re
from typing import Any

import aiohttp
from telegram.error import NetworkError, TimedOut
from telegram.request import BaseRequest, RequestData

CONNECTIONS = 256
"""Connections to the Bot API open at once (PTB's default for its own client)."""
CONNECT_TIMEOUT_MESSAGE = (
    "Timed out connecting to the Bot API, or waiting for a free connection to it; "
    "the request was not sent."
)


class AiohttpRequest(BaseRequest):
    """One aiohttp session for Bot API calls (PTB makes one for updates, one for the rest).

    Args:
        connections: Most connections open at once; more requests wait up to ``pool_timeout``.
        read_timeout, write_timeout, connect_timeout, pool_timeout: Defaults in seconds, as
            PTB's ``HTTPXRequest`` takes them (None waits forever); uploads get
            ``media_write_timeout`` for sending.
    """

    def __init__(
        self,
        connections: int = CONNECTIONS,
        *,
        read_timeout: float | None = 5.0,
        write_timeout: float | None = 5.0,
        connect_timeout: float | None = 5.0,
        pool_timeout: float | None = 1.0,
        media_write_timeout: float | None = 20.0,
    ) -> None:
        self._connections = connections
        self._read_timeout = read_timeout
        self._write_timeout = write_timeout
        self._connect_timeout = connect_timeout
        self._pool_timeout = pool_timeout
        self._media_write_timeout = media_write_timeout
        self._session: aiohttp.ClientSession | None = None

    @property
    def read_timeout(self) -> float | None:
        return self._read_timeout

    async def initialize(self) -> None:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self._connections, limit_per_host=0)
            self._session = aiohttp.ClientSession(
                connector=connector, headers={"User-Agent": self.USER_AGENT}
            )

    async def shutdown(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: Any = BaseRequest.DEFAULT_NONE,
        write_timeout: Any = BaseRequest.DEFAULT_NONE,
        connect_timeout: Any = BaseRequest.DEFAULT_NONE,
        pool_timeout: Any = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        if self._session is None or self._session.closed:
            raise RuntimeError("AiohttpRequest is not initialized")
        files = request_data is not None and request_data.contains_files
        read = _given(read_timeout, self._read_timeout)
        write = _given(write_timeout, self._media_write_timeout if files else self._write_timeout)
        connect = _given(connect_timeout, self._connect_timeout)
        pool = _given(pool_timeout, self._pool_timeout)
        timeout = aiohttp.ClientTimeout(
            total=_sum(pool, connect, write, read),
            connect=_sum(pool, connect),
            sock_connect=connect,
            sock_read=read,
        )
        try:
            async with self._session.request(
                method,
                url,
                data=_body(request_data),
                timeout=timeout,
                headers=_headers(request_data),
            ) as response:
                return response.status, await response.read()
        except aiohttp.ConnectionTimeoutError:
            raise TimedOut(CONNECT_TIMEOUT_MESSAGE) from None
        except TimeoutError:
            raise TimedOut from None
        except aiohttp.ClientError as error:
            text = without_token(f"aiohttp.{type(error).__name__}: {error}", url)
            raise NetworkError(text) from None


TOKEN_IN_URL = re.compile(r"/bot([^/]+)/")
"""Where a Bot API URL carries the token: ``…/bot<token>/method``, ``…/file/bot<token>/…``."""


def without_token(text: str, url: str) -> str:
    """``text`` with the bot token of ``url`` replaced by ``<token>``."""
    match = TOKEN_IN_URL.search(url)
    return text.replace(match.group(1), "<token>") if match else text


def _given(value: Any, default: float | None) -> float | None:
    """A timeout passed for this call, or the session's default."""
    return default if isinstance(value, type(BaseRequest.DEFAULT_NONE)) else value


def _sum(*timeouts: float | None) -> float | None:
    """The time the phases may take together (None: one of them may take forever).

    aiohttp times the wait for a connection and the connect together, and has no timeout
    for sending: the whole request is bounded by the sum of its phases' timeouts.
    """
    if any(timeout is None for timeout in timeouts):
        return None
    return sum(timeout for timeout in timeouts if timeout is not None)


FORM_HEADERS = {"Content-Type": "application/x-www-form-urlencoded"}


def _headers(request_data: RequestData | None) -> dict[str, str] | None:
    """The content type of a url-encoded form (aiohttp sets multipart's, with the boundary)."""
    if request_data is None or request_data.contains_files:
        return None
    return FORM_HEADERS


def _body(request_data: RequestData | None) -> aiohttp.FormData | bytes | None:
    """The form PTB's default client sends: url-encoded, or multipart with files.

    The url-encoded form is encoded here, as aiohttp would: its FormData makes a multipart
    writer, with a random boundary, for every form, a tenth of a short request's cost.
    """
    if request_data is None:
        return None
    if not request_data.contains_files:
        return request_data.url_encoded_parameters().encode()
    form = aiohttp.FormData(quote_fields=False)
    for name, value in request_data.json_parameters.items():
        form.add_field(name, value)
    for name, (file_name, content, mime_type) in request_data.multipart_data.items():
        form.add_field(name, content, filename=file_name, content_type=mime_type)
    return form
