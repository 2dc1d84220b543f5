"""The turn shaper: the one code that turns stored messages into ChatML turns.

The dataset builder and every serving path (chat with the clone, group talk, Business
auto-reply, the context of a /fix) call it, so the model answers the same turns it was trained
on. How a chat becomes turns, and why:

* **Cleaning.** A message's text loses chat-template control strings (``<|im_start|>`` and
  every other ``<|…|>`` token, Qwen's tool tags): no text a person sends can open or close a
  turn. Windows line ends become ``\\n``, the text is trimmed, export debris (placeholders,
  timestamp-only lines) is removed and private data is scrubbed, as ``DatasetConfig`` says.
  Messages without typed text (service, media, polls), forwarded ones and bots' are left out.
* **Sessions.** A silence longer than ``session_gap`` (the whole timedelta, days included)
  ends a conversation.
* **Groups** (``chat_id < 0``): a busy group is mostly other people talking to each other, so
  only the neighbourhood of the owner's messages is kept: for each owner message the
  ``group_context_messages`` messages before it in the session, plus the message it replies
  to (quoted first when it lies further back). Neighbourhoods that touch merge. Every line of
  another speaker is prefixed with their display name ("Имя: текст"); private chats have one
  other speaker and no prefixes. The choice depends on the chat alone, so a sample never
  changes its prefixes when a later message arrives.
* **Merging.** Consecutive user messages always form one turn. The owner's consecutive
  messages form one reply only when each follows the previous within ``merge_window``; a
  later unanswered owner message opens a new conversation that starts with the owner.
* **Exchanges.** A conversation is a list of (prompt, reply) exchanges. An owner turn that
  opens a conversation is kept as context (``owner_starts``), so conversations stay whole.
* **Windows.** A sample (or a prompt) holds the newest exchanges that fit a token budget and
  ``max_pairs_per_sample``, cut from the oldest side by ``fit_window``. At serving the
  incoming burst is the newest "exchange"; when it alone is too long its oldest text is cut.

Serving builds the conversation the training would build if the owner's reply were already
stored (a placeholder owner message now), then drops that reply: the prompt is the training
sample's prefix, byte for byte, whenever the window's budget does not bind differently.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from storage.models import MessageRecord
from training.chat_format import ChatMessage, Role
from training.config import DatasetConfig
from training.privacy import scrub

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

# Kinds whose ``text`` is something the person typed (a sticker's text is its emoji).
TEXT_KINDS = frozenset({"text", "sticker"})
# Chat-template control strings: ChatML's <|…|> tokens of any name (Qwen2.5's fifteen, Llama
# 3's, ...) and Qwen's tool tags, which its tokenizer also reads as single tokens.
CONTROL_STRING = re.compile(r"<\|[^<>|\s]{1,64}\|>|</?(?:tool_call|tool_response|think)>")
CUT_MARKER = "[…] "
"""Starts a message whose oldest text was cut to fit the prompt's budget."""
_WORD = re.compile(r"\w+")
# Media placeholders of Telegram Desktop exports (JSON and HTML, English and Russian UI).
_PLACEHOLDER = re.compile(
    r"\((?:File|Photo|Video|Sticker|Voice message|Audio file|Animation|Video message|"
    r"Contact|Location|Document|Файл|Фото|Видео|Стикер|Голосовое сообщение)\b[^()\n]*\)",
    re.IGNORECASE,
)
# A line that is only a date and/or time, optionally bracketed: "12:45", "[2024-01-01 10:00]".
_TIMESTAMP_LINE = re.compile(
    r"^\s*[\[(]?\s*(?=[\d])(?:\d{4}-\d{2}-\d{2}|\d{1,2}[./]\d{1,2}[./]\d{2,4})?"
    r"[ T,]*(?:\d{1,2}:\d{2}(?::\d{2})?)?\s*[\])]?\s*$"
)


