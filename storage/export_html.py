"""Streaming reader of Telegram Desktop HTML exports (``messages.html``, ``messages2.html``, ...).

HTML exports show display names but no user ids, and name a chat only by its header title and
folder (``chats/chat_001``, or ``ChatExport_<date>`` for one chat). So the owner must say which
name is theirs, and ids are synthetic: a sender is ``SYNTHETIC_ID_BASE + hash(name)`` (or the
owner's real id when given), a chat ``-(SYNTHETIC_ID_BASE + hash(title))``, with the folder
hashed too when two chats share a title. A chat renamed between two exports comes back new.
Synthetic ids have an absolute value in ``[2**60, 2**60 + 2**56)``; Bot API ids stay below
``2**53`` (users ``id``, groups ``-id``, channels ``-(10**12 + id)``), so the two never meet.

Dates come from each message's date ``title`` (``14.03.2024 18:02:11 UTC+03:00``; read in
``local_tz`` without an offset). Service messages carry no date and take the one before them;
the day separators Telegram inserts (``message-1``: "14 March 2024") are not messages.
"""

from __future__ import annotations

import codecs
import hashlib
import logging
import re
import unicodedata
from collections import Counter, deque
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from html.parser import HTMLParser
from pathlib import Path
from typing import IO, NamedTuple

from storage import errors
from storage.export_archive import ExportSource, inspect_export, open_export
from storage.export_format import (
    DATE_LIMIT,
    DATE_MIN,
    EXPECTED_DATE,
    EXPECTED_ID,
    HIDDEN_FORWARD,
    ID_DIGITS,
    MessageRow,
    record_to_row,
)
from storage.export_parser import ExportKind
from storage.models import ChatRecord, MessageKind, MessageRecord

logger = logging.getLogger(__name__)

SYNTHETIC_ID_BASE = 1 << 60
SYNTHETIC_HASH_BYTES = 7  # 56 bits
HTML_CHAT_TYPE = "html_export"  # HTML exports do not say whether a chat is private or a group
AMBIGUOUS_TITLES = frozenset({"", "deleted account", "deleted group", "deleted channel"})
READ_CHUNK = 1 << 16
VOID_TAGS = frozenset({"br", "img", "hr", "meta", "link", "input", "wbr", "source"})
FORMATTING_WHITESPACE = re.compile(r"\n[ \t]*")  # the writer's indentation; text uses <br>
DATE_TITLE = re.compile(
    r"(\d{1,2})\.(\d{1,2})\.(\d{4}) (\d{1,2}):(\d{2}):(\d{2})"
    r"(?P<zone>\s*(?:UTC|GMT))?(?:\s*(?P<sign>[+-])(?P<hours>\d{1,2}):?(?P<minutes>\d{2}))?"
)
MONTHS = "January February March April May June July August September October November December"
DAY_SEPARATOR = re.compile(rf"(\d{{1,2}}) ({MONTHS.replace(' ', '|')}) (\d{{4}})")
MESSAGE_ID = re.compile(r"message(-?\d+)")
REPLY_TARGET = re.compile(r"go_to_message(-?\d+)")
VIA_BOT = " via @"
MEDIA_KINDS: dict[str, MessageKind] = dict(media_call="call", media_poll="poll", sticker="sticker")


def normalize_name(name: str) -> str:
    """A display name as compared: NFKC, single spaces, case-folded."""
    return " ".join(unicodedata.normalize("NFKC", name).split()).casefold()


def synthetic_user_id(name: str) -> int:
    """The stable id of a sender known only by display name (positive, reserved range)."""
    return SYNTHETIC_ID_BASE + _hash(f"user:{normalize_name(name)}")


def synthetic_chat_id(key: str) -> int:
    """The stable id of a chat known only by title (and folder): negative, reserved range."""
    return -(SYNTHETIC_ID_BASE + _hash(f"chat:{key}"))


def parse_date_title(title: str, local_tz: tzinfo = UTC) -> datetime | None:
    """UTC date of a ``title`` such as ``14.03.2024 18:02:11 UTC+03:00``; None if unreadable.

    Unreadable: no such day or time, an offset of a day or more, a year out of datetime's range.
    """
    match = DATE_TITLE.search(title)
    if match is None:
        return None
    day, month, year, hour, minute, second = (int(part) for part in match.groups()[:6])
    try:
        zone: tzinfo = local_tz
        if match["sign"]:
            offset = timedelta(hours=int(match["hours"]), minutes=int(match["minutes"]))
            zone = timezone(-offset if match["sign"] == "-" else offset)
        elif match["zone"]:
            zone = UTC
        return datetime(year, month, day, hour, minute, second, tzinfo=zone).astimezone(UTC)
    except (ValueError, OverflowError):
        return None


