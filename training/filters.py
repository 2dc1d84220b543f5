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


def clean_text(text: str) -> str:
    """Strip chat-template control strings and surrounding whitespace."""
    for token in CONTROL_TOKENS:
        text = text.replace(token, "")
    return text.strip()


def message_drop_reason(message: MessageRecord) -> str | None:
    """Why a message cannot be a training turn at all, or None to keep it.

    Reasons: the message kind (service, media, poll, call, other), forwarded, via_bot, empty.
    """
    if message.kind not in TEXT_KINDS:
        return message.kind
    if message.forwarded_from is not None:
        return "forwarded"
    if message.via_bot is not None:
        return "via_bot"
    if not clean_text(message.text):
        return "empty"
    return None


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


def reply_drop_reason(text: str, config: DatasetConfig) -> str | None:
    """Why an owner reply (one merged turn) teaches no style, or None to keep it.

    Reasons: filler ("ok", "+"), emoji_only, short_reply (fewer than ``min_reply_words``).
    Filler is checked first so that "+" and "👍" count as filler, not emoji or short.
    """
    if config.drop_filler and normalize_reply(text) in config.filler_replies:
        return "filler"
    if config.drop_emoji_only and is_emoji_only(text):
        return "emoji_only"
    if config.drop_short and word_count(text) < config.min_reply_words:
        return "short_reply"
    return None
