"""The fake Telegram's memory: updates, chats' messages, files and the calls the bot made.

One :class:`BotState` is shared by the HTTP threads (which serve the bot) and the test (which
pushes updates and reads what the bot sent). Every access goes through one
``threading.Condition``; long polling waits on it until an update is pushed or the server stops.
"""

from __future__ import annotations

import copy
import itertools
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

JSONDict = dict[str, Any]
ChatId = int | str


class ApiError(Exception):
    """A Bot API error; the HTTP layer turns it into ``{"ok": false, ...}``."""

    def __init__(self, code: int, description: str, retry_after: int | None = None) -> None:
        super().__init__(f"{code} {description}")
        self.code = code
        self.description = description
        self.retry_after = retry_after


NOT_BY_DEFAULT = frozenset({"chat_member", "message_reaction", "message_reaction_count"})
"""Update types Telegram sends only to a bot that lists them in ``allowed_updates``."""
ALL_UPDATE_TYPES = frozenset(
    {
        "message",
        "edited_message",
        "channel_post",
        "edited_channel_post",
        "business_connection",
        "business_message",
        "edited_business_message",
        "deleted_business_messages",
        "message_reaction",
        "message_reaction_count",
        "inline_query",
        "chosen_inline_result",
        "callback_query",
        "shipping_query",
        "pre_checkout_query",
        "purchased_paid_media",
        "poll",
        "poll_answer",
        "my_chat_member",
        "chat_member",
        "chat_join_request",
        "chat_boost",
        "removed_chat_boost",
    }
)
"""The Bot API's update types (the keys of an ``Update`` besides ``update_id``)."""


def _update_type(update: JSONDict) -> str:
    return next((key for key in update if key != "update_id"), "")


def bad_request(reason: str) -> ApiError:
    """A 400 error worded like Telegram's: ``Bad Request: <reason>``."""
    return ApiError(400, f"Bad Request: {reason}")


@dataclass(frozen=True)
class StoredFile:
    """A file the test registered (or the bot uploaded), downloadable by ``file_path``."""

    file_id: str
    file_unique_id: str
    file_name: str
    content: bytes
    mime_type: str
    file_path: str


@dataclass(frozen=True)
class MessageEvent:
    """A bot message as it was right after being sent or edited."""

    seq: int
    chat_id: ChatId
    kind: Literal["sent", "edited"]
    message: JSONDict


@dataclass(frozen=True)
class DraftEvent:
    """One ``sendMessageDraft`` call: the text a private chat saw streaming at that moment."""

    chat_id: ChatId
    draft_id: int
    text: str
    at: float


