"""Typed records that cross the storage boundary (what goes in, what comes out)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

MessageKind = Literal["text", "service", "media", "sticker", "poll", "call", "other"]
MessageSource = Literal["export", "live"]
RunStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
CloneRole = Literal["user", "assistant"]


@dataclass(frozen=True)
class ChatRecord:
    """A Telegram chat as seen by an export or a live update."""

    chat_id: int
    title: str | None
    chat_type: str  # personal_chat, private_group, private_supergroup, saved_messages, ...


@dataclass(frozen=True)
class MessageRecord:
    """One Telegram message of the owner's corpus (export or live collection).

    ``text`` is the plain text with entities joined ('' when the message has none);
    ``kind`` says whether it can give training text at all: only ``text`` (and ``sticker``
    with its emoji) ever reaches the dataset; the rest is stored and counted.
    """

    chat_id: int
    message_id: int
    sender_id: int | None
    sender_name: str | None
    is_owner: bool
    date: datetime  # timezone-aware, UTC
    text: str
    kind: MessageKind = "text"
    reply_to_id: int | None = None
    forwarded_from: str | None = None
    via_bot: str | None = None
    source: MessageSource = "export"


@dataclass(frozen=True)
class ImportReport:
    """What one import did: the counts the owner sees."""

    import_id: int
    file_sha256: str
    chats: int
    messages: int
    owner_messages: int
    new_messages: int
    already_present: int
    skipped: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class CorpusCounts:
    """Totals for /stats."""

    chats: int
    messages: int
    owner_messages: int
    text_messages: int


@dataclass(frozen=True)
class TrainingRun:
    """A row of the training-runs table."""

    run_id: int
    status: RunStatus
    trigger: str  # "command", "schedule", "cli"
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    pid: int | None
    run_dir: str | None
    metrics: dict[str, float]
    error: str | None


@dataclass(frozen=True)
class AdapterRecord:
    """A saved adapter directory produced by a run."""

    adapter_id: int
    run_id: int | None
    path: str
    promoted: bool
    created_at: datetime
    metrics: dict[str, float]


@dataclass(frozen=True)
class CloneTurn:
    """One turn of a conversation between a user and the clone (serving history)."""

    chat_id: int
    role: CloneRole
    text: str
    date: datetime
    message_id: int | None = None
    """The Telegram message that carried it (a reply's first message); None if unknown."""
    sender_id: int | None = None
    """Who wrote a user turn (None for the clone's)."""
    sender_name: str | None = None
    """Their display name, as groups show it."""

    def as_record(self) -> MessageRecord:
        """The turn as the turn shaper reads messages: the clone's turns are the owner's."""
        return MessageRecord(
            chat_id=self.chat_id,
            message_id=self.message_id or 0,
            sender_id=self.sender_id,
            sender_name=self.sender_name,
            is_owner=self.role == "assistant",
            date=self.date,
            text=self.text,
            source="live",
        )


@dataclass(frozen=True)
class StoredCloneTurn:
    """A clone turn with its row id (to link sent messages and corrections to it)."""

    turn_id: int
    turn: CloneTurn


@dataclass(frozen=True)
class ImportProgress:
    """How far an import has read: reported every few thousand messages."""

    bytes_read: int
    bytes_total: int
    messages: int
    chats: int
