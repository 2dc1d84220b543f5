"""Owner controls of collection: /collect on|off, /pause, /resume, /forget (with confirmation)."""

from __future__ import annotations

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update

from bot.context import CloneContext
from bot.telegram.const import FORGET_CALLBACK_PREFIX
from bot.telegram.records import chat_record
from storage.collection import (
    count_messages,
    forget,
    set_collection_paused,
    set_group_collection,
)

COLLECT_USAGE = (
    "Use /collect on (or off) inside a group I am a member of, to let me learn from it. "
    "I need privacy mode off (@BotFather → Bot Settings → Group Privacy) to see its messages."
)
FORGET_USAGE = (
    "Usage: /forget all — delete everything I collected; /forget CHAT_ID — one chat; "
    "or /forget inside a group — that group."
)


async def collect(update: Update, context: CloneContext) -> None:
    """Switch collection of this group's messages on or off."""
    message = update.effective_message
    chat = update.effective_chat
    if message is None or chat is None:
        return
    choice = (context.args or [""])[0].lower()
    if chat.type not in ("group", "supergroup") or choice not in ("on", "off"):
        await message.reply_text(COLLECT_USAGE)
        return
    await set_group_collection(context.services.db, chat_record(chat), choice == "on")
    if choice == "on":
        await message.reply_text("I'll learn from this group's messages from now on.")
    else:
        await message.reply_text("I stopped collecting this group's messages.")


async def pause(update: Update, context: CloneContext) -> None:
    """Stop all live collection until /resume."""
    await set_collection_paused(context.services.db, True)
    if update.effective_message is not None:
        await update.effective_message.reply_text(
            "Live collection paused: nothing new is stored until /resume."
        )


async def resume(update: Update, context: CloneContext) -> None:
    """Resume live collection."""
    await set_collection_paused(context.services.db, False)
    if update.effective_message is not None:
        await update.effective_message.reply_text("Live collection resumed.")


def _forget_target(update: Update, args: list[str]) -> tuple[int | None, str] | None:
    """(chat id or None for everything, a name for it), or None when the command is unclear."""
    chat = update.effective_chat
    if chat is not None and chat.type in ("group", "supergroup") and not args:
        return chat.id, f"this group ({chat.title})"
    if len(args) != 1:
        return None
    if args[0].lower() == "all":
        return None, "all chats"
    try:
        chat_id = int(args[0])
    except ValueError:
        return None
    return chat_id, f"chat {chat_id}"


async def forget_command(update: Update, context: CloneContext) -> None:
    """Ask for confirmation before deleting a chat's messages, or everything."""
    message = update.effective_message
    if message is None:
        return
    target = _forget_target(update, list(context.args or []))
    if target is None:
        await message.reply_text(FORGET_USAGE)
        return
    chat_id, name = target
    count = await count_messages(context.services.db, chat_id)
    if count == 0:
        await message.reply_text(f"I have no messages of {name}.")
        return
    key = "all" if chat_id is None else str(chat_id)
    buttons = InlineKeyboardMarkup(
        [
            [
                InlineKeyboardButton(
                    f"Delete {count} messages", callback_data=f"{FORGET_CALLBACK_PREFIX}{key}"
                ),
                InlineKeyboardButton("Cancel", callback_data=f"{FORGET_CALLBACK_PREFIX}cancel"),
            ]
        ]
    )
    await message.reply_text(
        f"Delete {count} stored messages of {name}? This cannot be undone. Adapters already "
        "trained stay until the next /retrain.",
        reply_markup=buttons,
    )


async def forget_confirmed(update: Update, context: CloneContext) -> None:
    """Delete what the owner confirmed (or say it was cancelled)."""
    query = update.callback_query
    if query is None or query.data is None:
        return
    key = query.data.removeprefix(FORGET_CALLBACK_PREFIX)
    await query.answer()
    if key == "cancel":
        await query.edit_message_text("Cancelled: nothing was deleted.")
        return
    chat_id = None if key == "all" else int(key)
    deleted = await forget(context.services.db, chat_id)
    await query.edit_message_text(f"Deleted {deleted} messages.")