def neutralise(text: str) -> str:
    """``text`` without control strings; removing one can never assemble another."""
    while True:
        cleaned = CONTROL_STRING.sub("", text)
        if cleaned == text:
            return text
        text = cleaned


def clean_text(text: str) -> str:
    """Control strings out, ``\\r\\n`` as ``\\n``, surrounding whitespace trimmed."""
    if "<" in text:
        text = neutralise(text)
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text.strip()


def check_control_tokens(tokenizer: PreTrainedTokenizerBase, model: str) -> None:
    """Refuse a tokenizer whose added tokens ``neutralise`` would leave in a message's text.

    Training and serving both call it: with such a token, text could forge control tokens.
    """
    added = [token.content for token in tokenizer.added_tokens_decoder.values()]
    uncovered = sorted(token for token in added if token in neutralise(f"a{token}b"))
    if uncovered:
        raise ValueError(
            f"{model}'s tokenizer has control tokens the turn shaper does not remove from "
            f"message text ({', '.join(uncovered)}): extend training.turns.CONTROL_STRING"
        )


def strip_technical(text: str) -> str:
    """``text`` without export placeholders and without lines that are only a timestamp.

    "(File not included. Change data exporting settings to download.)", "(Photo 1280x720)",
    a pasted "2024-01-01 10:00" line: export debris, not the owner's words. A time inside a
    sentence ("see you at 12:45") stays.
    """
    if "(" in text:
        text = _PLACEHOLDER.sub("", text)
    if ":" in text or "-" in text or "." in text:
        lines = [line for line in text.split("\n") if not _TIMESTAMP_LINE.match(line)]
        text = "\n".join(lines)
    return text.strip()


def word_count(text: str) -> int:
    """Number of words (runs of letters, digits or underscores)."""
    return len(_WORD.findall(text))


@dataclass(frozen=True, slots=True)
class Line:
    """A kept message and its shaped text (cleaned, scrubbed)."""

    record: MessageRecord
    text: str
    words: int


def message_drop_reason(message: MessageRecord, config: DatasetConfig) -> str | None:
    """Why a message cannot be a turn at all, or None to keep it.

    Reasons: the message kind (service, media, poll, call, other: no text a person typed, so
    not switchable), forwarded (``drop_forwarded``), via_bot (a bot wrote it), empty.
    """
    if message.kind not in TEXT_KINDS:
        return message.kind
    if message.forwarded_from is not None and config.drop_forwarded:
        return "forwarded"
    if message.via_bot is not None:
        return "via_bot"
    if not clean_text(message.text):
        return "empty"
    return None


def shape_text(text: str, config: DatasetConfig) -> str:
    """A message's text as a turn holds it: cleaned, debris-free, scrubbed ("" if none left)."""
    text = clean_text(text)
    if config.drop_technical:
        text = strip_technical(text)
    return scrub(text) if config.scrub_private_data and text else text


def shape_line(message: MessageRecord, config: DatasetConfig) -> Line | str:
    """The message as a line of a turn, or the reason it is left out (see the docstring)."""
    reason = message_drop_reason(message, config)
    if reason is not None:
        return reason
    text = clean_text(message.text)
    if config.drop_technical:
        text = strip_technical(text)
        if not text:
            return "technical"
    words = word_count(text)  # before the scrub: "<PHONE>" is not the owner's word
    return Line(message, scrub(text) if config.scrub_private_data else text, words)


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
    """The owner's neighbourhoods in one group session (see the module docstring).

    A message the owner replies to from further back than the neighbourhood is quoted at the
    start of the user turn that reply answers, so no earlier reply's sample sees it.
    """
    position = {line.record.message_id: index for index, line in enumerate(session)}
    lo = hi = -1
    quotes: list[tuple[int, Line]] = []  # (session index to insert before, quoted line)
    for index, line in enumerate(session):
        if not line.record.is_owner:
            continue
        start = max(0, index - context)
        if hi >= 0 and start > hi + 1:
            yield _with_quotes(session[lo : hi + 1], lo, quotes)
            lo, quotes = -1, []
        if lo < 0:
            lo = start
        turn_start = hi + 1 if hi >= lo >= 0 else lo
        hi = index
        target_id = line.record.reply_to_id
        target = by_id.get(target_id) if target_id is not None else None
        if (
            target is not None
            and not target.record.is_owner
            and position.get(target.record.message_id, -1) < lo
            and all(quoted is not target for _, quoted in quotes)
        ):
            quotes.append((turn_start, target))
    if hi >= 0:
        yield _with_quotes(session[lo : hi + 1], lo, quotes)


