"""Private data out of training text: phones, e-mails, card numbers and codes.

``scrub`` replaces each with a placeholder (``<PHONE>``, ``<EMAIL>``, ``<CARD>``, ``<CODE>``)
so the clone learns *that* the owner shares a number here, never the number itself. The
rules run most specific first (an e-mail may hold digits, a card number looks like a code):

* e-mail: ``local@domain.tld``;
* card: 13-19 digits, optionally grouped by spaces or dashes, that pass the Luhn check
  (a digit run that fails it is not a card, though it may still be a code);
* phone: Russian ``+7``/``8`` numbers with any spacing, dashes or brackets, and
  international ``+<country>`` numbers of 8-15 digits;
* code: a standalone run of 6 or more digits (one-time codes, account and order numbers),
  unless a currency is next to it (``150000 ₽`` and ``$250000`` are prices).

Dates (``2024-01-01``, ``01.01.2024``), times (``12:45``), years, prices grouped by spaces
(``1 500 ₽``) and short numbers stay as they are.
"""

from __future__ import annotations

import re

PHONE = "<PHONE>"
EMAIL = "<EMAIL>"
CARD = "<CARD>"
CODE = "<CODE>"

# Cheap gate: text without a digit or an "@" has nothing to scrub (most chat messages).
_MAY_HOLD = re.compile(r"[\d@]")
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)*\.[^\W\d_]{2,}")
_CARD = re.compile(r"(?<![\d\w])\d(?:[ -]?\d){12,18}(?![\d\w])")
_RU_PHONE = re.compile(
    r"(?<![\w+])(?:\+7|8)[ \-]?\(?\d{3}\)?[ \-]?\d{3}[ \-]?\d{2}[ \-]?\d{2}(?![\d\w])"
)
# +<country code> then digit groups separated by single spaces, dashes or brackets.
_INTL_PHONE = re.compile(r"(?<![\w+])\+\d{1,3}(?:[ \-]?\(?\d{1,5}\)?){1,5}(?![\d\w])")
_CURRENCY_AFTER = r"(?!\s?(?:₽|руб|р\.|\$|€|£|usd|eur|rub|k\b|к\b|тыс))"
# Not part of a decimal, a date or a path: "3.14159265", "10/123456" and "1,500000" stay.
_CODE = re.compile(
    r"(?<![\w/\-$€£])(?<!\d[.,:])\d{6,}(?![\w/\-]|[.,:]\d)" + _CURRENCY_AFTER, re.IGNORECASE
)


def luhn_ok(digits: str) -> bool:
    """The Luhn checksum of payment card numbers (``digits`` holds digits only)."""
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if index % 2:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def _card(match: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", match.group())
    return CARD if 13 <= len(digits) <= 19 and luhn_ok(digits) else match.group()


def _intl_phone(match: re.Match[str]) -> str:
    digits = sum(char.isdigit() for char in match.group())
    return PHONE if 8 <= digits <= 15 else match.group()


def scrub(text: str) -> str:
    """``text`` with private data replaced by placeholders (see the module docstring)."""
    if not _MAY_HOLD.search(text):
        return text
    text = _EMAIL.sub(EMAIL, text)
    text = _CARD.sub(_card, text)
    text = _RU_PHONE.sub(PHONE, text)
    text = _INTL_PHONE.sub(_intl_phone, text)
    return _CODE.sub(CODE, text)
