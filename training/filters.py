"""Cleaning rules: which messages and owner replies are kept for training, and why not.

Each rule returns a drop reason (a short snake_case word that ``DatasetBuild.drops`` counts)
or None to keep the item.
"""

from __future__ import annotations

import re
import unicodedata

from storage.models import MessageRecord
from training.config import DatasetConfig

# Kinds whose ``text`` is something the person typed (a sticker's text is its emoji).
TEXT_KINDS = frozenset({"text", "sticker"})
# Chat-template control strings never come from a person; left in, they would let any
# Telegram message forge turn boundaries in the training text.
CONTROL_TOKENS = ("<|im_start|>", "<|im_end|>", "<|endoftext|>")
_WORD = re.compile(r"\w+")
_EDGE_PUNCTUATION = " \t\n.,!?…;:()'\"«»-—–)"
# Joiners and modifiers that sit inside emoji sequences (ZWJ, variation selectors, keycap,
# skin tones) are "Mn"/"Cf"/"Sk" or specific code points rather than "So".
_EMOJI_GLUE = {"\u200d", "\ufe0e", "\ufe0f", "\u20e3"}
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


def clean_text(text: str) -> str:
    """Strip chat-template control strings and surrounding whitespace."""
    for token in CONTROL_TOKENS:
        text = text.replace(token, "")
    return text.strip()


def message_drop_reason(message: MessageRecord, config: DatasetConfig) -> str | None:
    """Why a message cannot be a training turn at all, or None to keep it.

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


def is_emoji_only(text: str) -> bool:
    """True when the text has emoji/symbols but no letters or digits."""
    has_symbol = False
    for char in text:
        if char.isspace() or char in _EMOJI_GLUE or char in _EDGE_PUNCTUATION:
            continue
        category = unicodedata.category(char)
        if category in ("So", "Sk", "Mn", "Cf") or 0x1F1E6 <= ord(char) <= 0x1F1FF:
            has_symbol = True
            continue
        return False
    return has_symbol


def word_count(text: str) -> int:
    """Number of words (runs of letters, digits or underscores)."""
    return len(_WORD.findall(text))


def normalize_reply(text: str) -> str:
    """Lower-case, trimmed of whitespace and punctuation at the edges (for filler matching)."""
    stripped = text.strip().lower().strip(_EDGE_PUNCTUATION)
    return stripped or text.strip().lower()


def dedup_key(text: str) -> str:
    """Text for near-duplicate matching: case-folded, without punctuation, symbols or emoji,
    whitespace collapsed ("Ок, буду в 5!" and "ок буду в 5" match)."""
    kept = [
        char
        for char in text.casefold()
        if char.isalnum() or char.isspace() or unicodedata.category(char)[0] not in "PSC"
    ]
    return " ".join("".join(kept).split())


def reply_drop_reason(text: str, words: int, config: DatasetConfig) -> str | None:
    """Why an owner reply (one merged turn) teaches no style, or None to keep it.

    Reasons: filler ("ok", "+"), emoji_only, short_reply (``words``, the reply's word count
    without speaker prefixes, under ``min_reply_words``).
    Filler is checked first so that "+" and "👍" count as filler, not emoji or short.
    """
    if config.drop_filler and normalize_reply(text) in config.filler_replies:
        return "filler"
    if config.drop_emoji_only and is_emoji_only(text):
        return "emoji_only"
    if config.drop_short and words < config.min_reply_words:
        return "short_reply"
    return None
