"""Reply splitting and the serving history's shape."""

from __future__ import annotations

import random

import pytest

from bot.replies.parts import MAX_PARTS, reply_parts, settled_parts, split_message


def test_short_reply_is_one_message() -> None:
    assert split_message("привет") == ["привет"]


def test_long_reply_splits_on_lines_then_words() -> None:
    text = ("a" * 3000) + "\n" + ("слово " * 400)
    chunks = split_message(text)
    assert all(len(c) <= 4096 for c in chunks)
    assert chunks[0] == "a" * 3000
    assert " ".join(chunks[1:]).split() == ["слово"] * 400


def test_unbroken_text_is_cut_at_the_limit() -> None:
    chunks = split_message("x" * 9000)
    assert [len(c) for c in chunks] == [4096, 4096, 808]


def _random_reply(rng: random.Random) -> str:
    """Words, blanks, newlines and now and then an unbroken run longer than a message."""
    pieces = []
    for _ in range(rng.randint(1, 60)):
        roll = rng.random()
        if roll < 0.2:
            pieces.append("\n" * rng.randint(1, 2) + " " * rng.randint(0, 2))
        elif roll < 0.25:
            pieces.append("x" * rng.randint(1000, 5000))
        elif roll < 0.3:
            pieces.append(" " * rng.randint(1, 3))
        else:
            pieces.append(rng.choice(["да", "ok", "слово", "hi!", "🙂", "a" * 300]) + " ")
    return "".join(pieces)


@pytest.mark.parametrize("split_lines", [True, False])
def test_settled_parts_never_change_as_the_reply_grows(split_lines: bool) -> None:
    rng = random.Random(6)
    for _ in range(60):
        text = _random_reply(rng)
        final = reply_parts(text, split_lines=split_lines)
        previous: list[str] = []
        for end in sorted({*rng.sample(range(len(text) + 1), min(len(text) + 1, 40)), len(text)}):
            settled = settled_parts(text[:end], split_lines=split_lines)
            assert settled == final[: len(settled)], (text[:end], settled)
            assert settled[: len(previous)] == previous, "a settled part was taken back"
            previous = settled
        assert all(0 < len(part) <= 4096 for part in final)


def test_a_line_settles_when_its_newline_arrives() -> None:
    assert settled_parts("привет", split_lines=True) == []
    assert settled_parts("привет\nкак", split_lines=True) == ["привет"]
    assert settled_parts("привет\n\n  как дела?  \nну", split_lines=True) == [
        "привет",
        "как дела?",
    ]
    assert settled_parts("привет\nкак", split_lines=False) == []


def test_lines_past_the_part_limit_wait_for_the_end() -> None:
    lines = [f"line {n}" for n in range(MAX_PARTS + 2)]
    text = "\n".join(lines) + "\n"
    assert settled_parts(text, split_lines=True) == lines[: MAX_PARTS - 1]
    assert reply_parts(text, split_lines=True)[-1] == "\n".join(lines[MAX_PARTS - 1 :])


def test_trailing_blanks_of_the_line_in_progress_settle_nothing() -> None:
    # The tail fits one message once its trailing blanks are stripped: nothing settles early.
    head = "".join(f"{n}\n" for n in range(MAX_PARTS - 1))
    prefix = head + "tail\n" + "b" * 4090 + "    "
    assert settled_parts(prefix, split_lines=True) == [str(n) for n in range(MAX_PARTS - 1)]
    assert reply_parts(prefix, split_lines=True)[-1] == "tail\n" + "b" * 4090


def test_a_blank_reply_has_no_parts() -> None:
    assert reply_parts("  \n ", split_lines=True) == []
    assert reply_parts("  \n ", split_lines=False) == []
