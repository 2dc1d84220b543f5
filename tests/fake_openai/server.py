"""``FakeOpenAIServer``: the part of vLLM's OpenAI-compatible API that tgclone uses.

A real HTTP server on ``127.0.0.1`` and a free port, served from a thread (like
``tests.fake_telegram``). Routes, under ``/v1``:

* ``POST /completions``: for a loaded LoRA name, streams the scripted completion as server-sent
  events (``data: {...}`` lines, then ``data: [DONE]``); an unknown model is ``404`` as in vLLM.
* ``POST /load_lora_adapter``: ``{"lora_name", "lora_path"}``; ``400`` when the path holds no
  ``adapter_config.json`` or the name is loaded already.
* ``POST /unload_lora_adapter``: ``{"lora_name"}``; ``404`` for an unknown name.

Every request is recorded (:attr:`requests`). :attr:`fail_status` makes every route fail;
:attr:`hold` pauses a stream after its first piece until the test sets it.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Self

JSONDict = dict[str, Any]


class FakeOpenAIServer:
    """An OpenAI-compatible stand-in for vLLM with runtime LoRA loading.

    Args:
        completion: The pieces every completion streams, in order.
        api_key: When set, requests without ``Authorization: Bearer <api_key>`` get ``401``.
        mounts: Server path prefix → local directory, for adapters the "container" sees
            under another path (OPENAI_DATA_DIR).
        port: The port to listen on; 0 picks a free one (a stopped server's port can be
            given to a new one, as a restarted container keeps its address).
    """

    def __init__(
        self,
        completion: Sequence[str] = ("Hello", ", ", "world"),
        *,
        api_key: str = "",
        mounts: dict[str, Path] | None = None,
        port: int = 0,
    ) -> None:
        self.port = port
        self.completion = list(completion)
        self.api_key = api_key
        self.mounts = dict(mounts or {})
        self.fail_status: int | None = None
        """When set, every route answers this HTTP status with an OpenAI error body."""
        self.hold: threading.Event | None = None
        """When set (to a cleared event), a stream pauses after its first piece until set."""
        self.loaded: dict[str, str] = {}
        """LoRA name → path, as loaded through the API."""
        self._requests: list[tuple[str, JSONDict]] = []
        self._lock = threading.Lock()
        self._http: _Http | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle -----------------------------------------------------------------------

    def start(self) -> Self:
        self._http = _Http(self, self.port)
        self._thread = threading.Thread(
            target=self._http.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="fake-openai",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and join the threads; the port then refuses connections."""
        if self.hold is not None:
            self.hold.set()
        if self._http is not None and self._thread is not None:
            self._http.shutdown()
            self._thread.join(5)
            self._http.server_close()
        self._http = None
        self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>/v1``, the OPENAI_BASE_URL of this server."""
        if self._http is None:
            raise RuntimeError("the FakeOpenAIServer is not running")
        host, port = self._http.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    @property
    def bound_port(self) -> int:
        """The port it listens on while running."""
        if self._http is None:
            raise RuntimeError("the FakeOpenAIServer is not running")
        return int(self._http.server_address[1])

    # --- what the client did -------------------------------------------------------------

    @property
    def requests(self) -> list[tuple[str, JSONDict]]:
        """(route, JSON body) of every request so far, oldest first."""
        with self._lock:
            return list(self._requests)

    def bodies(self, route: str) -> list[JSONDict]:
        """The JSON bodies sent to ``route`` (e.g. ``"completions"``)."""
        return [body for name, body in self.requests if name == route]

    def forget_adapters(self) -> None:
        """What a restart of the server does to runtime-loaded adapters."""
        with self._lock:
            self.loaded.clear()

    # --- routes (HTTP threads) -----------------------------------------------------------

    def record(self, route: str, body: JSONDict) -> None:
        with self._lock:
            self._requests.append((route, body))

    def load(self, body: JSONDict) -> tuple[int, JSONDict | str]:
        name, path = body.get("lora_name"), body.get("lora_path")
        if not isinstance(name, str) or not isinstance(path, str) or not name or not path:
            return 400, _error("Both 'lora_name' and 'lora_path' must be provided.", 400)
        with self._lock:
            if name in self.loaded:
                return 400, _error(f"The lora adapter '{name}' has already been loaded.", 400)
            if not (self._local(path) / "adapter_config.json").is_file():
                return 400, _error(f"No adapter found for {path}", 400)
            self.loaded[name] = path
        return 200, f"Success: LoRA adapter '{name}' added successfully."

    def unload(self, body: JSONDict) -> tuple[int, JSONDict | str]:
        name = body.get("lora_name")
        with self._lock:
            if name not in self.loaded:
                return 404, _error(f"The lora adapter '{name}' cannot be found.", 404)
            del self.loaded[name]
        return 200, f"Success: LoRA adapter '{name}' removed successfully."

    def knows(self, model: object) -> bool:
        with self._lock:
            return model in self.loaded

    def _local(self, server_path: str) -> Path:
        for prefix, local in self.mounts.items():
            if server_path == prefix or server_path.startswith(prefix.rstrip("/") + "/"):
                return local / server_path[len(prefix) :].lstrip("/")
        return Path(server_path)


def _error(message: str, code: int) -> JSONDict:
    return {"error": {"message": message, "type": "BadRequestError", "code": code}}


def _chunk(model: str, text: str, finish: str | None) -> bytes:
    event = {
        "id": "cmpl-fake",
        "object": "text_completion",
        "model": model,
        "choices": [{"index": 0, "text": text, "logprobs": None, "finish_reason": finish}],
    }
    return f"data: {json.dumps(event, ensure_ascii=False)}\n\n".encode()


class _Http(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = True

    def __init__(self, fake: FakeOpenAIServer, port: int) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.fake = fake


class _Handler(BaseHTTPRequestHandler):
    server: _Http
    protocol_version = "HTTP/1.0"  # one request per connection; no idle keep-alive threads
    timeout = 10

    def log_message(self, format: str, *args: Any) -> None:
        """No access log on stderr."""

    def do_POST(self) -> None:
        fake = self.server.fake
        length = int(self.headers.get("Content-Length") or 0)
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except json.JSONDecodeError:
            self._send(400, _error("the body is not JSON", 400))
            return
        route = self.path.removeprefix("/v1/")
        fake.record(route, body)
        if fake.api_key and self.headers.get("Authorization") != f"Bearer {fake.api_key}":
            self._send(401, _error("Unauthorized", 401))
        elif fake.fail_status is not None:
            self._send(fake.fail_status, _error("told to fail", fake.fail_status))
        elif route == "load_lora_adapter":
            self._send(*fake.load(body))
        elif route == "unload_lora_adapter":
            self._send(*fake.unload(body))
        elif route == "completions":
            self._complete(body)
        else:
            self._send(404, _error(f"no route {self.path}", 404))

    def _complete(self, body: JSONDict) -> None:
        fake = self.server.fake
        model = body.get("model")
        if not fake.knows(model):
            self._send(404, _error(f"The model `{model}` does not exist.", 404))
            return
        if not body.get("stream"):
            text = "".join(fake.completion)
            self._send(200, {"choices": [{"index": 0, "text": text, "finish_reason": "stop"}]})
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        for index, piece in enumerate(fake.completion):
            self.wfile.write(_chunk(str(model), piece, None))
            self.wfile.flush()
            if index == 0 and fake.hold is not None:
                fake.hold.wait(10)
        self.wfile.write(_chunk(str(model), "", "stop"))
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()

    def _send(self, status: int, payload: JSONDict | str) -> None:
        if isinstance(payload, str):
            data, kind = payload.encode(), "text/plain"
        else:
            data, kind = json.dumps(payload).encode(), "application/json"
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
