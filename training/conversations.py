"""One chat's messages -> sessions -> conversations of alternating user/owner turns.

How a chat becomes conversations, and why:

* **Sessions.** A silence longer than ``session_gap`` (the whole timedelta, days included)
  ends a conversation.
* **Private chats** (``chat_id > 0``): a session is one conversation.
* **Groups** (``chat_id < 0``): a busy group is mostly other people talking to each other, so
  only the neighbourhood of the owner's messages is kept: for each owner message the
  ``group_context_messages`` messages before it in the session, plus the message it replies
  to (quoted first when it lies further back). Neighbourhoods that touch merge; the rest of
  the group never reaches the dataset.
* **Speakers.** Only the owner is the assistant. Other speakers are user turns; when a
  conversation has more than one of them, each line is prefixed with the speaker's display
  name ("Имя: текст") so the model can tell them apart.
* **Merging.** Consecutive user messages always form one turn: a prompt is context, not a
  target, and joining two lines loses nothing, while ChatML needs turns to alternate. The
  owner's consecutive messages form one reply only when each follows the previous within
  ``merge_window``: "on my way" then, 20 minutes later unanswered, "I'm here" are two
  separate thoughts, and glued together they would teach the clone to answer with both. So
  a later unanswered owner message ends the conversation and opens a new one that starts
  with the owner (see ``owner_starts`` in the pair cleaning of ``training.samples``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from storage.models import MessageRecord
from training.chat_format import Role
from training.config import DatasetConfig


@dataclass(frozen=True, slots=True)
class Line:
    """A kept message and its training text (cleaned, scrubbed)."""

    record: MessageRecord
    text: str
    words: int


@dataclass(slots=True)
class Turn:
    """One user or owner turn: one or more merged messages."""

    role: Role
    lines: list[str]
    words: int
    last_date: datetime
    anchor: int
    """message_id of the last message (a stable handle for deterministic sampling)."""

    @property
    def text(self) -> str:
        """The turn's text, its messages joined by newlines."""
        return "\n".join(self.lines)


@dataclass(slots=True)
class Conversation:
    """Alternating turns of one chat, in time order (may start with the owner)."""

    chat_id: int
    start: datetime
    turns: list[Turn] = field(default_factory=list)


def sessions(lines: Sequence[Line], config: DatasetConfig) -> Iterator[list[Line]]:
    """Cut one chat's lines (sorted by date) where the silence exceeds ``session_gap``."""
    current: list[Line] = []
    for line in lines:
        # Compare whole timedeltas: `.seconds` would ignore the days of a long silence.
        if current and line.record.date - current[-1].record.date > config.session_gap:
            yield current
            current = []
        current.append(line)
    if current:
        yield current


def group_segments(
    session: Sequence[Line], by_id: dict[int, Line], context: int
) -> Iterator[list[Line]]:
    """The owner's neighbourhoods in one group session (see the module docstring)."""
    position = {line.record.message_id: index for index, line in enumerate(session)}
    lo = hi = -1
    quoted: list[Line] = []
    for index, line in enumerate(session):
        if not line.record.is_owner:
            continue
        start = max(0, index - context)
        if hi >= 0 and start > hi + 1:
            yield [*quoted, *session[lo : hi + 1]]
            lo, quoted = -1, []
        if lo < 0:
            lo = start
        hi = index
        target_id = line.record.reply_to_id
        target = by_id.get(target_id) if target_id is not None else None
        if (
            target is not None
            and not target.record.is_owner
            and position.get(target.record.message_id, -1) < lo
            and target not in quoted
        ):
            quoted.append(target)
    if hi >= 0:
        yield [*quoted, *session[lo : hi + 1]]


def _speaker(record: MessageRecord) -> str:
    return record.sender_name or (f"User {record.sender_id}" if record.sender_id else "Someone")


def to_conversations(
    lines: Sequence[Line], chat_id: int, config: DatasetConfig
) -> Iterator[Conversation]:
    """Turns of one segment; a late unanswered owner message starts the next conversation."""
    others = {
        line.record.sender_id or _speaker(line.record)
        for line in lines
        if not line.record.is_owner
    }
    prefix = len(others) > 1
    conversation: Conversation | None = None
    for line in lines:
        record = line.record
        role: Role = "assistant" if record.is_owner else "user"
        text = f"{_speaker(record)}: {line.text}" if prefix and role == "user" else line.text
        if conversation is not None and conversation.turns[-1].role == role:
            last = conversation.turns[-1]
            if role == "user" or record.date - last.last_date <= config.merge_window:
                last.lines.append(text)
                last.words += line.words
                last.last_date = max(last.last_date, record.date)
                last.anchor = record.message_id
                continue
            yield conversation
            conversation = None
        if conversation is None:
            conversation = Conversation(chat_id, record.date)
        conversation.turns.append(Turn(role, [text], line.words, record.date, record.message_id))
    if conversation is not None:
        yield conversation
