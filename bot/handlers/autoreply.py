"""/autoreply: the owner switches the clone's answers in connected Business chats."""

from __future__ import annotations

from telegram import Update

from bot.context import CloneContext
from bot.replies.business import auto_reply_on
from storage.auto_reply import replying_connections, set_auto_reply

USAGE = (
    "Use /autoreply on to let me answer as you in your connected Telegram Business chats, "
    "/autoreply off to stop."
)
STATE = "Auto-reply in your Business chats is {state}."
SWITCHED_ON = (
    "Auto-reply is on: when someone writes to you in a connected chat and pauses, I answer "
    "as you. /autoreply off stops it."
)
SWITCHED_OFF = "Auto-reply is off: I only learn from your Business chats."
NO_REPLY_RIGHTS = (
    "Auto-reply stays off: no connected Telegram Business account lets me reply. In Telegram, "
    "open Settings → Telegram Business → Chatbots, connect me and allow replying to messages, "
    "then send /autoreply on again."
)


async def autoreply(update: Update, context: CloneContext) -> None:
    """Show auto-reply's state, or switch it with on/off."""
    message = update.effective_message
    if message is None:
        return
    services = context.services
    args = [a.lower() for a in context.args or []]
    if not args:
        on = await auto_reply_on(services.db, services.settings)
        await message.reply_text(f"{STATE.format(state='on' if on else 'off')} {USAGE}")
        return
    if len(args) != 1 or args[0] not in ("on", "off"):
        await message.reply_text(USAGE)
        return
    if args[0] == "on":
        if await replying_connections(services.db, services.settings.owner_id) == 0:
            await message.reply_text(NO_REPLY_RIGHTS)
            return
        await set_auto_reply(services.db, True)
        await message.reply_text(SWITCHED_ON)
        return
    await set_auto_reply(services.db, False)
    await message.reply_text(SWITCHED_OFF)
