"""/fix: the owner's better answer to a clone reply is stored and trains the next run."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from telegram.ext import Application

from bot.context import Services
from bot.handlers.fix import EMPTY_FIX, NOT_A_CLONE_MESSAGE, NOT_A_REPLY, NOTED
from bot.settings import Settings
from storage.clone_turns import add_clone_turn, link_sent_messages
from storage.corrections import count_corrections, load_corrections
from storage.db import Database
from storage.importer import import_export
from storage.models import CloneTurn
from tests.bot.conftest import ALLOWED_ID, bot_settings, running_clone, settle
from tests.bot.scripted_engine import ScriptedEngine
from tests.export_factory import OWNER_ID, write_full_export
from tests.fake_telegram import builders
from tests.fake_telegram.server import FakeTelegramServer
from tests.tiny_model import TOKENIZER_DIR
from training.config import DEFAULT_SYSTEM_PROMPT
from training.prepare import prepare_run

OWNER = builders.user(OWNER_ID, "Owner")
OWNER_CHAT = builders.private_chat(OWNER)
FRIEND = builders.user(ALLOWED_ID, "Friend")
BETTER = "давай, в семь у входа"


def _services(app: Application) -> Services:  # type: ignore[type-arg]
    services = app.bot_data["services"]
    assert isinstance(services, Services)
    return services


def _fix_update(text: str, reply_to: dict[str, Any] | None) -> dict[str, Any]:
    """The owner's /fix command, as a reply to ``reply_to`` when given."""
    return builders.command_update(OWNER_CHAT, OWNER, text, reply_to=reply_to)


def _texts(server: FakeTelegramServer) -> list[str]:
    return [m.get("text", "") for m in server.sent_messages(OWNER_ID)]


async def test_fix_is_stored_and_trains_the_next_run(
    fake_telegram: FakeTelegramServer, tmp_path: Path
) -> None:
    settings = bot_settings(fake_telegram, tmp_path / "data", base_model=str(TOKENIZER_DIR))
    db = await Database.open(settings.database_path)
    await import_export(db, write_full_export(tmp_path / "result.json", conversations=6))
    await db.close()
    async with running_clone(settings, lambda _: ScriptedEngine()) as app:
        fake_telegram.send_text(OWNER, "Пойдём в кино сегодня?")
        reply = await fake_telegram.wait_for_message(
            OWNER_ID, lambda m: m.get("text", "").startswith("re:")
        )
        await settle(app, fake_telegram)
        fake_telegram.push_update(_fix_update(f"/fix {BETTER}", reply))
        await fake_telegram.wait_for_message(OWNER_ID, lambda m: m.get("text") == NOTED)
        [correction] = await load_corrections(_services(app).db)
        fake_telegram.send_command(OWNER, "/stats")
        await fake_telegram.wait_for_message(
            OWNER_ID, lambda m: "/fix corrections (trained on next run): 1" in m.get("text", "")
        )
    assert correction.chat_id == OWNER_ID
    assert correction.context == [
        {"role": "system", "content": DEFAULT_SYSTEM_PROMPT},
        {"role": "user", "content": "Пойдём в кино сегодня?"},
    ]
    assert correction.clone_text == "re: Пойдём в кино сегодня?"
    assert correction.better_text == BETTER

    db = await Database.open(settings.database_path)
    try:
        prepared = await prepare_run(db, settings, run_id=1)
    finally:
        await db.close()
    train = _lines(prepared.config.train_file)
    held_out = _lines(prepared.config.eval_file)
    assert prepared.corrections == 1
    assert prepared.build.stats["corrections"] == 1
    assert train[-1] == [
        {"role": "system", "content": settings.dataset_config().system_prompt},
        {"role": "user", "content": "Пойдём в кино сегодня?"},
        {"role": "assistant", "content": BETTER},
    ]
    assert not any(m["content"] == BETTER for sample in held_out for m in sample)
    assert sum(m["content"] == BETTER for sample in train for m in sample) == 1
    assert prepared.config.dataset_size == len(train) + len(held_out)


def _lines(path: Path) -> list[list[dict[str, str]]]:
    return [json.loads(line)["messages"] for line in path.read_text("utf-8").splitlines()]


async def test_bad_fixes_get_help_and_store_nothing(
    settings: Settings, fake_telegram: FakeTelegramServer
) -> None:
    async with running_clone(settings, lambda _: ScriptedEngine()) as app:
        db = _services(app).db
        now = datetime.now(UTC)
        await add_clone_turn(db, CloneTurn(OWNER_ID, "user", "hi", now))
        turn_id = await add_clone_turn(db, CloneTurn(OWNER_ID, "assistant", "re: hi", now))
        await link_sent_messages(db, OWNER_ID, turn_id, [900])
        bot_user = fake_telegram.bot_user
        clone_message = builders.message(OWNER_CHAT, bot_user, text="re: hi", message_id=900)
        other_bot_message = builders.message(OWNER_CHAT, bot_user, text="Chats: 0", message_id=901)
        own_message = builders.message(OWNER_CHAT, OWNER, text="hi", message_id=899)

        fake_telegram.push_update(_fix_update(f"/fix {BETTER}", None))
        await fake_telegram.wait_for_message(OWNER_ID, lambda m: m.get("text") == NOT_A_REPLY)
        fake_telegram.push_update(_fix_update("/fix   ", clone_message))
        await fake_telegram.wait_for_message(OWNER_ID, lambda m: m.get("text") == EMPTY_FIX)
        fake_telegram.push_update(_fix_update(f"/fix {BETTER}", other_bot_message))
        fake_telegram.push_update(_fix_update(f"/fix {BETTER}", own_message))
        await fake_telegram.wait_until(
            lambda: _texts(fake_telegram).count(NOT_A_CLONE_MESSAGE) == 2
        )
        await settle(app, fake_telegram)
        assert await count_corrections(db) == 0
        assert NOTED not in _texts(fake_telegram)

        fake_telegram.push_update(_fix_update(f"/fix@tgclone_test_bot {BETTER}", clone_message))
        await fake_telegram.wait_for_message(OWNER_ID, lambda m: m.get("text") == NOTED)
        [correction] = await load_corrections(db)
    assert correction.turn_id == turn_id
    assert correction.context == [{"role": "user", "content": "hi"}]
    assert correction.better_text == BETTER


async def test_others_cannot_fix(settings: Settings, fake_telegram: FakeTelegramServer) -> None:
    async with running_clone(settings, lambda _: ScriptedEngine()) as app:
        chat = builders.private_chat(FRIEND)
        replied = builders.message(chat, fake_telegram.bot_user, text="re: hi", message_id=5)
        fake_telegram.push_update(
            builders.command_update(chat, FRIEND, "/fix nope", reply_to=replied)
        )
        await fake_telegram.wait_for_message(
            ALLOWED_ID, lambda m: "only the owner" in m.get("text", "")
        )
        assert await count_corrections(_services(app).db) == 0
