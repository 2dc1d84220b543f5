"""ENGINE=openai: replies from an OpenAI-compatible server, first of all vLLM with LoRA.

The prompt is rendered here (``training.prompt.PromptBuilder``) with the adapter's own
tokenizer and clone.json and sent to ``/v1/completions`` as token ids, so the template stays
ours, the server never applies a chat template of its own, and it cannot parse any text into
control tokens again (``OPENAI_PROMPT_FORMAT=text`` sends the rendered string instead, for a
server that takes no ids). Generation stops at the tokenizer's end-of-turn ids
(``stop_token_ids``): vLLM matches stop *strings* against text with special tokens removed,
where ``<|im_end|>`` never appears. Adapters are loaded into the running
server with ``/v1/load_lora_adapter`` (vLLM: ``--enable-lora`` and
``VLLM_ALLOW_RUNTIME_LORA_UPDATING=True``) and requested by name.

The server sees the bot's data volume, perhaps under another path: OPENAI_DATA_DIR maps
DATA_DIR onto it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Literal

import httpx

from bot.engine.base import (
    EngineUnavailableError,
    NoAdapterError,
    prepare_prompts,
)
from training.chat_format import STOP_TOKENS, ChatMessage
from training.prompt import PromptBuilder

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT_SECONDS = 10.0
_ERROR_TEXT_LIMIT = 300  # characters of a server's error message kept in our exception


class AdapterRejectedError(ValueError):
    """The server could not load the adapter (a wrong path, or a LoRA it cannot serve)."""


PromptFormat = Literal["ids", "text"]


@dataclass(frozen=True)
class _Served:
    name: str
    adapter_dir: Path
    prompts: PromptBuilder


def completion_request(
    name: str, prompts: PromptBuilder, turns: Sequence[ChatMessage], prompt_format: PromptFormat
) -> dict[str, Any]:
    """The ``/v1/completions`` body: our prompt, the generation settings, our stop tokens."""
    settings = prompts.generation
    sampling = settings.do_sample
    tokenizer = prompts.tokenizer
    assert tokenizer is not None  # prepare_prompts always loads it
    prompt: str | list[int] = (
        prompts.token_ids(turns) if prompt_format == "ids" else prompts.text(turns)
    )
    return {
        "model": name,
        "prompt": prompt,
        "max_tokens": settings.max_new_tokens,
        # Greedy decoding is temperature 0 in the OpenAI API.
        "temperature": settings.temperature if sampling else 0.0,
        "top_p": settings.top_p if sampling else 1.0,
        # vLLM's extensions; -1 is "no top-k limit" in every vLLM version.
        "top_k": settings.top_k if sampling and settings.top_k > 0 else -1,
        "repetition_penalty": settings.repetition_penalty,
        "stop": list(STOP_TOKENS),
        "stop_token_ids": tokenizer.convert_tokens_to_ids(list(STOP_TOKENS)),
        "stream": True,
    }


class OpenAIEngine:
    """A ``ReplyEngine`` backed by an OpenAI-compatible HTTP server.

    Args:
        base_url: The API root, e.g. ``http://vllm:8000/v1``.
        data_dir: The bot's DATA_DIR (where adapters live).
        server_data_dir: DATA_DIR as the server sees it; empty: the same path.
        api_key: Bearer token; empty sends none.
        overrides: GenerationSettings fields that replace clone.json's (GENERATION_*).
        prompt_format: ``ids`` (token ids, the default) or ``text`` (the rendered string).
        timeout: Longest wait for the server, in seconds (connecting takes at most 10 s).
        transport: An httpx transport to use instead of the network (tests, proxies).
    """

    def __init__(
        self,
        base_url: str,
        *,
        data_dir: Path,
        server_data_dir: str = "",
        api_key: str = "",
        overrides: Mapping[str, Any] | None = None,
        prompt_format: PromptFormat = "ids",
        timeout: float = 120.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._data_dir = data_dir
        self._server_data_dir = server_data_dir
        self._overrides = dict(overrides or {})
        self._prompt_format = prompt_format
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.AsyncClient(
            base_url=self._base_url + "/",
            headers=headers,
            timeout=httpx.Timeout(timeout, connect=min(timeout, CONNECT_TIMEOUT_SECONDS)),
            transport=transport,
        )
        self._served: _Served | None = None
        # The adapter to serve once the server is reachable, when it was down for the first
        # load (the bot may start before its vLLM container is ready).
        self._deferred: Path | None = None
        self._swap_lock = asyncio.Lock()

    @property
    def has_adapter(self) -> bool:
        """True once an adapter serves, or the first one is loading or waits for the server."""
        return self._served is not None or self._deferred is not None or self._swap_lock.locked()

    @property
    def adapter_dir(self) -> Path | None:
        return self._served.adapter_dir if self._served else None

    @property
    def precision(self) -> str | None:
        """The server's own choice (docker-compose.yml starts vLLM on NF4: bitsandbytes)."""
        return None

    @property
    def model_name(self) -> str | None:
        """The LoRA name requests are sent to."""
        return self._served.name if self._served else None

    def server_path(self, adapter_dir: Path) -> str:
        """Where the server finds `adapter_dir` (OPENAI_DATA_DIR in place of DATA_DIR)."""
        local = adapter_dir.resolve()
        if not self._server_data_dir:
            return str(local)
        try:
            relative = local.relative_to(self._data_dir.resolve())
        except ValueError as exc:
            raise AdapterRejectedError(
                f"{adapter_dir} is outside DATA_DIR ({self._data_dir}); with OPENAI_DATA_DIR "
                "set the server sees DATA_DIR only"
            ) from exc
        return str(PurePosixPath(self._server_data_dir) / relative.as_posix())

    async def load_adapter(self, adapter_dir: Path) -> None:
        """Load `adapter_dir` into the server and serve it once the server took it.

        Raises:
            CloneSpecError / ValueError: clone.json or the generation settings are unusable.
            AdapterRejectedError: the server refused the adapter.
            EngineUnavailableError: the server cannot be reached.
        In every case the previous adapter keeps serving. With none serving yet, an
        unreachable server defers the load to the next request.
        """
        async with self._swap_lock:
            served = await asyncio.to_thread(self._prepare, adapter_dir)
            if self._served is not None and self._served.name == served.name:
                self._served = served
                return
            try:
                await self._register(served.name, self.server_path(adapter_dir))
            except EngineUnavailableError:
                if self._served is None:
                    self._deferred = adapter_dir
                raise
            self._deferred = None
            old, self._served = self._served, served
            logger.info("serving adapter %s as %s", adapter_dir, served.name)
            if old is not None:
                await self._unregister(old.name)

    async def prompts(self) -> PromptBuilder:
        """The serving adapter's prompts (waits while the first adapter loads)."""
        return (await self._current()).prompts

    async def generate(self, history: Sequence[ChatMessage]) -> str:
        """The clone's reply to `history`: the joined stream, stripped."""
        pieces = [piece async for piece in self.stream(history)]
        return "".join(pieces).strip()

    async def stream(self, history: Sequence[ChatMessage]) -> AsyncIterator[str]:
        """The reply in pieces as the server streams them (server-sent events).

        Raises:
            NoAdapterError: no adapter has been loaded.
            EngineUnavailableError: the server is down, or failed the request.
        """
        served = await self._current()
        body = completion_request(served.name, served.prompts, history, self._prompt_format)
        for attempt in range(2):
            try:
                async with self._client.stream("POST", "completions", json=body) as response:
                    if response.status_code == httpx.codes.NOT_FOUND and attempt == 0:
                        # A restarted server forgets runtime-loaded adapters: load it again.
                        await response.aread()
                        await self._reregister(served)
                        continue
                    await _raise_for_status(response, "completion")
                    async for piece in _sse_texts(response):
                        yield piece
                return
            except httpx.TransportError as exc:
                raise self._unreachable(exc) from exc

    async def release(self) -> None:
        """Nothing to free: the model and its accelerator belong to the server process."""

    async def restore(self) -> None:
        """Nothing to reload (see ``release``); the served adapter never left the server."""

    async def close(self) -> None:
        """Close the HTTP connections (the adapter stays loaded in the server)."""
        await self._client.aclose()

    # --- helpers ---------------------------------------------------------------------

    def _prepare(self, adapter_dir: Path) -> _Served:
        """clone.json, the tokenizer saved beside the adapter, and the settings (a thread)."""
        return _Served(
            name=lora_name(self.server_path(adapter_dir)),
            adapter_dir=adapter_dir,
            prompts=prepare_prompts(adapter_dir, self._overrides),
        )

    async def _current(self) -> _Served:
        if self._served is None and self._swap_lock.locked():
            async with self._swap_lock:  # the first adapter is loading: wait for it
                pass
        if self._served is None and self._deferred is not None:
            await self.load_adapter(self._deferred)  # EngineUnavailableError while still down
        if self._served is None:
            raise NoAdapterError("no adapter is loaded")
        return self._served

    async def _register(self, name: str, path: str) -> None:
        payload = {"lora_name": name, "lora_path": path}
        try:
            response = await self._client.post("load_lora_adapter", json=payload)
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from exc
        if response.is_success:
            return
        message = _error_message(response)
        if response.status_code == httpx.codes.BAD_REQUEST and "already" in message.lower():
            return  # loaded before (names follow paths): the same adapter, still there
        if response.status_code in (httpx.codes.BAD_REQUEST, httpx.codes.NOT_FOUND):
            raise AdapterRejectedError(f"the model server could not load {path}: {message}")
        raise EngineUnavailableError(
            f"the model server answered {response.status_code} to load_lora_adapter: {message}"
        )

    async def _reregister(self, served: _Served) -> None:
        try:
            await self._register(served.name, self.server_path(served.adapter_dir))
        except AdapterRejectedError as exc:
            raise EngineUnavailableError(
                "the model server lost the serving adapter and cannot load it again"
            ) from exc

    async def _unregister(self, name: str) -> None:
        """Free the old adapter's slot; a failure only costs server memory, so it is logged."""
        try:
            response = await self._client.post("unload_lora_adapter", json={"lora_name": name})
        except httpx.TransportError:
            logger.warning("could not unload adapter %s: the server is unreachable", name)
            return
        if not response.is_success:
            logger.warning("could not unload adapter %s: HTTP %s", name, response.status_code)

    def _unreachable(self, exc: httpx.TransportError) -> EngineUnavailableError:
        return EngineUnavailableError(
            f"the model server at {self._base_url} is unreachable ({type(exc).__name__})"
        )


