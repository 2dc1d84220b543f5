"""/quiz: the blind test. A held-out prompt the owner really answered, with the owner's reply and
the adapter's as A and B in random order; the owner says which one is theirs.

The material is the adapter's quiz set (``training.quiz_set``: its own run's eval split,
answered when it was judged), so the serving adapter and candidates (``/quiz ID``) are quizzed
alike, and a prompt is never shown twice for one adapter. How often the owner did not find
their own reply shows per adapter in /stats and /adapters.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from datetime import UTC, datetime
from pathlib import Path
from typing import cast

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Message, Update
from telegram.error import BadRequest

from bot.context import CloneContext
from bot.telegram.const import MAX_MESSAGE_CHARS, QUIZ_CALLBACK_PREFIX, QUIZ_EXPIRY
from storage.models import AdapterRecord
from storage.quizzes import (
    ANSWERS,
    SLOTS,
    QuizAnswer,
    QuizSlot,
    answer_quiz,
    get_quiz,
    quizzed_keys,
    start_quiz,
)
from storage.runs import current_adapter, get_adapter
from training.quiz_set import QuizItem, load_quiz_set

logger = logging.getLogger(__name__)

QUIZ_USAGE = "Usage: /quiz for the serving adapter, /quiz ID for another (ids: /adapters)."
NO_ADAPTER = "There is no adapter to quiz yet: /retrain trains the first one."
NO_QUIZ_SET = (
    "Adapter #{id} has no quiz: it was judged before quizzes existed, or its judging could "
    "not let it answer. The next /retrain makes an adapter that has one."
)
UNREADABLE = "Adapter #{id}'s quiz could not be read ({problem})."
ALL_TAKEN = "You have taken every quiz adapter #{id} has ({count} prompts)."
TRY_AGAIN = "That prompt was just quizzed; send /quiz again."
EXPIRED = "This quiz has expired."
ANSWERED = "You already answered this quiz."
TURNS_SHOWN = 6
"""The prompt's last turns shown above the two replies."""
BUTTONS: tuple[tuple[str, QuizAnswer], ...] = (
    ("A is mine", "A"),
    ("B is mine", "B"),
    ("can't tell", "unsure"),
)


async def quiz(update: Update, context: CloneContext) -> None:
    """Show a held-out prompt with the owner's real reply and the adapter's, as A and B."""
    message = update.effective_message
    if message is None:
        return
    db = context.services.db
    args = context.args or []
    if len(args) > 1 or (args and not args[0].lstrip("#").isdigit()):
        await message.reply_text(QUIZ_USAGE)
        return
    adapter = await (get_adapter(db, int(args[0].lstrip("#"))) if args else current_adapter(db))
    if adapter is None:
        missing = f"There is no adapter #{args[0].lstrip('#')}. {QUIZ_USAGE}"
        await message.reply_text(missing if args else NO_ADAPTER)
        return
    item = await _fresh_item(adapter, context)
    if isinstance(item, str):
        await message.reply_text(item)
        return
    owner_slot: QuizSlot = random.choice(SLOTS)
    now = datetime.now(UTC)
    quiz_id = await start_quiz(db, adapter.adapter_id, item.key, owner_slot, now)
    if quiz_id is None:
        await message.reply_text(TRY_AGAIN)
        return
    buttons = [
        InlineKeyboardButton(text, callback_data=f"{QUIZ_CALLBACK_PREFIX}{quiz_id}:{answer}")
        for text, answer in BUTTONS
    ]
    text = quiz_text(adapter.adapter_id, item, owner_slot)
    await message.reply_text(text, reply_markup=InlineKeyboardMarkup([buttons]))


async def _fresh_item(adapter: AdapterRecord, context: CloneContext) -> QuizItem | str:
    """A prompt of the adapter's quiz set not yet quizzed for it, or what to tell the owner."""
    try:
        items = await asyncio.to_thread(load_quiz_set, Path(adapter.path))
    except FileNotFoundError:
        return NO_QUIZ_SET.format(id=adapter.adapter_id)
    except (OSError, ValueError) as exc:
        logger.warning("quiz of adapter %d unreadable: %s", adapter.adapter_id, type(exc).__name__)
        return UNREADABLE.format(id=adapter.adapter_id, problem=type(exc).__name__)
    taken = await quizzed_keys(context.services.db, adapter.adapter_id)
    fresh = [item for item in items if item.key not in taken]
    if not fresh:
        return ALL_TAKEN.format(id=adapter.adapter_id, count=len(items))
    return random.choice(fresh)


def quiz_text(adapter_id: int, item: QuizItem, owner_slot: QuizSlot) -> str:
    """The quiz message: the prompt's last turns, then the two replies (the oldest turns go
    first when it is too long for one message)."""
    first, second = (item.owner, item.clone) if owner_slot == "A" else (item.clone, item.owner)
    head = f"Adapter #{adapter_id}: which reply is yours?"
    answers = f"A: {first}\n\nB: {second}"
    turns = [
        f"{'You' if m['role'] == 'assistant' else 'Them'}: {m['content']}"
        for m in item.prompt[-TURNS_SHOWN:]
    ]
    while True:
        text = "\n\n".join([head, "\n".join(turns), answers] if turns else [head, answers])
        if len(text) <= MAX_MESSAGE_CHARS or len(turns) <= 1:
            return text[:MAX_MESSAGE_CHARS]
        turns = turns[1:]


async def quiz_answer(update: Update, context: CloneContext) -> None:
    """Record which reply the owner took for theirs, and say which one it was."""
    query = update.callback_query
    if query is None or query.data is None:
        return
    parts = query.data.removeprefix(QUIZ_CALLBACK_PREFIX).split(":")
    if len(parts) != 2 or not parts[0].isdigit() or parts[1] not in ANSWERS:
        await query.answer(EXPIRED)
        return
    quiz_id, answer = int(parts[0]), cast(QuizAnswer, parts[1])
    db = context.services.db
    found = await get_quiz(db, quiz_id)
    now = datetime.now(UTC)
    if found is None or now - found.created_at > QUIZ_EXPIRY:
        await query.answer(EXPIRED)
        return
    if not await answer_quiz(db, quiz_id, answer, now):
        await query.answer(ANSWERED)
        return
    verdict = _verdict(answer, found.owner_slot)
    await query.answer(verdict)
    shown = query.message.text if isinstance(query.message, Message) else None
    with contextlib.suppress(BadRequest):  # the message is too old or gone: the answer counts
        await query.edit_message_text(f"{shown}\n\n{verdict}" if shown else verdict)


def _verdict(answer: QuizAnswer, owner_slot: QuizSlot) -> str:
    if answer == owner_slot:
        return f"Right: {owner_slot} was yours. The clone did not fool you this time."
    if answer == "unsure":
        return f"{owner_slot} was yours; you could not tell them apart."
    return f"The clone fooled you: {owner_slot} was yours."
