"""/start and /help: what this bot is and what it can do."""

from __future__ import annotations

from telegram import Update

from bot.context import CloneContext

HELP_TEXT = (
    "I am a clone of my owner: a language model trained on how they write. "
    "I am not the owner, and I can be wrong.\n\n"
    "Just write to me and I will answer the way they would."
)
OWNER_HELP = (
    "\n\nOwner commands:\n"
    "• send a Telegram Desktop export (result.json) to add your messages\n"
    "• /retrain to train a new adapter now\n"
    "• /stats for data and training figures"
)


async def start(update: Update, context: CloneContext) -> None:
    """Explain what the clone is (with the owner's commands for the owner)."""
    message = update.effective_message
    user = update.effective_user
    if message is None or user is None:
        return
    text = HELP_TEXT
    if user.id == context.services.settings.owner_id:
        text += OWNER_HELP
    await message.reply_text(text)