class HtmlExportParser:
    """Reads an HTML export like :class:`~storage.export_parser.ExportParser` reads JSON."""

    def __init__(
        self,
        path: Path,
        source: ExportSource | None = None,
        *,
        owner_name: str | None,
        owner_id: int | None = None,
        file_name: str | None = None,
        local_tz: tzinfo = UTC,
    ) -> None:
        self.path = path
        self.file_name = file_name or path.name
        if owner_name is None or not normalize_name(owner_name):
            raise errors.HtmlOwnerUnknownError(self.file_name)
        self.source = source or inspect_export(path, self.file_name)
        if self.source.format != "html":
            raise errors.NotHtmlExportError(self.file_name)
        self.owner_name = owner_name
        self.owner_key = normalize_name(owner_name)
        self.owner_id: int | None = synthetic_user_id(owner_name) if owner_id is None else owner_id
        self.file_owner_id: int | None = None  # an HTML export never names its account
        in_chats = any("chats/chat_" in page for pages in self.source.html_chats for page in pages)
        self.kind: ExportKind | None = "full_account" if in_chats else "single_chat"
        self.local_tz = local_tz
        self.unreadable_messages = self.messages = self.owner_messages = self.bytes_read = 0
        self.sender_names: Counter[str] = Counter()
        self.chat_keys: set[str] = set()

    def identify(self, name: str | None) -> tuple[int | None, bool]:
        """Sender id and owner flag of a display name (counted for the owner-not-found error)."""
        if name is None:
            return None, False
        self.sender_names[name] += 1
        if normalize_name(name) == self.owner_key:
            return self.owner_id, True
        return synthetic_user_id(name), False

    @property
    def bytes_total(self) -> int:
        """Bytes of all the export's pages (``bytes_read`` ends there)."""
        return self.source.uncompressed_size

    def items(self) -> Generator[ChatRecord | MessageRow, None, None]:
        """Chats and message rows, as the importer takes them from either parser."""
        for record in self.records():
            yield record if isinstance(record, ChatRecord) else record_to_row(record)

    def records(self) -> Iterator[ChatRecord | MessageRecord]:
        """Each chat's record, then its messages; raises ExportError for an unusable export."""
        chats = 0
        with open_export(self.path, self.source) as files:
            for folder, pages in self._chat_pages():
                reader = _ChatReader(self, folder)
                for page in pages:
                    with files.open(page) as raw:
                        yield from reader.read_page(raw, page or self.file_name)
                yield from reader.finish()
                chats += reader.chat is not None
        if chats == 0:
            raise errors.NotHtmlExportError(self.file_name)
        if self.owner_messages == 0:
            top = [name for name, _ in self.sender_names.most_common(3)]
            raise errors.HtmlOwnerNotFoundError(
                self.file_name, self.owner_name, self.messages, top
            )
        logger.info("Read HTML export: %d chats, %d messages", chats, self.messages)

    def _chat_pages(self) -> list[tuple[str, tuple[str | None, ...]]]:
        if not self.source.is_zip:
            return [("", (None,))]  # a plain file is the single page of one chat
        return [(_folder_of(pages[0]), pages) for pages in self.source.html_chats]


@dataclass
class _Draft:
    """A message being read, from its opening ``<div class="message ...">`` to its end."""

    message_id: int
    service: bool
    joined: bool
    date_title: str | None = None
    from_parts: list[str] = field(default_factory=list)
    forward_parts: list[str] = field(default_factory=list)
    text_parts: list[str] = field(default_factory=list)
    forwarded: bool = False
    reply_href: str | None = None
    media: set[str] = field(default_factory=set)


class _Previous(NamedTuple):
    """What a joined message (same sender, no name shown) inherits from the one before."""

    sender_name: str | None
    via_bot: str | None
    forwarded_from: str | None


