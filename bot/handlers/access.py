"""The access gate: one early handler decides who may do what; later handlers never check ids.

* The owner and ``ADMIN_IDS``: everything.
* ``ALLOWED_USER_IDS`` (anyone with ``ALLOW_ALL``): chat with the clone; owner-only actions
  are refused each time (a reaction, which labels a reply for training, silently).
* Everyone else: one polite refusal per UTC day (in a group only for an owner-only
  command), then silence. The update stops here, so nothing of theirs reaches the clone or
  its conversation store. (Messages in a group the owner opted into collection are context
  of the owner's corpus: the collection handlers before this gate store them, whoever wrote
  them.)
* An edited message goes no further, whoever sent it: an old message edited into a command
  is not a command.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from datetime import UTC, date, datetime

from telegram import Update
from telegram.error import TelegramError
from telegram.ext import ApplicationHandlerStop

from bot.context import CloneContext
from bot.telegram.const import OWNER_COMMANDS

logger = logging.getLogger(__name__)

REFUSE_OWNER_ONLY = "Sorry, only the owner of this clone can do that."
REFUSE_STRANGER = (
    "Sorry, this is a private clone of its owner and it only talks to people the owner "
    "has allowed. Ask the owner to add your Telegram id."
)

REFUSALS_KEY = "stranger_refusals"


class DailyRefusals:
    """Who was refused on which UTC day, so a stranger hears the refusal once a day.

    Kept in memory only: after a restart a stranger may be told once more that day.
    """

    def __init__(self) -> None:
        self._day: date | None = None
        self._refused: set[int] = set()

    def first_today(self, user_id: int, today: date) -> bool:
        """True the first time ``user_id`` is refused on ``today`` (and remembers it)."""
        if today != self._day:
            self._day = today
            self._refused.clear()
        if user_id in self._refused:
            return False
        self._refused.add(user_id)
        return True


def _refusals(context: CloneContext) -> DailyRefusals:
    refusals = context.application.bot_data.get(REFUSALS_KEY)
    if not isinstance(refusals, DailyRefusals):
        refusals = context.application.bot_data[REFUSALS_KEY] = DailyRefusals()
    return refusals


def _command_name(update: Update) -> str | None:
    """The command a message starts with (``/stats@bot 1`` → ``stats``); None for none, and
    for a bare ``/`` (anyone may send one, in any group)."""
    message = update.effective_message
    if message is None or not message.text or not message.text.startswith("/"):
        return None
    words = message.text[1:].split(maxsplit=1)
    name = words[0].split("@", 1)[0].lower() if words else ""
    return name or None


def _is_owner_only(update: Update) -> bool:
    if update.callback_query is not None:
        return True  # every button the bot shows belongs to an owner command
    if update.message_reaction is not None:
        return True  # a reaction labels a clone reply for training: the owner's call
    message = update.effective_message
    if message is not None and message.document is not None:
        return True
    return _command_name(update) in OWNER_COMMANDS


async def gate(update: Update, context: CloneContext) -> None:
    """Let admins through; let allowed users chat; refuse everyone else and stop."""
    admitted = False
    try:
        admitted = await _admit(update, context)
    finally:
        if not admitted:
            # Fail closed: an update that was not admitted goes no further, even when the
            # refusal could not be sent (PTB runs the next groups after a handler's error).
            if sys.exc_info()[1] is not None:
                logger.error("the access gate failed; the update was stopped", exc_info=True)
            raise ApplicationHandlerStop


async def _admit(update: Update, context: CloneContext) -> bool:
    """Whether the update may go on; refusals are sent here."""
    settings = context.services.settings
    user = update.effective_user
    if user is None or update.edited_message is not None:
        # An edit is never acted on here: editing an old message into a command must not run
        # it. (Group edits were collected before the gate; nothing after it follows edits.)
        return False
    if settings.is_admin(user.id):
        return True
    message = update.effective_message
    may_chat = settings.may_chat(user.id)
    if update.callback_query is not None:
        # A pressed button must be answered, or the client keeps spinning.
        with _unsent("callback refusal"):
            await update.callback_query.answer(REFUSE_OWNER_ONLY, show_alert=True)
        return False
    if may_chat and _is_owner_only(update):
        logger.info("refused owner-only action to user %s", user.id)
        if message is not None:
            with _unsent("owner-only refusal"):
                await message.reply_text(REFUSE_OWNER_ONLY)
        return False
    if may_chat:
        return True
    # A stranger hears one refusal a day: in a private chat for anything, in a group only
    # for an owner-only command (their group chatter is none of the clone's business).
    private = update.effective_chat is not None and update.effective_chat.type == "private"
    if message is None or not (private or _is_owner_only(update)):
        return False
    if _refusals(context).first_today(user.id, datetime.now(UTC).date()):
        logger.info("refused user %s", user.id)
        with _unsent("refusal"):
            await message.reply_text(REFUSE_STRANGER if private else REFUSE_OWNER_ONLY)
    return False


@contextlib.contextmanager
def _unsent(what: str) -> Iterator[None]:
    """A refusal Telegram would not take is logged; the update is refused all the same."""
    try:
        yield
    except TelegramError:
        logger.warning("could not send the %s", what, exc_info=True)