def lora_name(server_path: str) -> str:
    """A name unique to an adapter path, readable in the server's logs: clone-<run>-<hash>."""
    parts = PurePosixPath(server_path).parts[-2:]
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", "-".join(parts)).strip("-")[:40]
    digest = hashlib.sha256(server_path.encode("utf-8")).hexdigest()[:10]
    return f"clone-{slug}-{digest}" if slug else f"clone-{digest}"


async def _raise_for_status(response: httpx.Response, what: str) -> None:
    if response.is_success:
        return
    await response.aread()
    raise EngineUnavailableError(
        f"the model server answered {response.status_code} to the {what} request: "
        f"{_error_message(response)}"
    )


def _error_message(response: httpx.Response) -> str:
    """The server's own error text (OpenAI/vLLM JSON or plain), shortened."""
    try:
        data = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return response.text[:_ERROR_TEXT_LIMIT]
    if isinstance(data, dict):
        error = data.get("error", data)
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return str(error["message"])[:_ERROR_TEXT_LIMIT]
    return response.text[:_ERROR_TEXT_LIMIT]


async def _sse_texts(response: httpx.Response) -> AsyncIterator[str]:
    """The ``choices[0].text`` of each server-sent event, until ``data: [DONE]``."""
    async for line in response.aiter_lines():
        if not line.startswith("data:"):
            continue  # blank separators, comments, event names
        data = line.removeprefix("data:").strip()
        if data == "[DONE]":
            return
        try:
            event = json.loads(data)
        except json.JSONDecodeError as exc:
            raise EngineUnavailableError("the model server sent an unreadable event") from exc
        if not isinstance(event, dict):
            raise EngineUnavailableError("the model server sent an unreadable event")
        if "error" in event:
            error = event["error"]
            text = error.get("message", "") if isinstance(error, dict) else str(error)
            raise EngineUnavailableError(
                f"the model server failed mid-reply: {str(text)[:_ERROR_TEXT_LIMIT]}"
            )
        for choice in event.get("choices") or []:
            text = choice.get("text") if isinstance(choice, dict) else None
            if text:
                yield str(text)
    raise EngineUnavailableError("the model server closed the stream before it was complete")