class _ChatReader(HTMLParser):
    """One chat's pages, fed in chunks; finished records wait in ``pending``."""

    def __init__(self, owner: HtmlExportParser, folder: str) -> None:
        super().__init__(convert_charrefs=True)
        self.export = owner
        self.folder = folder
        self.chat: ChatRecord | None = None
        self.title_parts: list[str] = []
        self.pending: deque[ChatRecord | MessageRecord] = deque()
        self.previous: _Previous | None = None
        self.last_date: datetime | None = None
        self.page = ""  # the one being read: errors name it
        self._start_page()

    def _start_page(self) -> None:
        self.stack: list[str] = []  # open tags
        self.captures: list[tuple[int, list[str] | None]] = []
        self.regions: dict[str, int] = {}  # header, message, forwarded, reply, media → depth
        self.draft: _Draft | None = None

    def read_page(self, raw: IO[bytes], page: str) -> Iterator[ChatRecord | MessageRecord]:
        self.page = page
        decoder = codecs.getincrementaldecoder("utf-8-sig")()  # drops a leading BOM
        try:
            while chunk := raw.read(READ_CHUNK):
                self.export.bytes_read += len(chunk)  # of source.uncompressed_size
                self.feed(decoder.decode(chunk))
                yield from self._drain()
            self.feed(decoder.decode(b"", final=True))
        except UnicodeDecodeError:
            raise errors.NotUtf8Error(self.export.file_name) from None
        self.close()
        if self.draft is not None:  # the page ended inside a message: cut short
            self.export.unreadable_messages += 1
        yield from self._drain()
        self.reset()
        self._start_page()

    def finish(self) -> Iterator[ChatRecord | MessageRecord]:
        if self.chat is None and self.title_parts:
            self._ensure_chat()
        yield from self._drain()

    def _drain(self) -> Iterator[ChatRecord | MessageRecord]:
        while self.pending:
            yield self.pending.popleft()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name: value or "" for name, value in attrs}
        classes = frozenset(attributes.get("class", "").split())
        if tag in VOID_TAGS:
            self._void_tag(tag, attributes, classes)
            return
        self.stack.append(tag)
        depth = len(self.stack)
        message_id = MESSAGE_ID.fullmatch(attributes.get("id", ""))
        if tag == "div" and "message" in classes and message_id is not None:
            number = self._id(message_id[1], "id", f"a message on the page {self.page}")
            self.draft = _Draft(number, "service" in classes, "joined" in classes)
            self.regions["message"] = depth
        elif "page_header" in classes:
            self.regions["header"] = depth
        elif "header" in self.regions and {"text", "bold"} <= classes and not self.title_parts:
            self.captures.append((depth, self.title_parts))
        elif self.draft is not None:
            self._message_tag(self.draft, tag, attributes, depth)

    def handle_endtag(self, tag: str) -> None:
        if tag not in self.stack:
            return  # a stray end tag
        del self.stack[len(self.stack) - 1 - self.stack[::-1].index(tag) :]
        depth = len(self.stack)
        while self.captures and self.captures[-1][0] > depth:
            self.captures.pop()
        if self.draft is not None and self.regions.get("message", 0) > depth:
            self._finish_message(self.draft)
            self.draft = None
        self.regions = {name: start for name, start in self.regions.items() if start <= depth}

    def handle_data(self, data: str) -> None:
        if self.captures and (target := self.captures[-1][1]) is not None:
            target.append(FORMATTING_WHITESPACE.sub("", data))

    def _void_tag(self, tag: str, attributes: dict[str, str], classes: frozenset[str]) -> None:
        if "media" in self.regions and self.draft is not None:
            self.draft.media |= classes
        if not self.captures or (target := self.captures[-1][1]) is None:
            return
        if tag == "br":
            target.append("\n")
        elif tag == "img" and attributes.get("alt"):
            target.append(attributes["alt"])  # an emoji drawn as an image

    def _message_tag(self, draft: _Draft, tag: str, attrs: dict[str, str], depth: int) -> None:
        classes = frozenset(attrs.get("class", "").split())
        if "media" in self.regions:
            draft.media |= classes
            if "question" in classes:
                self.captures.append((depth, draft.text_parts))  # a poll's question
        elif draft.service and {"body", "details"} <= classes:
            self.captures.append((depth, draft.text_parts))
        elif "media_wrap" in classes:
            self.regions["media"] = depth
            draft.media |= classes
        elif {"forwarded", "body"} <= classes:
            self.regions["forwarded"] = depth
            draft.forwarded = True
        elif {"pull_right", "date"} <= classes and draft.date_title is None:
            draft.date_title = attrs.get("title", "")
        elif "from_name" in classes:
            forwarded = "forwarded" in self.regions
            self.captures.append((depth, draft.forward_parts if forwarded else draft.from_parts))
        elif tag == "span" and "date" in classes:
            self.captures.append((depth, None))  # the original date shown beside a forward's name
        elif "reply_to" in classes:
            self.regions["reply"] = depth
        elif tag == "a" and "reply" in self.regions:
            draft.reply_href = attrs.get("href", "")
        elif "text" in classes:
            self.captures.append((depth, draft.text_parts))

    def _finish_message(self, draft: _Draft) -> None:
        if draft.service:
            self._finish_service(draft)
            return
        name, via = _split_via(_squash(draft.from_parts))
        previous = self.previous if draft.joined else None
        if not name and previous is not None:
            name, via = previous.sender_name, previous.via_bot
        forwarded_from: str | None = None
        if draft.forwarded:
            original = _split_via(_squash(draft.forward_parts))[0]
            inherited = previous.forwarded_from if previous is not None else None
            forwarded_from = original or inherited or HIDDEN_FORWARD
        self.previous = _Previous(name, via, forwarded_from)
        date = parse_date_title(draft.date_title or "", self.export.local_tz)
        if date is None:
            self.export.unreadable_messages += 1
            return
        where = f"message {draft.message_id} on the page {self.page}"
        if not DATE_MIN <= date.timestamp() < DATE_LIMIT:
            raise errors.MalformedValueError(
                self.export.file_name, where, "date", date, EXPECTED_DATE
            )
        self.last_date = date
        text = "".join(draft.text_parts).strip()
        kind = _kind(draft.media, text)
        reply = REPLY_TARGET.search(draft.reply_href or "")
        sender_id, is_owner = self.export.identify(name)
        self._append(
            MessageRecord(
                chat_id=self._ensure_chat().chat_id,
                message_id=draft.message_id,
                sender_id=sender_id,
                sender_name=name,
                is_owner=is_owner,
                date=date,
                text=text,
                kind=kind,
                reply_to_id=self._id(reply[1], "reply link", where) if reply else None,
                forwarded_from=forwarded_from,
                via_bot=via,
            )
        )

    def _finish_service(self, draft: _Draft) -> None:
        self.previous = None
        separator = DAY_SEPARATOR.fullmatch(_squash(draft.text_parts))
        if separator is not None and draft.message_id < 0:
            day = _day_of(separator, self.export.local_tz)
            if day is not None:  # else not a real day (99 March): the last date stays
                self.last_date = max(self.last_date or day, day)
        elif self.last_date is None:
            self.export.unreadable_messages += 1
        else:
            chat_id, date = self._ensure_chat().chat_id, self.last_date
            self._append(
                MessageRecord(chat_id, draft.message_id, None, None, False, date, "", "service")
            )

    def _id(self, digits: str, field: str, where: str) -> int:
        """A message id read from the page (raises for one longer than any Telegram id)."""
        if len(digits.removeprefix("-")) > ID_DIGITS:
            raise errors.MalformedValueError(
                self.export.file_name, where, field, digits, EXPECTED_ID
            )
        return int(digits)

    def _append(self, record: MessageRecord) -> None:
        self.export.messages += 1
        self.export.owner_messages += record.is_owner
        self.pending.append(record)

    def _ensure_chat(self) -> ChatRecord:
        if self.chat is not None:
            return self.chat
        title = _squash(self.title_parts)
        key = title
        if normalize_name(title) in AMBIGUOUS_TITLES or title in self.export.chat_keys:
            key = f"{title}\0{self.folder}"
        self.export.chat_keys.add(key)
        self.chat = ChatRecord(synthetic_chat_id(key), title or None, HTML_CHAT_TYPE)
        self.pending.append(self.chat)
        return self.chat


