"""Privacy scrub: Russian and international formats become placeholders; look-alikes stay."""

from __future__ import annotations

import pytest

from training.privacy import luhn_ok, scrub


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("звони +7 (916) 123-45-67", "звони <PHONE>"),
        ("или 8 916 123 45 67 вечером", "или <PHONE> вечером"),
        ("89161234567", "<PHONE>"),
        ("+7-916-123-45-67", "<PHONE>"),
        ("call +44 20 7946 0958", "call <PHONE>"),
        ("US: +1 (415) 555-2671.", "US: <PHONE>."),
        ("пиши на ivan.petrov@mail.ru", "пиши на <EMAIL>"),
        ("mail John.Doe+tg@example.co.uk!", "mail <EMAIL>!"),
        ("карта 4111 1111 1111 1111", "карта <CARD>"),
        ("card 5500-0000-0000-0004 ok", "card <CARD> ok"),
        ("код 123456", "код <CODE>"),
        ("your code: 98765432.", "your code: <CODE>."),
    ],
)
def test_private_data_becomes_placeholders(text: str, expected: str) -> None:
    assert scrub(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "встреча 2024-01-01 10:00",
        "01.01.2024 в 12:45",
        "стоит 1 500 ₽",
        "стоит 150000 ₽",
        "price $250000",
        "в 2023 году",
        "дом 15, кв 7",
        "pi is 3.14159265",
        "1,500,000 views",
        "no digits at all",
    ],
)
def test_dates_times_prices_years_and_short_numbers_stay(text: str) -> None:
    assert scrub(text) == text


def test_non_luhn_digit_runs_are_not_cards() -> None:
    assert not luhn_ok("1234567890123456") and luhn_ok("4111111111111111")
    assert scrub("1234 5678 9012 3456") == "1234 5678 9012 3456"
    assert scrub("1234567890123456") == "<CODE>"  # a long code, not a card