def _with_quotes(segment: Sequence[Line], lo: int, quotes: list[tuple[int, Line]]) -> list[Line]:
    lines = list(segment)
    for before, quoted in reversed(quotes):
        lines.insert(before - lo, quoted)
    return lines


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


def is_group(chat_id: int) -> bool:
    """Groups and supergroups have negative ids; private chats (and Business chats) positive."""
    return chat_id < 0


def _speaker(record: MessageRecord) -> str:
    return record.sender_name or (f"User {record.sender_id}" if record.sender_id else "Someone")


def to_conversations(
    lines: Sequence[Line], chat_id: int, config: DatasetConfig
) -> Iterator[Conversation]:
    """Turns of one segment; a late unanswered owner message starts the next conversation."""
    prefix = is_group(chat_id)
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


def chat_conversations(lines: Sequence[Line], config: DatasetConfig) -> Iterator[Conversation]:
    """Every conversation of one chat's kept lines (sorted by date, one chat id)."""
    if not lines:
        return
    chat_id = lines[0].record.chat_id
    by_id = {line.record.message_id: line for line in lines} if is_group(chat_id) else {}
    for session in sessions(lines, config):
        segments = (
            group_segments(session, by_id, config.group_context_messages)
            if is_group(chat_id)
            else [session]
        )
        for segment in segments:
            yield from to_conversations(segment, chat_id, config)


@dataclass(slots=True)
class Exchange:
    """A prompt and the owner's reply to it; ``prompt`` is None for an opening owner turn."""

    prompt: Turn | None
    reply: Turn
    target: bool = True
    """Trained on (True) or context only; set by the dataset's reply rules."""


def exchanges(conversation: Conversation, config: DatasetConfig) -> tuple[list[Exchange], bool]:
    """The conversation's exchanges, and whether an opening owner turn was dropped.

    A user turn left unanswered at the end is not an exchange (see ``serving_turns``).
    """
    turns = conversation.turns
    made: list[Exchange] = []
    index = 0
    dropped_opener = False
    if turns and turns[0].role == "assistant":
        opener = turns[0]
        index = 1
        if config.owner_starts == "context":
            made.append(Exchange(None, opener, target=False))
        elif config.owner_starts == "neutral_prompt":
            neutral = Turn("user", [config.neutral_prompt], 0, opener.last_date, 0)
            made.append(Exchange(neutral, opener))
        else:
            dropped_opener = True
    while index + 1 < len(turns):
        made.append(Exchange(turns[index], turns[index + 1]))
        index += 2
    return made, dropped_opener


def exchange_prompts(items: Iterable[Exchange]) -> list[str]:
    """The user turn of each exchange ("" for an opening owner turn), in order: what the
    memory block's search reads (``training.memory.memory_request``)."""
    return [item.prompt.text if item.prompt is not None else "" for item in items]


def fit_window(costs: Sequence[int], end: int, budget: int, max_items: int) -> int:
    """Where a window ending at ``end`` (exclusive) starts: the newest items within budget.

    ``costs[end - 1]`` always belongs to the window (the caller checks that it fits).
    """
    start = end - 1
    total = costs[start]
    while start > 0 and end - start < max_items and total + costs[start - 1] <= budget:
        start -= 1
        total += costs[start]
    return start


