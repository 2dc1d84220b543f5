"""Reply rules: which owner replies are trained on, and why not.

Each rule returns a reason (a short snake_case word that ``DatasetBuild.drops`` counts) or
None to train on the reply. Which messages become turns at all, and how their text is
cleaned, is the turn shaper's (``training.turns``), shared with serving.
"""

from __future__ import annotations

import unicodedata

from training.config import DatasetConfig

_EDGE_PUNCTUATION = " \t\n.,!?…;:()'\"«»-—–)"
# Joiners and modifiers that sit inside emoji sequences (ZWJ, variation selectors, keycap,
# skin tones) are "Mn"/"Cf"/"Sk" or specific code points rather than "So".
_EMOJI_GLUE = {"\u200d", "\ufe0e", "\ufe0f", "\u20e3"}


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
    """Why an owner reply (one merged turn) teaches no style, or None to train on it.

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
