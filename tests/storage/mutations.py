"""Seeded random mutations of a real export: one value replaced, a key deleted, a message doubled.

Each mutant stays syntactically valid JSON (except where a replacement is text that JSON
allows but Python cannot hold as its own, such as ``1e400`` or 5,000 levels of lists), so the
parser gets past the syntax and meets the bad value itself.
"""

from __future__ import annotations

import copy
import json
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

DEEP = 5_000

Path_ = tuple[str | int, ...]


@dataclass(frozen=True)
class Raw:
    """A value written into the JSON text as is: what ``json.dumps`` cannot write."""

    text: str


REPLACEMENTS: list[tuple[str, object]] = [
    ("2**70", 2**70),
    ("-2**70", -(2**70)),
    ("1e400", Raw("1e400")),
    ("-1e400", Raw("-1e400")),
    ("-1", -1),
    ("0", 0),
    ("a fraction", 1.5),
    ("a 5,000-digit number", Raw("9" * 5_000)),
    ("a 5,000-digit string", "9" * 5_000),
    ("a 20-digit string", "99999999999999999999"),
    ("a 20-digit user", "user99999999999999999999"),
    ("a superscript user", "user²"),
    ("a string", "x"),
    ("an empty string", ""),
    ("a far date", "9999-12-31T23:59:59"),
    ("an early date", "0001-01-01T00:00:00"),
    ("null", None),
    ("true", True),
    ("a list", [1, "x", None]),
    ("an object", {"type": "bold", "text": 5}),
    ("lists of entities", [{"text": ["x"]}, ["y"], 7]),
    ("5,000 levels of lists", Raw("[" * DEEP + "]" * DEEP)),
    ("5,000 levels of objects", Raw('{"a":' * DEEP + "1" + "}" * DEEP)),
    ("an escaped string", "caf\u00e9 \u2603"),
    ("a lone surrogate", Raw('"x\\ud800y"')),
]


KEYS_READ = frozenset(
    {
        *("personal_information", "user_id", "chats", "left_chats", "list", "messages"),
        *("name", "type", "id", "date", "date_unixtime", "from", "from_id", "actor"),
        *("actor_id", "text", "media_type", "photo", "file", "poll", "question"),
        *("sticker_emoji", "reply_to_message_id", "reply_to_peer_id", "forwarded_from"),
        *("via_bot", "action"),
    }
)
"""The keys the parser reads: half the mutations hit one of them, a rare one (``action``) as
often as a common one (``id``)."""


@dataclass(frozen=True)
class Mutant:
    """One mutation of an export: what was done (for a failure's message) and the file."""

    description: str
    content: bytes


def mutants(export: dict[str, Any], seed: int, count: int) -> Iterator[Mutant]:
    """``count`` mutants of ``export``, the same ones for the same seed."""
    rng = random.Random(seed)
    paths = list(_paths(export, ()))
    read: dict[str | int, list[Path_]] = {}
    for path in paths:
        if path[-1] in KEYS_READ:
            read.setdefault(path[-1], []).append(path)
    keys = sorted(read, key=str)
    in_messages = [path for path in paths if "messages" in path[:-1]]
    for _ in range(count):
        data = copy.deepcopy(export)
        roll = rng.random()
        if roll < 0.5:  # a key the parser reads, each as likely as the others
            path = rng.choice(read[rng.choice(keys)])
        else:
            path = rng.choice(in_messages if roll < 0.8 else paths)
        description = _apply(data, path, rng)
        yield Mutant(description, export_bytes(data, ensure_ascii=rng.random() < 0.5))


def _paths(value: object, path: Path_) -> Iterator[Path_]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield (*path, key)
            yield from _paths(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield (*path, index)
            yield from _paths(item, (*path, index))


def _apply(data: dict[str, Any], path: Path_, rng: random.Random) -> str:
    parent: Any = data
    for key in path[:-1]:
        parent = parent[key]
    last = path[-1]
    where = ".".join(str(key) for key in path)
    roll = rng.random()
    if roll < 0.1:
        del parent[last]
        return f"deleted {where}"
    message = _enclosing_message(data, path)
    if roll < 0.2 and message is not None:
        messages, index = message
        messages.insert(index, copy.deepcopy(messages[index]))
        return f"doubled the message at {where}"
    name, value = rng.choice(REPLACEMENTS)
    parent[last] = copy.deepcopy(value)
    return f"{where} = {name}"


def _enclosing_message(data: dict[str, Any], path: Path_) -> tuple[list[Any], int] | None:
    """The messages list and index of the message that ``path`` is in, if any."""
    node: Any = data
    found = None
    for position, key in enumerate(path):
        if key == "messages" and position + 1 < len(path):
            found = (node[key], path[position + 1])
        node = node[key]
    if found is None or not isinstance(found[1], int):
        return None
    return found[0], found[1]


def export_bytes(data: dict[str, Any], *, ensure_ascii: bool) -> bytes:
    """The JSON of ``data``, with each Raw value written as its text."""
    raws: list[str] = []

    def marked(value: object) -> object:
        if isinstance(value, Raw):
            raws.append(value.text)
            return f"\x00raw{len(raws) - 1}\x00"
        if isinstance(value, dict):
            return {key: marked(item) for key, item in value.items()}
        if isinstance(value, list):
            return [marked(item) for item in value]
        return value

    text = json.dumps(marked(data), ensure_ascii=ensure_ascii, indent=1)
    for index, raw in enumerate(raws):
        text = text.replace(json.dumps(f"\x00raw{index}\x00"), raw)
    return text.encode("utf-8")


NUMBER = re.compile(r"\d+")
DATE_TITLE = re.compile(r'title="(\d[^"]*)"')
HTML_NUMBERS = ["9" * 30, "9" * 5_000, "0", "99", "0000", "²", ""]
HTML_DATES = [
    "31.12.9999 23:59:59 UTC-03:00",
    "01.01.0001 00:00:00 UTC+05:00",
    "14.03.2024 18:02:11 UTC+99:00",
    "01.01.1900 00:00:00",
    "99.99.2024 99:99:99",
    "",
]


def html_mutants(
    pages: dict[str, str], seed: int, count: int
) -> Iterator[tuple[str, dict[str, str]]]:
    """``count`` mutants of an HTML export's pages (name → text): one change to one page each."""
    rng = random.Random(seed)
    for _ in range(count):
        name = rng.choice(sorted(pages))
        text = pages[name]
        roll = rng.random()
        if roll < 0.4:
            start, end = rng.choice(list(NUMBER.finditer(text))).span()
            value = rng.choice(HTML_NUMBERS)
            description = f"{name}: the number at {start} = {value[:12]!r}"
        elif roll < 0.8:
            start, end = rng.choice(list(DATE_TITLE.finditer(text))).span(1)
            value = rng.choice(HTML_DATES)
            description = f"{name}: the date title at {start} = {value!r}"
        else:
            start = end = text.index('<div class="message', rng.randrange(len(text) // 2))
            value = "<div>" * DEEP + "</div>" * DEEP
            description = f"{name}: 5,000 levels of divs at {start}"
        yield description, pages | {name: text[:start] + value + text[end:]}