def exchange_messages(items: Sequence[Exchange], *, weights: bool) -> list[ChatMessage]:
    """The ChatML turns of exchanges; with ``weights`` a context-only reply gets weight 0."""
    messages: list[ChatMessage] = []
    for item in items:
        if item.prompt is not None:
            messages.append({"role": "user", "content": item.prompt.text})
        reply: ChatMessage = {"role": "assistant", "content": item.reply.text}
        if weights and not item.target:
            reply["weight"] = 0
        messages.append(reply)
    return messages


def cut_to_fit(text: str, budget: int, cost: Callable[[str], int]) -> str:
    """``text`` with its oldest part replaced by ``CUT_MARKER`` so ``cost`` stays in budget.

    Keeps the longest tail that fits (a binary search over its length); "" when not even the
    marker fits.
    """
    if cost(text) <= budget:
        return text
    low, high = 0, len(text)  # the tail of length ``low`` fits (or is empty)
    while low < high:
        middle = (low + high + 1) // 2
        if cost(CUT_MARKER + text[len(text) - middle :].lstrip()) <= budget:
            low = middle
        else:
            high = middle - 1
    tail = text[len(text) - low :].lstrip()
    if not tail:
        return ""
    return CUT_MARKER + tail


@dataclass(frozen=True)
class ServingTurns:
    """The turns a reply answers: history exchanges and the incoming (last) user turn."""

    messages: list[ChatMessage]
    """User/assistant turns, oldest first, ending on the user turn to answer."""
    cut: bool
    """The incoming turn was too long and lost its oldest text."""
    prompts: list[str]
    """The conversation's user turns, the incoming one whole (``exchange_prompts``)."""
    start: datetime
    """When the conversation started (the memory block looks only before it)."""


def serving_turns(
    records: Sequence[MessageRecord],
    config: DatasetConfig,
    *,
    now: datetime,
    reply_to: int | None,
    budget: int,
    cost: Callable[[Role, str], int],
) -> ServingTurns | None:
    """The turns to answer in one chat, shaped exactly as training shapes a sample.

    Args:
        records: the chat's stored messages (and the clone's replies, as the owner's),
            sorted by date and message id; the newest are the ones to answer.
        config: the dataset rules the serving adapter was trained with (its clone.json).
        now: when the reply is written (the placeholder owner message's date).
        reply_to: the message the reply answers (groups quote it as training does).
        budget: tokens the turns may take (the prompt's budget less the system message).
        cost: tokens one message of a role adds to a rendered prompt.

    Returns None when there is nothing to answer: the last turn is the owner's, or no user
    text survived the cleaning.
    """
    lines: list[Line] = []
    for record in records:
        line = shape_line(record, config)
        if isinstance(line, Line):
            lines.append(line)
    if not lines:
        return None
    last = lines[-1].record
    placeholder = MessageRecord(
        chat_id=last.chat_id,
        message_id=last.message_id + 1,
        sender_id=None,
        sender_name=None,
        is_owner=True,
        date=max(now, last.date),
        text="",
        reply_to_id=reply_to,
    )
    lines.append(Line(placeholder, "", 0))
    *_, conversation = chat_conversations(lines, config)
    turns = conversation.turns
    if len(turns) < 2 or turns[-1].lines != [""] or turns[-2].role != "user":
        return None  # the placeholder joined an owner turn: the owner spoke last
    conversation.turns = turns[:-2]
    history, _ = exchanges(conversation, config)
    incoming = turns[-2]
    costs = [
        (cost("user", item.prompt.text) if item.prompt else 0) + cost("assistant", item.reply.text)
        for item in history
    ]
    text = cut_to_fit(incoming.text, budget, lambda content: cost("user", content))
    cut = text != incoming.text
    if not text:
        return None
    costs.append(cost("user", text))
    start = fit_window(costs, len(costs), budget, config.max_pairs_per_sample)
    messages = exchange_messages(history[start:], weights=False)
    messages.append({"role": "user", "content": text})
    prompts = [*exchange_prompts(history), incoming.text]
    return ServingTurns(messages, cut, prompts, conversation.start)
