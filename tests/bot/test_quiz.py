"""/quiz through the fake Bot API: A and B in random order, answers per adapter, the figures in
/stats and /adapters, and buttons nobody else (and no stale quiz) can use."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bot.handlers.quiz import ALL_TAKEN, ANSWERED, EXPIRED, NO_QUIZ_SET
from bot.settings import Settings
from bot.telegram.const import QUIZ_EXPIRY
from storage.db import Database
from storage.quizzes import get_quiz, start_quiz
from storage.runs import add_adapter
from tests.bot.conftest import STRANGER_ID, running_clone, services_of, settle
from tests.bot.scripted_engine import ScriptedEngine
from tests.export_factory import OWNER_ID
from tests.fake_telegram import builders
from tests.fake_telegram.server import FakeTelegramServer
from training.chat_format import ChatMessage
from training.quiz_set import prompt_key, quiz_items, save_quiz_set

OWNER = builders.user(OWNER_ID, "Owner")
STRANGER = builders.user(STRANGER_ID, "Stranger")
OWNER_REPLIES = ["ага, в семь у кинотеатра", "не, завтра работаю до ночи"]
CLONE_REPLIES = ["Конечно! Вот план на вечер", "As an AI I have no evenings"]


def _adapter_dir(root: Path, name: str, *, quiz: bool = True) -> Path:
    """An adapter directory with a quiz set of two prompts (no weights: the quiz needs none)."""
    folder = root / name
    folder.mkdir(parents=True)
    prompts: list[list[ChatMessage]] = [
        [{"role": "user", "content": "Пойдём в кино?"}],
        [
            {"role": "user", "content": "Ты завтра свободен?"},
            {"role": "assistant", "content": "смотря когда"},
            {"role": "user", "content": "вечером"},
        ],
    ]
    pairs = list(zip(prompts, OWNER_REPLIES, strict=True))
    if quiz:
        save_quiz_set(folder, quiz_items(pairs, [(text, True) for text in CLONE_REPLIES]))
    return folder


def _slots(text: str) -> dict[str, str]:
    """The two replies a quiz message shows, by letter."""
    found = re.search(r"\nA: (.*)\n\nB: (.*)$", text, flags=re.DOTALL)
    assert found, text
    return {"A": found.group(1), "B": found.group(2)}


class Quizzer:
    """The owner taking quizzes in the running app."""

    def __init__(self, app: Any, server: FakeTelegramServer) -> None:
        self.app = app
        self.server = server

    async def ask(self, command: str) -> dict[str, Any]:
        self.server.send_command(OWNER, command)
        # The next new message (a quiz answered before was edited: that is no answer).
        return await self.server.wait_for_message(OWNER_ID, lambda m: "edit_date" not in m)

    async def press(self, who: dict[str, Any], message: dict[str, Any], data: str) -> str:
        """Press a button; what the bot answered the press with."""
        before = len(self.server.calls_to("answerCallbackQuery"))
        self.server.push_update(builders.callback_query_update(who, data, message))
        await settle(self.app, self.server)
        answers = self.server.calls_to("answerCallbackQuery")
        assert len(answers) == before + 1
        return str(answers[-1].get("text"))


def _data(message: dict[str, Any], label: str) -> str:
    [row] = message["reply_markup"]["inline_keyboard"]
    return next(str(b["callback_data"]) for b in row if b["text"] == label)


async def test_quiz_shows_both_replies_and_counts_answers_per_adapter(
    settings: Settings, fake_telegram: FakeTelegramServer, tmp_path: Path
) -> None:
    async with running_clone(settings, lambda _: ScriptedEngine()) as app:
        db = services_of(app).db
        serving = _adapter_dir(tmp_path, "serving")
        candidate = _adapter_dir(tmp_path, "candidate")
        await add_adapter(db, None, str(serving), {"eval_loss": 2.0}, promoted=True)
        await add_adapter(db, None, str(candidate), {"eval_loss": 2.1}, promoted=False)
        quizzer = Quizzer(app, fake_telegram)

        seen_prompts = set()
        for answer in ("clone", "can't tell"):
            shown = await quizzer.ask("/quiz")
            assert shown["text"].startswith("Adapter #1: which reply is yours?")
            assert [b["text"] for b in shown["reply_markup"]["inline_keyboard"][0]] == [
                "A is mine",
                "B is mine",
                "can't tell",
            ]
            slots = _slots(shown["text"])
            assert sorted(slots.values()) in (
                sorted([OWNER_REPLIES[0], CLONE_REPLIES[0]]),
                sorted([OWNER_REPLIES[1], CLONE_REPLIES[1]]),
            )
            mine = next(letter for letter, text in slots.items() if text in OWNER_REPLIES)
            quiz_id = int(_data(shown, "A is mine").split(":")[1])
            stored = await get_quiz(db, quiz_id)
            assert stored is not None and stored.owner_slot == mine and stored.answer is None
            seen_prompts.add(stored.prompt_key)
            clone_slot = "B" if mine == "A" else "A"
            button = f"{clone_slot} is mine" if answer == "clone" else "can't tell"
            said = await quizzer.press(OWNER, shown, _data(shown, button))
            assert f"{mine} was yours" in said
            answered = await get_quiz(db, quiz_id)
            assert answered is not None and answered.answer == (
                clone_slot if answer == "clone" else "unsure"
            )
            edited = fake_telegram.sent_messages(OWNER_ID)[-1]
            assert edited["text"].endswith(said) and "reply_markup" not in edited
            assert await quizzer.press(OWNER, shown, _data(shown, "A is mine")) == ANSWERED
        # Never the same prompt twice for one adapter.
        assert len(seen_prompts) == 2
        assert (await quizzer.ask("/quiz"))["text"] == ALL_TAKEN.format(id=1, count=2)

        # A candidate is quizzed on its own; the owner finds their reply.
        shown = await quizzer.ask("/quiz 2")
        assert shown["text"].startswith("Adapter #2:")
        mine = next(k for k, v in _slots(shown["text"]).items() if v in OWNER_REPLIES)
        assert "did not fool you" in await quizzer.press(
            OWNER, shown, _data(shown, f"{mine} is mine")
        )

        stats = await quizzer.ask("/stats")
        listing = await quizzer.ask("/adapters")
    # Wilson 95% intervals: 2 of 2 is 34-100%, 0 of 1 is 0-79%.
    assert "adapter #1 (serving): missed yours 2/2 (100%, 95% CI 34%–100%)" in stats["text"]
    assert "adapter #2: missed yours 0/1 (0%, 95% CI 0%–79%)" in stats["text"]
    lines = listing["text"].splitlines()
    assert "quiz: missed yours 0/1 (0%, 95% CI 0%–79%)" in lines[0]
    assert "quiz: missed yours 2/2 (100%, 95% CI 34%–100%)" in lines[1]


async def test_only_the_owner_answers_and_stale_quizzes_are_refused(
    settings: Settings, fake_telegram: FakeTelegramServer, tmp_path: Path
) -> None:
    async with running_clone(settings, lambda _: ScriptedEngine()) as app:
        db = services_of(app).db
        await add_adapter(db, None, str(_adapter_dir(tmp_path, "a1")), {}, promoted=True)
        no_quiz = _adapter_dir(tmp_path, "a2", quiz=False)
        await add_adapter(db, None, str(no_quiz), {}, promoted=False)
        quizzer = Quizzer(app, fake_telegram)
        assert (await quizzer.ask("/quiz 2"))["text"] == NO_QUIZ_SET.format(id=2)
        assert (await quizzer.ask("/quiz 7"))["text"].startswith("There is no adapter #7.")
        assert (await quizzer.ask("/quiz two"))["text"].startswith("Usage: /quiz")

        shown = await quizzer.ask("/quiz")
        quiz_id = int(_data(shown, "A is mine").split(":")[1])
        refused = await quizzer.press(STRANGER, shown, _data(shown, "A is mine"))
        assert refused.startswith("Sorry, only the owner")
        assert (await get_quiz(db, quiz_id)).answer is None  # type: ignore[union-attr]
        for data in ("quiz:", "quiz:x:A", f"quiz:{quiz_id}:C", "quiz:999:A"):
            assert await quizzer.press(OWNER, shown, data) == EXPIRED
        assert (await get_quiz(db, quiz_id)).answer is None  # type: ignore[union-attr]

        # A quiz older than QUIZ_EXPIRY, and one whose adapter was deleted, have expired.
        old = await start_quiz(db, 1, "an old prompt", "A", datetime.now(UTC) - QUIZ_EXPIRY * 2)
        assert old is not None
        assert await quizzer.press(OWNER, shown, f"quiz:{old}:A") == EXPIRED
        assert (await get_quiz(db, old)).answer is None  # type: ignore[union-attr]
        async with db.transaction() as conn:
            await conn.execute("DELETE FROM adapters WHERE adapter_id = 1")
        assert await quizzer.press(OWNER, shown, _data(shown, "B is mine")) == EXPIRED
        await settle(app, fake_telegram)
    assert await _quiz_rows(settings) == 0  # the deleted adapter's quizzes went with it


async def _quiz_rows(settings: Settings) -> int:
    db = await Database.open(settings.database_path)
    try:
        async with db.read() as conn, conn.execute("SELECT COUNT(*) FROM quizzes") as cursor:
            row = await cursor.fetchone()
    finally:
        await db.close()
    return int(row[0]) if row else -1


def test_quiz_items_leave_out_what_would_give_the_clone_away() -> None:
    prompt: list[ChatMessage] = [{"role": "user", "content": "как дела?"}]
    pairs = [(prompt, "норм"), (prompt, "норм"), (prompt, "норм"), (prompt, "отлично")]
    replies = [("хорошо", True), ("хорошо, а у т", False), ("   ", True), ("отлично", True)]
    [item] = quiz_items(pairs, replies)
    assert (item.owner, item.clone) == ("норм", "хорошо")
    assert item.key == prompt_key(prompt, "норм") != prompt_key(prompt, "отлично")
