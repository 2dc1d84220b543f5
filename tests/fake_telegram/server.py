"""``FakeTelegramServer``: a Bot API stand-in that the real PTB ``Application`` talks HTTP to.

Point PTB at it with::

    app = (
        ApplicationBuilder()
        .token(server.token)
        .base_url(f"{server.url}/bot")
        .base_file_url(f"{server.url}/file/bot")
        .build()
    )

The test plays the users (:meth:`send_text`, :meth:`send_command`, :meth:`send_document`, or
:meth:`push_update` with a dict from :mod:`tests.fake_telegram.builders`) and reads what the bot
did (:meth:`wait_for_message`, :meth:`sent_messages`, :attr:`calls`). Every method is
thread-safe: the HTTP threads and the test share one lock.
"""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

from tests.fake_telegram import builders
from tests.fake_telegram.methods import get_my_commands
from tests.fake_telegram.state import ApiError, BotState, ChatId, DraftEvent, JSONDict
from tests.fake_telegram.transport import BotApiHttpServer

T = TypeVar("T")

DEFAULT_TOKEN = "123456789:FAKE-token_for-tests"
CLOUD_DOWNLOAD_LIMIT = 20 * 1024 * 1024  # getFile refuses bigger files on the cloud Bot API
_POLL_SECONDS = 0.01


