"""Errors: one friendly line to the user, the traceback to the log, a condensed one to the owner.

Neither the log nor the owner's note may carry the user's text, even when an exception quotes it.
"""

from __future__ import annotations

import logging

import pytest
from telegram.error import BadRequest

from bot.handlers.errors import USER_ERROR_TEXT, condensed_traceback, traceback_text
from bot.settings import Settings
from storage.errors import ExportError
from tests.bot.conftest import ALLOWED_ID, running_clone, settle
from tests.bot.scripted_engine import ScriptedEngine
from tests.export_factory import OWNER_ID
from tests.fake_telegram import builders
from tests.fake_telegram.server import FakeTelegramServer

FRIEND = builders.user(ALLOWED_ID, "Friend")
SECRET = "my card pin is 4321"


def _inner(text: str) -> None:
    raise KeyError(text)


def _outer(text: str) -> None:
    try:
        _inner(text)
    except KeyError as exc:
        raise RuntimeError(f"lookup failed for {text}") from exc


def _raised(function: object, *args: object) -> BaseException:
    with pytest.raises(BaseException) as caught:
        function(*args)  # type: ignore[operator]
    return caught.value


def test_condensed_traceback_names_type_and_our_frames_without_the_message() -> None:
    error = _raised(_outer, SECRET)
    note = condensed_traceback(error)
    lines = note.splitlines()
    assert lines[0] == "RuntimeError"
    assert lines[-2].startswith("tests/bot/test_errors.py:")
    assert lines[-2].endswith(" in _outer")
    assert lines[-1] == "caused by KeyError"
    assert SECRET not in note and "4321" not in note


def test_the_logged_traceback_has_every_frame_but_no_foreign_message() -> None:
    text = traceback_text(_raised(_outer, SECRET))
    assert "in _inner" in text and "in _outer" in text and "raise KeyError(text)" in text
    assert "which led to:" in text
    assert SECRET not in text


def test_our_own_and_telegrams_exception_messages_are_kept() -> None:
    ours = ExportError("the export has no messages")
    assert condensed_traceback(ours) == "ExportError: the export has no messages"
    assert condensed_traceback(BadRequest("Message is too long")).startswith(
        "BadRequest: Message is too long"
    )


def test_only_the_last_frames_of_our_code_are_kept() -> None:
    def deep(n: int) -> None:
        if n == 0:
            raise ValueError(SECRET)
        deep(n - 1)

    note = condensed_traceback(_raised(deep, 10), frames=3)
    assert note.splitlines()[0] == "ValueError"
    assert len(note.splitlines()) == 4
    assert all(" in deep" in line for line in note.splitlines()[1:])


async def test_a_failing_reply_is_one_line_to_the_user_and_a_condensed_note_to_the_owner(
    settings: Settings, fake_telegram: FakeTelegramServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with running_clone(settings, lambda _: ScriptedEngine(fail=True)) as app:
        fake_telegram.send_text(FRIEND, SECRET)
        await fake_telegram.wait_for_message(ALLOWED_ID, lambda m: m["text"] == USER_ERROR_TEXT)
        note = await fake_telegram.wait_for_message(OWNER_ID, lambda m: "error" in m["text"])
        await settle(app, fake_telegram)
    assert [m["text"] for m in fake_telegram.sent_messages(ALLOWED_ID)] == [USER_ERROR_TEXT]
    assert note["text"].splitlines()[1] == "RuntimeError"
    assert f"in chat {ALLOWED_ID}" in note["text"]
    assert "tests/bot/scripted_engine.py:" in note["text"]
    assert "bot/replies/streaming.py:" in note["text"]
    assert "4321" not in note["text"]
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("bot"))
    assert "in generate" in logged, "the traceback reaches the log"
    assert "4321" not in caplog.text, "message text never reaches the log"
