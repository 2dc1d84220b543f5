"""Fitting replies into Telegram messages, also while a reply is still being generated.

``reply_parts`` says which messages a finished reply is sent as. ``settled_parts`` says which
of them a reply generated only up to some point already fixes: no continuation of the text can
change them, so a streaming reply may send them before the rest exists.
"""

from __future__ import annotations

from bot.telegram.const import MAX_MESSAGE_CHARS


def _cut(text: str, limit: int) -> tuple[list[str], str]:
    """The full chunks of `text` (at line or word boundaries) and the remainder after them.

    Each cut looks only at the next ``limit + 1`` characters, so the full chunks of a prefix of
    a text are the first full chunks of the whole text.
    """
    chunks: list[str] = []
    rest = text
    while len(rest) > limit:
        cut = rest.rfind("\n", 0, limit + 1)
        if cut <= 0:
            cut = rest.rfind(" ", 0, limit + 1)
        if cut <= 0:
            cut = limit
        chunks.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip()
    return [c for c in chunks if c], rest


def split_message(text: str, limit: int = MAX_MESSAGE_CHARS) -> list[str]:
    """Split `text` into chunks of at most `limit` characters, at line or word boundaries."""
    chunks, rest = _cut(text, limit)
    return [*chunks, rest] if rest else chunks


MAX_PARTS = 5
"""A reply split into lines never becomes more messages than this; the rest stays together."""


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.split("\n") if line.strip()]


def reply_parts(text: str, *, split_lines: bool) -> list[str]:
    """The messages a reply is sent as: one per line (the owner's bursts) or one in all."""
    if not split_lines:
        return split_message(text.strip())
    lines = _lines(text)
    if len(lines) > MAX_PARTS:
        lines = [*lines[: MAX_PARTS - 1], "\n".join(lines[MAX_PARTS - 1 :])]
    return [chunk for line in lines for chunk in split_message(line)]


def settled_parts(prefix: str, *, split_lines: bool) -> list[str]:
    """The first messages of ``reply_parts(text)`` for every ``text`` that starts with `prefix`.

    With line splitting, a line is settled once its newline has arrived (while it is one of the
    first ``MAX_PARTS - 1`` lines); a line or tail longer than a message settles the chunks
    before its last one. Without line splitting only the full 4096-character chunks settle.
    """
    # A stripped prefix is a prefix of the stripped whole: trailing blanks of the prefix may
    # yet be followed by words, and would otherwise shift a cut.
    if not split_lines:
        return _cut(prefix.strip(), MAX_MESSAGE_CHARS)[0]
    *complete, partial = prefix.split("\n")
    lines = _lines("\n".join(complete))
    head = lines[: MAX_PARTS - 1]
    settled = [chunk for line in head for chunk in split_message(line)]
    partial = partial.strip()
    if len(head) < MAX_PARTS - 1:
        return settled + (_cut(partial, MAX_MESSAGE_CHARS)[0] if partial else [])
    tail = "\n".join([*lines[MAX_PARTS - 1 :], *([partial] if partial else [])])
    return settled + _cut(tail, MAX_MESSAGE_CHARS)[0]