class FakeTelegramServer:
    """A fake Bot API on ``127.0.0.1`` and a random free port, served from a thread.

    Args:
        token: The token the bot must use; other tokens get ``401 Unauthorized``.
        download_limit: Largest file ``getFile`` accepts, in bytes; above it the answer is
            ``400 Bad Request: file is too big`` as on the cloud Bot API.
        bot_username: The bot's ``@username`` without the ``@``.
        bot_first_name: The bot's display name.
    """

    def __init__(
        self,
        token: str = DEFAULT_TOKEN,
        *,
        download_limit: int = CLOUD_DOWNLOAD_LIMIT,
        bot_username: str = "tgclone_test_bot",
        bot_first_name: str = "Clone",
        local_dir: Path | None = None,
        keep_alive: bool = False,
    ) -> None:
        """``local_dir``: act as a Bot API server in ``--local`` mode keeping files there.
        ``keep_alive``: HTTP/1.1 connections that serve many requests, as Telegram's do."""
        self.token = token
        bot_user = builders.user(
            int(token.split(":", 1)[0]), bot_first_name, bot_username, None, is_bot=True
        )
        bot_user.update(
            can_join_groups=True,
            can_read_all_group_messages=False,
            supports_inline_queries=False,
        )
        self._state = BotState(
            bot_user=bot_user, download_limit=download_limit, local_dir=local_dir
        )
        self._http: BotApiHttpServer | None = None
        self._keep_alive = keep_alive
        self._cursors: dict[ChatId | None, int] = {}

    # --- lifecycle -----------------------------------------------------------------------

    def start(self) -> Self:
        """Bind a free port and start serving; a server starts once."""
        if self._http is not None or self._state.stopped:
            raise RuntimeError("a FakeTelegramServer can be started only once")
        self._http = BotApiHttpServer(self._state, self.token, keep_alive=self._keep_alive)
        self._http.start_in_thread()
        return self

    def stop(self) -> None:
        """Answer pending long polls, stop serving and join the server's threads."""
        if self._http is not None:
            self._http.close()
            self._http = None

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
        """``http://127.0.0.1:<port>`` while running."""
        if self._http is None:
            raise RuntimeError("the FakeTelegramServer is not running; call start() first")
        return self._http.url

    @property
    def running(self) -> bool:
        """Whether the serving thread is alive."""
        return self._http is not None and bool(self._http.thread and self._http.thread.is_alive())

    @property
    def bot_user(self) -> JSONDict:
        """The ``User`` that ``getMe`` returns."""
        return copy.deepcopy(self._state.bot_user)

    # --- playing the users ---------------------------------------------------------------

    def push_update(self, update: JSONDict) -> int:
        """Queue an update for ``getUpdates`` and return its ``update_id``.

        Missing ``message_id`` and ``date`` of the update's message are filled in from the
        chat's message counter, shared with the bot's own messages as in Telegram.
        """
        return self._state.push_update(update)

    def register_file(
        self, content: bytes, file_name: str, mime_type: str = "application/octet-stream"
    ) -> str:
        """Store bytes for ``getFile`` and download; returns the new ``file_id``."""
        return self._state.add_file(content, file_name, mime_type, "documents").file_id

    def send_text(self, from_user: JSONDict, text: str, chat: JSONDict | None = None) -> int:
        """``from_user`` writes ``text`` (to the bot in private unless ``chat`` is given)."""
        chat = chat or builders.private_chat(from_user)
        return self.push_update(builders.message_update(chat, from_user, text))

    def send_command(self, from_user: JSONDict, text: str, chat: JSONDict | None = None) -> int:
        """``from_user`` sends a command such as ``"/retrain 3"``."""
        chat = chat or builders.private_chat(from_user)
        return self.push_update(builders.command_update(chat, from_user, text))

    def send_document(
        self,
        from_user: JSONDict,
        content: bytes,
        file_name: str,
        chat: JSONDict | None = None,
        *,
        mime_type: str = "application/octet-stream",
        caption: str | None = None,
    ) -> int:
        """``from_user`` uploads a document: registers the bytes and pushes the message."""
        chat = chat or builders.private_chat(from_user)
        stored = self._state.add_file(content, file_name, mime_type, "documents")
        update = builders.document_update(
            chat,
            from_user,
            stored.file_id,
            file_name,
            len(content),
            mime_type,
            caption=caption,
            file_unique_id=stored.file_unique_id,
        )
        return self.push_update(update)

    def add_business_connection(self, connection: JSONDict) -> None:
        """Make ``getBusinessConnection`` know ``connection`` (builders.business_connection)."""
        with self._state.cond:
            self._state.business_connections[connection["id"]] = connection

    def fail_next(
        self,
        method: str,
        error_code: int = 400,
        description: str = "Bad Request: injected failure",
        *,
        retry_after: int | None = None,
    ) -> None:
        """Make the next call of ``method`` fail; for flood control use ``error_code=429,
        description="Too Many Requests: retry after 1", retry_after=1`` (PTB: ``RetryAfter``).
        """
        self._state.queue_failure(method, ApiError(error_code, description, retry_after))

    # --- what the bot did ----------------------------------------------------------------

    @property
    def calls(self) -> list[tuple[str, JSONDict]]:
        """Every Bot API call as ``(method, params)``, in arrival order (uploads included)."""
        with self._state.cond:
            return list(self._state.calls)

    def calls_to(self, method: str) -> list[JSONDict]:
        """The parameters of every call of ``method`` (case-insensitive)."""
        return [params for name, params in self.calls if name.lower() == method.lower()]

    def timed_calls(
        self, *methods: str, handled: bool = False
    ) -> list[tuple[float, str, JSONDict]]:
        """``(time.monotonic(), method, params)`` of every call (or those named).

        The time is the call's arrival: when its bytes reached the server's socket (the
        kernel's receive timestamp, on Linux), not when one of the server's threads got to
        it, which under load lags by tens of milliseconds. ``handled``: that later time.
        """
        wanted = {m.lower() for m in methods}
        with self._state.cond:
            times = self._state.handled_times if handled else self._state.call_times
            timed = list(zip(times, self._state.calls, strict=True))
        return [
            (at, name, params)
            for at, (name, params) in timed
            if not wanted or name.lower() in wanted
        ]

    def handed_out_at(self, update_id: int) -> float | None:
        """``time.monotonic()`` when ``getUpdates`` first returned the update (None: not yet)."""
        with self._state.cond:
            return self._state.handed_out.get(update_id)

    def drafts(self, chat_id: ChatId | None = None) -> list[DraftEvent]:
        """Every ``sendMessageDraft`` the bot made (all chats, or one), in order."""
        with self._state.cond:
            return [d for d in self._state.drafts if chat_id is None or d.chat_id == chat_id]

    def message_counts(self) -> dict[ChatId, int]:
        """How many live bot messages each chat has (cheap: nothing is copied)."""
        counts: dict[ChatId, int] = {}
        with self._state.cond:
            for chat_id, _ in self._state.bot_messages:
                counts[chat_id] = counts.get(chat_id, 0) + 1
        return counts

    def sent_messages(self, chat_id: ChatId | None = None) -> list[JSONDict]:
        """The bot's messages (all chats, or one), in sending order, edits applied."""
        return self._state.current_bot_messages(chat_id)

    def my_commands(
        self, scope: JSONDict | None = None, language_code: str = ""
    ) -> list[JSONDict]:
        """The command list last set with ``setMyCommands`` for a scope (default scope)."""
        return get_my_commands(self._state, {"scope": scope, "language_code": language_code})

    def file_content(self, file_id: str) -> bytes:
        """The bytes behind a ``file_id`` (registered by the test or uploaded by the bot)."""
        with self._state.cond:
            return self._state.files[file_id].content

    def updates_confirmed(self) -> list[int]:
        """Ids of the updates the bot confirmed with a later ``offset``."""
        with self._state.cond:
            return [u["update_id"] for u in self._state.confirmed]

    def pending_updates(self) -> list[int]:
        """Ids of the updates not yet confirmed (maybe fetched, but not acknowledged)."""
        with self._state.cond:
            return [u["update_id"] for u in self._state.pending]

    # --- waiting -------------------------------------------------------------------------

    async def wait_for_message(
        self,
        chat_id: ChatId | None,
        predicate: Callable[[JSONDict], bool] | None = None,
        timeout: float = 10.0,
    ) -> JSONDict:
        """Wait, without blocking the event loop, for the next bot message that matches.

        Sends and edits are read like a chat, in order: each call returns the first matching
        event after the one the previous call returned for that ``chat_id``, so two calls in a
        row get two different events even if both were sent before the first call. The
        message is returned as it was at that event (the edited text for an edit).

        Raises:
            AssertionError: on timeout, listing what the bot did send.
        """
        deadline = time.monotonic() + timeout
        while True:
            for event in self._state.events_after(self._cursors.get(chat_id, 0), chat_id):
                self._cursors[chat_id] = event.seq
                if predicate is None or predicate(event.message):
                    return event.message
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"no bot message in chat {chat_id} matched within {timeout}s; "
                    f"sent so far: {self._summary()}"
                )
            await asyncio.sleep(_POLL_SECONDS)

    async def wait_until(self, predicate: Callable[[], T], timeout: float = 10.0) -> T:
        """Await a truthy ``predicate()`` (e.g. ``lambda: server.calls_to("setMyCommands")``)."""
        deadline = time.monotonic() + timeout
        while not (value := predicate()):
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"condition not met within {timeout}s; calls so far: "
                    f"{[name for name, _ in self.calls]}; sent so far: {self._summary()}"
                )
            await asyncio.sleep(_POLL_SECONDS)
        return value

    def wait_for(self, predicate: Callable[[], T], timeout: float = 10.0) -> T:
        """Blocking :meth:`wait_until`, for a bot running in another thread or process.

        Never use it from a test whose bot shares the test's event loop: it would freeze it.
        """
        deadline = time.monotonic() + timeout
        while not (value := predicate()):
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"condition not met within {timeout}s; sent so far: {self._summary()}"
                )
            time.sleep(_POLL_SECONDS)
        return value

    def _summary(self) -> list[Any]:
        return [
            (m["chat"]["id"], m["message_id"], m.get("text") or m.get("caption") or "<media>")
            for m in self.sent_messages()
        ]
