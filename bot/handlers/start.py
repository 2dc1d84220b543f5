"""/start and /help: what this bot is, in the user's language; /reset: a fresh context."""

from __future__ import annotations

from typing import Literal

from telegram import Update

from bot.context import CloneContext
from bot.telegram.const import COMMANDS

Language = Literal["en", "ru"]

HELP_TEXT: dict[Language, str] = {
    "en": (
        "I am a clone of my owner: a language model trained on how they write. "
        "I am not the owner, and I can be wrong.\n\n"
        "Just write to me and I will answer the way they would. /reset starts a new "
        "conversation."
    ),
    "ru": (
        "Я — клон моего владельца: языковая модель, обученная на том, как он пишет. "
        "Я не владелец и могу ошибаться.\n\n"
        "Просто напишите мне, и я отвечу так, как ответил бы он. /reset начинает разговор "
        "заново."
    ),
}
OWNER_HELP = "\n\nOwner commands:\n" + "\n".join(
    [
        "• send a Telegram Desktop export (result.json, a .zip of the folder, or messages.html)",
        *(
            f"• /{c.name}{' ' + c.arguments if c.arguments else ''}: {c.description}"
            for c in COMMANDS
            if c.access == "owner"
        ),
    ]
)
"""What the owner's /start and /help add: the owner's commands, from the command table."""
RESET_TEXT: dict[Language, str] = {
    "en": "Done: I forgot our conversation so far.",
    "ru": "Готово: я забыл наш разговор.",
}


def language_of(update: Update) -> Language:
    """Russian for clients set to Russian, English otherwise."""
    user = update.effective_user
    code = (user.language_code or "") if user else ""
    return "ru" if code.lower().startswith("ru") else "en"


async def start(update: Update, context: CloneContext) -> None:
    """Explain what the clone is (with the owner's commands for the owner)."""
    message = update.effective_message
    user = update.effective_user
    if message is None or user is None:
        return
    text = HELP_TEXT[language_of(update)]
    if context.services.settings.is_admin(user.id):
        text += OWNER_HELP
    await message.reply_text(text)


async def reset(update: Update, context: CloneContext) -> None:
    """Forget this chat's conversation with the clone; the next message starts afresh."""
    message = update.effective_message
    chat = update.effective_chat
    if message is None or chat is None:
        return
    await context.services.history.clear(chat.id)
    await message.reply_text(RESET_TEXT[language_of(update)])