def _day_of(separator: re.Match[str], local_tz: tzinfo) -> datetime | None:
    """The start of a day separator's day (``14 March 2024``) in UTC; None if out of range."""
    month = MONTHS.split().index(separator[2]) + 1
    try:
        day = datetime(int(separator[3]), month, int(separator[1]), tzinfo=local_tz)
        day = day.astimezone(UTC)
    except (ValueError, OverflowError):
        return None
    return day if DATE_MIN <= day.timestamp() < DATE_LIMIT else None


def _hash(text: str) -> int:
    digest = hashlib.blake2b(text.encode("utf-8"), digest_size=SYNTHETIC_HASH_BYTES).digest()
    return int.from_bytes(digest, "big")


def _folder_of(member: str) -> str:  # chats/chat_001/messages.html → chat_001
    return member.rsplit("/", 2)[-2] if "/" in member else ""


def _squash(parts: list[str]) -> str:
    return " ".join("".join(parts).split())


def _split_via(name: str) -> tuple[str | None, str | None]:
    """``"Sam via @gif"`` → ``("Sam", "gif")``; an empty name → ``(None, None)``."""
    if VIA_BOT in name:
        sender, bot = name.rsplit(VIA_BOT, 1)
        return sender.strip() or None, bot.strip() or None
    return name or None, None


def _kind(media: set[str], text: str) -> MessageKind:
    for css_class, kind in MEDIA_KINDS.items():
        if css_class in media:
            return kind
    if media and not text.strip():
        return "media"
    return "text"
