"""Fitting replies into Telegram messages."""

from __future__ import annotations

from bot.const import MAX_MESSAGE_CHARS


def split_message(text: str, limit: int = MAX_MESSAGE_CHARS) -> list[str]:
    """Split `text` into chunks of at most `limit` characters, at line or word boundaries."""
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
    if rest:
        chunks.append(rest)
    return [c for c in chunks if c]


MAX_PARTS = 5
"""A reply split into lines never becomes more messages than this; the rest stays together."""


def reply_parts(text: str, *, split_lines: bool) -> list[str]:
    """The messages a reply is sent as: one per line (the owner's bursts) or one in all."""
    if not split_lines:
        return split_message(text)
    lines = [line.strip() for line in text.split("\n") if line.strip()]
    if len(lines) > MAX_PARTS:
        lines = [*lines[: MAX_PARTS - 1], "\n".join(lines[MAX_PARTS - 1 :])]
    return [chunk for line in lines for chunk in split_message(line)]
