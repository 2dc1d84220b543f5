"""The HTTP side of the fake: Bot API routes on a stdlib threading server.

Routes, as PTB composes them from ``base_url``/``base_file_url`` plus the token:

* ``POST|GET /bot<token>/<method>``: a Bot API call, answered with ``{"ok": ..., ...}`` and the
  HTTP status equal to ``error_code``, as Telegram does.
* ``GET /file/bot<token>/<file_path>``: the bytes of a stored file.

Each connection gets its own thread, so a long-polling ``getUpdates`` never blocks other calls.
Responses are HTTP/1.0 by default (one request per connection): no idle keep-alive thread
outlives a call. With ``keep_alive`` they are HTTP/1.1 and a connection serves request after
request, as Telegram's servers do (the latency benchmark: a new connection and thread per
request cost more than the bot's own work); :meth:`BotApiHttpServer.close` then shuts the
open connections down so that their threads end.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from tests.fake_telegram import methods
from tests.fake_telegram.arrivals import ArrivalStampedSocketIO, stamp_arrivals
from tests.fake_telegram.state import ApiError, BotState
from tests.fake_telegram.wire import (
    JSONDict,
    decode_form,
    error,
    ok,
    parse_body,
    resolve_attachments,
)

logger = logging.getLogger(__name__)


class BotApiHttpServer(ThreadingHTTPServer):
    """A threading HTTP server that knows the bot's token and the shared state."""

    daemon_threads = True  # a wedged handler must never keep the interpreter alive
    # The bot opens many connections at once (concurrent updates); socketserver's backlog
    # of 5 makes the kernel reset the rest, which the bot sees as httpx.ReadError. The
    # latency benchmark opens hundreds at once.
    request_queue_size = 1024

    def __init__(self, state: BotState, token: str, *, keep_alive: bool = False) -> None:
        super().__init__(("127.0.0.1", 0), KeepAliveHandler if keep_alive else BotApiHandler)
        self.state = state
        self.token = token
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()
        self._handlers: list[threading.Thread] = []
        self._connections_lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        # ThreadingMixIn's, with the thread kept: socketserver does not track daemon threads,
        # so its server_close() would not join them.
        thread = threading.Thread(
            target=self.process_request_thread, args=(request, client_address), daemon=True
        )
        with self._connections_lock:
            self._connections.add(request)
            self._handlers = [handler for handler in self._handlers if handler.is_alive()]
            self._handlers.append(thread)
        thread.start()

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``, without a trailing slash."""
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"

    def start_in_thread(self) -> None:
        """Serve requests from a background thread."""
        self._thread = threading.Thread(
            target=self.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"fake-telegram-{self.server_address[1]}",
            daemon=True,
        )
        self._thread.start()

    def close(self, timeout: float = 5.0) -> None:
        """Wake long polls, stop serving and join every thread the server started."""
        self.state.stop()
        if self._thread is not None:
            self.shutdown()
            self._thread.join(timeout)
            if self._thread.is_alive():
                raise RuntimeError("the fake Telegram server thread did not stop")
            self._thread = None
        with self._connections_lock:
            open_connections = list(self._connections)
        for connection in open_connections:  # a kept-alive connection's thread waits to read
            with contextlib.suppress(OSError):  # already closed by the client
                connection.shutdown(socket.SHUT_RDWR)
        with self._connections_lock:
            handlers, self._handlers = self._handlers, []
        deadline = time.monotonic() + timeout
        for handler in handlers:
            handler.join(max(0.0, deadline - time.monotonic()))
        self.server_close()

    @property
    def thread(self) -> threading.Thread | None:
        """The serving thread while running."""
        return self._thread


class BotApiHandler(BaseHTTPRequestHandler):
    """Routes one request to a Bot API method or a file download."""

    server: BotApiHttpServer
    protocol_version = "HTTP/1.0"
    # Headers and body leave in two writes; with Nagle's algorithm the body waits for the
    # client's delayed ACK of the headers (40 ms on Linux), as no real Bot API server does.
    disable_nagle_algorithm = True
    timeout = 10  # seconds a client may take to send its request
    arrived_at: float | None = None  # the current request's arrival (see arrivals)
    _arrivals: ArrivalStampedSocketIO | None = None

    def setup(self) -> None:
        super().setup()
        if stamp_arrivals(self.connection):
            self._arrivals = ArrivalStampedSocketIO(self.connection)
            self.rfile = io.BufferedReader(self._arrivals)

    def parse_request(self) -> bool:
        # Called right after the request line is read: its bytes came with the latest read.
        self.arrived_at = self._arrivals.arrived_at if self._arrivals is not None else None
        return super().parse_request()

    def do_GET(self) -> None:
        """Bot API calls may use GET with query parameters; file downloads always do."""
        self._route()

    def do_POST(self) -> None:
        """The usual way PTB calls the Bot API."""
        self._route()

    def log_message(self, format: str, *args: Any) -> None:
        """Send access logs to ``logging`` at DEBUG instead of stderr."""
        logger.debug("fake telegram: " + format, *args)

    def _route(self) -> None:
        parts = urlsplit(self.path)
        path = unquote(parts.path)
        file_prefix = f"/file/bot{self.server.token}/"
        api_prefix = f"/bot{self.server.token}/"
        if path.startswith(file_prefix):
            self._serve_file(path.removeprefix(file_prefix))
        elif path.startswith(api_prefix) and path.removeprefix(api_prefix):
            self._serve_method(path.removeprefix(api_prefix), parts.query)
        elif path.startswith(("/bot", "/file/bot")):
            self._send_json(401, error(401, "Unauthorized"))
        else:
            self._send_json(404, error(404, "Not Found"))

    def _serve_method(self, method: str, query: str) -> None:
        try:
            params = decode_form(parse_qsl(query, keep_blank_values=True))
            params.update(parse_body(self.headers.get("Content-Type", ""), self._read_body()))
            params = resolve_attachments(params)
        except ValueError as exc:
            self._send_json(400, error(400, f"Bad Request: can't parse request: {exc}"))
            return
        state = self.server.state
        queued = state.record_call(method, params, self.arrived_at)
        try:
            if queued is not None:
                raise queued
            response = ok(methods.call(state, method, params))
            status = 200
        except ApiError as exc:
            response = error(exc.code, exc.description, exc.retry_after)
            status = exc.code
        self._send_json(status, response)

    def _serve_file(self, file_path: str) -> None:
        stored = self.server.state.file_by_path(file_path)
        if stored is None:
            self._send_json(404, error(404, "Not Found: file not found"))
            return
        self._send(200, stored.content, stored.mime_type)

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _send_json(self, status: int, payload: JSONDict) -> None:
        self._send(status, json.dumps(payload).encode(), "application/json")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            # PTB cancels a long poll when it stops: the client is gone, nothing to answer.
            logger.debug("fake telegram: client went away before the response")


class KeepAliveHandler(BotApiHandler):
    """HTTP/1.1: the connection stays open for the client's next request."""

    protocol_version = "HTTP/1.1"
