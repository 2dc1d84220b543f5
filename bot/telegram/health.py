"""A liveness endpoint for containers: ``GET /health`` served inside the bot's event loop.

A heartbeat task wakes every ``beat_seconds`` and measures how late it woke (the loop lag).
``/health`` answers 200 with ``{"status": "ok", "loop_lag_ms": ..., "adapter": ...}`` while
the application runs and the last heartbeat is at most ``stale_seconds`` old, 503 otherwise.
A loop that is blocked outright cannot answer at all, and the container's health check
times out, which counts as unhealthy too. Plain ``asyncio.start_server``: no web framework.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

HEALTH_PATH = "/health"
BEAT_SECONDS = 1.0
STALE_SECONDS = 10.0
READ_TIMEOUT_SECONDS = 5.0

REASONS = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"}


class HealthServer:
    """Serves ``GET /health`` on ``host:port`` while started.

    Args:
        is_running: whether the bot is up (the PTB application's ``running``).
        adapter: the adapter the engine serves, or None.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        is_running: Callable[[], bool],
        adapter: Callable[[], Path | None],
        beat_seconds: float = BEAT_SECONDS,
        stale_seconds: float = STALE_SECONDS,
    ) -> None:
        self._host = host
        self._port = port
        self._is_running = is_running
        self._adapter = adapter
        self._beat_seconds = beat_seconds
        self._stale_seconds = stale_seconds
        self._server: asyncio.Server | None = None
        self._heartbeat: asyncio.Task[None] | None = None
        self._last_beat = 0.0
        self._lag = 0.0

    @property
    def port(self) -> int:
        """The bound port (the real one when started with port 0)."""
        if self._server is None or not self._server.sockets:
            return self._port
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        """Bind the port and start the heartbeat."""
        loop = asyncio.get_running_loop()
        self._last_beat = loop.time()
        self._heartbeat = loop.create_task(self._beat())
        self._server = await asyncio.start_server(self._handle, self._host, self._port)
        logger.info("liveness endpoint on %s:%s%s", self._host, self.port, HEALTH_PATH)

    async def close(self) -> None:
        """Stop serving and stop the heartbeat."""
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat
            self._heartbeat = None
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    def report(self) -> tuple[int, dict[str, Any]]:
        """The status code and JSON body ``/health`` answers with now."""
        since_beat = asyncio.get_running_loop().time() - self._last_beat
        running = self._is_running()
        fresh = since_beat <= self._stale_seconds
        adapter = self._adapter()
        body: dict[str, Any] = {
            "status": "ok" if running and fresh else ("stalled" if running else "stopped"),
            "loop_lag_ms": round(max(self._lag, since_beat - self._beat_seconds, 0.0) * 1000, 1),
            "adapter": adapter.name if adapter is not None else None,
        }
        return (200 if running and fresh else 503), body

    async def _beat(self) -> None:
        # A sleep loop on purpose: how late it wakes up is the measurement.
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(self._beat_seconds)
            now = loop.time()
            self._lag = max(0.0, now - before - self._beat_seconds)
            self._last_beat = now

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(
                reader.readuntil(b"\r\n\r\n"), timeout=READ_TIMEOUT_SECONDS
            )
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            writer.close()
            return
        request_line = head.split(b"\r\n", 1)[0].decode("latin-1")
        parts = request_line.split()
        method, path = (parts[0], parts[1].split("?", 1)[0]) if len(parts) >= 2 else ("", "")
        body: dict[str, Any]
        if path != HEALTH_PATH:
            status, body = 404, {"error": "not found; try GET /health"}
        elif method not in ("GET", "HEAD"):
            status, body = 405, {"error": "use GET"}
        else:
            status, body = self.report()
        payload = json.dumps(body).encode()
        header = (
            f"HTTP/1.1 {status} {REASONS[status]}\r\n"
            "Content-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\n"
            "Connection: close\r\n\r\n"
        ).encode()
        writer.write(header if method == "HEAD" else header + payload)
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