@dataclass
class BotState:
    """Everything the fake server remembers; all public methods are thread-safe."""

    bot_user: JSONDict
    download_limit: int = 20 * 1024 * 1024
    local_dir: Path | None = None
    cond: threading.Condition = field(default_factory=threading.Condition)
    stopped: bool = False
    calls: list[tuple[str, JSONDict]] = field(default_factory=list)
    pending: list[JSONDict] = field(default_factory=list)
    confirmed: list[JSONDict] = field(default_factory=list)
    dropped: list[JSONDict] = field(default_factory=list)
    messages: dict[tuple[ChatId, int], JSONDict] = field(default_factory=dict)
    bot_messages: list[tuple[ChatId, int]] = field(default_factory=list)
    events: list[MessageEvent] = field(default_factory=list)
    chats: dict[ChatId, JSONDict] = field(default_factory=dict)
    files: dict[str, StoredFile] = field(default_factory=dict)
    business_connections: dict[str, JSONDict] = field(default_factory=dict)
    commands: dict[str, list[JSONDict]] = field(default_factory=dict)
    failures: dict[str, list[ApiError]] = field(default_factory=dict)
    call_times: list[float] = field(default_factory=list)  # monotonic: the call's bytes arrived
    handled_times: list[float] = field(default_factory=list)  # monotonic: its handler read it
    handed_out: dict[int, float] = field(default_factory=dict)  # update_id -> first getUpdates
    drafts: list[DraftEvent] = field(default_factory=list)
    allowed_updates: list[str] | None = None  # the bot's last choice; None: Telegram's default
    _update_ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _file_ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _message_ids: dict[ChatId, int] = field(default_factory=dict)

    # --- updates -------------------------------------------------------------------------

    def push_update(self, update: JSONDict) -> int:
        """Queue ``update`` for ``getUpdates``, filling in ``update_id`` and message ids."""
        with self.cond:
            update = copy.deepcopy(update)
            update_id = next(self._update_ids)
            update["update_id"] = update_id
            for key in ("message", "edited_message", "channel_post", "business_message"):
                if key in update:
                    self._file_message(update[key], assign_id=key != "edited_message")
            self.pending.append(update)
            self.cond.notify_all()
            return update_id

    def take_updates(self, offset: int | None, limit: int, timeout: float) -> list[JSONDict]:
        """``getUpdates``: confirm ids below ``offset``, then wait up to ``timeout`` for more."""
        deadline = time.monotonic() + max(timeout, 0.0)
        with self.cond:
            if offset is not None and offset > 0:
                done = [u for u in self.pending if u["update_id"] < offset]
                self.confirmed.extend(done)
                self.pending = [u for u in self.pending if u["update_id"] >= offset]
            while not self._withhold_unwanted() and not self.stopped:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self.cond.wait(remaining)
            batch = self.pending[: max(1, min(limit, 100))]
            now = time.monotonic()
            for update in batch:
                self.handed_out.setdefault(update["update_id"], now)
            return copy.deepcopy(batch)

    def set_allowed_updates(self, allowed: list[str]) -> None:
        """``allowed_updates`` of getUpdates/setWebhook: an empty list means the default."""
        with self.cond:
            self.allowed_updates = list(allowed) or None

    def _withhold_unwanted(self) -> bool:
        """Drop pending updates of types the bot did not ask for (as Telegram never sends
        them); True when some are left. Caller holds the lock."""
        wanted = [u for u in self.pending if _update_type(u) in self._allowed()]
        self.dropped.extend(u for u in self.pending if _update_type(u) not in self._allowed())
        self.pending = wanted
        return bool(wanted)

    def _allowed(self) -> set[str]:
        if self.allowed_updates is not None:
            return set(self.allowed_updates)
        return {t for t in ALL_UPDATE_TYPES if t not in NOT_BY_DEFAULT}

    def drop_pending(self) -> int:
        """``deleteWebhook(drop_pending_updates=True)``: discard undelivered updates."""
        with self.cond:
            count = len(self.pending)
            self.dropped.extend(self.pending)
            self.pending = []
            return count

    def stop(self) -> None:
        """Wake every long poll so that the HTTP threads can finish."""
        with self.cond:
            self.stopped = True
            self.cond.notify_all()

    # --- messages ------------------------------------------------------------------------

    def new_message(self, chat: JSONDict, fields: JSONDict) -> JSONDict:
        """Store and return a message the bot sends to ``chat``."""
        with self.cond:
            msg: JSONDict = {
                "message_id": self._next_message_id(chat["id"]),
                "date": int(time.time()),
                "chat": chat,
                "from": self.bot_user,
                **fields,
            }
            key = (chat["id"], msg["message_id"])
            self.messages[key] = msg
            self.bot_messages.append(key)
            self._record_event(chat["id"], "sent", msg)
            return copy.deepcopy(msg)

    def chat(self, chat_id: ChatId) -> JSONDict:
        """The chat seen in a pushed update, or one made up from the id's sign.

        Telegram answers "chat not found" for chats the bot never met; the fake is lenient so
        that a bot may message its owner before the test pushed anything.
        """
        with self.cond:
            known = self.chats.get(chat_id)
            if known is not None:
                return copy.deepcopy(known)
            if isinstance(chat_id, int) and chat_id > 0:
                return {"id": chat_id, "type": "private", "first_name": f"User {chat_id}"}
            if isinstance(chat_id, int):
                return {"id": chat_id, "type": "supergroup", "title": f"Group {chat_id}"}
            raise bad_request("chat not found")

    def find_message(self, chat_id: ChatId, message_id: int) -> JSONDict | None:
        """The stored message (sent by anyone), or ``None``."""
        with self.cond:
            found = self.messages.get((chat_id, message_id))
            return copy.deepcopy(found) if found is not None else None

    def edit_message(self, chat_id: ChatId, message_id: int, changes: JSONDict) -> JSONDict:
        """Apply ``changes`` to a bot message and record the edit."""
        with self.cond:
            msg = self.messages[(chat_id, message_id)]
            for key, value in changes.items():
                if value is None:  # e.g. an edit without reply_markup drops the keyboard
                    msg.pop(key, None)
                else:
                    msg[key] = value
            msg["edit_date"] = int(time.time())
            self._record_event(chat_id, "edited", msg)
            return copy.deepcopy(msg)

    def delete_message(self, chat_id: ChatId, message_id: int) -> bool:
        """Forget a message; ``False`` if it was unknown."""
        with self.cond:
            if self.messages.pop((chat_id, message_id), None) is None:
                return False
            if (chat_id, message_id) in self.bot_messages:
                self.bot_messages.remove((chat_id, message_id))
            return True

    def current_bot_messages(self, chat_id: ChatId | None) -> list[JSONDict]:
        """The bot's live messages in order of sending, with edits applied."""
        with self.cond:
            return [
                copy.deepcopy(self.messages[key])
                for key in self.bot_messages
                if chat_id is None or key[0] == chat_id
            ]

    def events_after(self, seq: int, chat_id: ChatId | None) -> list[MessageEvent]:
        """Message events with a sequence number above ``seq``."""
        with self.cond:
            return [
                e for e in self.events if e.seq > seq and (chat_id is None or e.chat_id == chat_id)
            ]

    def add_draft(self, chat_id: ChatId, draft_id: int, text: str) -> None:
        """Record a draft shown in a private chat."""
        with self.cond:
            self.drafts.append(DraftEvent(chat_id, draft_id, text, time.monotonic()))

    # --- files ---------------------------------------------------------------------------

    def add_file(self, content: bytes, file_name: str, mime_type: str, folder: str) -> StoredFile:
        """Store bytes under a new ``file_id`` and ``file_path``."""
        with self.cond:
            number = next(self._file_ids)
            stored = StoredFile(
                file_id=f"FAKE-FILE-{number}",
                file_unique_id=f"FAKE-UNIQUE-{number}",
                file_name=file_name,
                content=content,
                mime_type=mime_type,
                file_path=f"{folder}/file_{number}_{file_name}",
            )
            self.files[stored.file_id] = stored
            return stored

    def file_by_path(self, file_path: str) -> StoredFile | None:
        """The stored file served at ``file_path``, or ``None``."""
        with self.cond:
            return next((f for f in self.files.values() if f.file_path == file_path), None)

    # --- calls and failures --------------------------------------------------------------

    def record_call(
        self, method: str, params: JSONDict, arrived_at: float | None = None
    ) -> ApiError | None:
        """Record a call that reached the server at ``arrived_at`` (``time.monotonic()``;
        None: now); returns the error queued for this method, if any."""
        with self.cond:
            now = time.monotonic()
            self.calls.append((method, params))
            self.call_times.append(now if arrived_at is None else arrived_at)
            self.handled_times.append(now)
            queued = self.failures.get(method.lower())
            return queued.pop(0) if queued else None

    def queue_failure(self, method: str, failure: ApiError) -> None:
        """Make the next call of ``method`` (case-insensitive) fail with ``failure``."""
        with self.cond:
            self.failures.setdefault(method.lower(), []).append(failure)

    # --- internals (caller holds the lock) -----------------------------------------------

    def _next_message_id(self, chat_id: ChatId) -> int:
        # Users and the bot share one message_id sequence per chat, as in Telegram.
        self._message_ids[chat_id] = self._message_ids.get(chat_id, 0) + 1
        return self._message_ids[chat_id]

    def _file_message(self, msg: JSONDict, assign_id: bool) -> None:
        chat_id = msg["chat"]["id"]
        if assign_id and "message_id" not in msg:
            msg["message_id"] = self._next_message_id(chat_id)
        elif assign_id:
            known = self._message_ids.get(chat_id, 0)
            self._message_ids[chat_id] = max(known, msg["message_id"])
        msg.setdefault("date", int(time.time()))
        self.chats[chat_id] = copy.deepcopy(msg["chat"])
        self.messages[(chat_id, msg["message_id"])] = copy.deepcopy(msg)

    def _record_event(
        self, chat_id: ChatId, kind: Literal["sent", "edited"], msg: JSONDict
    ) -> None:
        seq = len(self.events) + 1
        self.events.append(MessageEvent(seq, chat_id, kind, copy.deepcopy(msg)))
