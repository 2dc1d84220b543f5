"""Live collection: the owner's Business chats and the groups the owner opted in.

These handlers run before the access gate. Business updates stop there (they are never
conversations with the clone); group messages go on to the gate and the commands. What they
store goes through ``Database.write_soon``: while an import holds the database it is queued
behind it, in order, and the update is done.
"""

from __future__ import annotations

import logging
from functools import partial

from telegram import BusinessConnection, Message, Update
from telegram.ext import ApplicationHandlerStop

from bot.context import CloneContext
from bot.telegram.records import chat_record, edit_time, message_record, text_and_kind
from storage.collection import (
    BusinessConnectionRecord,
    collection_paused,
    delete_messages,
    get_business_connection,
    group_collection_enabled,
    save_business_connection,
    update_message_text,
)
from storage.db import Database
from storage.messages import save_live_message

logger = logging.getLogger(__name__)


def _record(connection: BusinessConnection) -> BusinessConnectionRecord:
    rights = connection.rights
    return BusinessConnectionRecord(
        connection_id=connection.id,
        user_id=connection.user.id,
        user_chat_id=connection.user_chat_id,
        can_reply=bool(rights and rights.can_reply),
        is_enabled=connection.is_enabled,
    )


FOREIGN_CONNECTIONS_KEY = "foreign_business_connections"
FOREIGN_CONNECTIONS_KEPT = 1024
"""Connection ids of other people remembered (oldest forgotten first): their updates cost no
Bot API call, and a flood of new ids cannot grow the bot's memory."""


def _foreign_connections(context: CloneContext) -> dict[str, None]:
    """Ids of Business connections that are not the owner's (an ordered set, in memory only:
    nothing of other people is stored)."""
    known = context.application.bot_data.get(FOREIGN_CONNECTIONS_KEY)
    if not isinstance(known, dict):
        known = context.application.bot_data[FOREIGN_CONNECTIONS_KEY] = {}
    return known


def _remember_foreign(context: CloneContext, connection_id: str) -> None:
    foreign = _foreign_connections(context)
    foreign[connection_id] = None
    if len(foreign) > FOREIGN_CONNECTIONS_KEPT:
        del foreign[next(iter(foreign))]


async def on_business_connection(update: Update, context: CloneContext) -> None:
    """Remember the owner's Business connection; ignore anyone else's."""
    connection = update.business_connection
    if connection is None:
        raise ApplicationHandlerStop
    services = context.services
    if connection.user.id != services.settings.owner_id:
        logger.warning("ignored a Business connection of user %s", connection.user.id)
        _remember_foreign(context, connection.id)
        raise ApplicationHandlerStop
    await services.db.write_soon(
        partial(save_business_connection, services.db, _record(connection))
    )
    state = "connected" if connection.is_enabled else "disconnected"
    logger.info("Business connection %s %s", connection.id, state)
    if connection.is_enabled:
        text = (
            "Connected to your Telegram Business chats: I'll learn from your private chats "
            "as they happen. /pause stops that at any time."
        )
    else:
        text = "Disconnected from your Business chats; I no longer collect them."
    await context.bot.send_message(services.settings.owner_id, text)
    raise ApplicationHandlerStop


async def _owner_connection(
    context: CloneContext, connection_id: str | None
) -> BusinessConnectionRecord | None:
    """The connection if it is the owner's and enabled (asked from Telegram if unknown)."""
    if connection_id is None:
        return None
    services = context.services
    if connection_id in _foreign_connections(context):
        return None
    record = await get_business_connection(services.db, connection_id)
    if record is None:
        record = _record(await context.bot.get_business_connection(connection_id))
        if record.user_id == services.settings.owner_id:
            await services.db.write_soon(partial(save_business_connection, services.db, record))
        else:
            _remember_foreign(context, connection_id)
    if record.user_id != services.settings.owner_id or not record.is_enabled:
        return None
    return record


async def _store(db: Database, message: Message, owner_id: int, edited: bool) -> None:
    record = message_record(message, owner_id=owner_id)
    if edited:
        text, kind = text_and_kind(message)
        if await update_message_text(
            db, record.chat_id, record.message_id, text, kind, edit_time(message)
        ):
            return
    await save_live_message(db, chat_record(message.chat), record)


async def on_business_message(update: Update, context: CloneContext) -> None:
    """Store a message (or an edit) of the owner's private chats, both sides; auto-reply."""
    message = update.business_message or update.edited_business_message
    if message is None:
        raise ApplicationHandlerStop
    services = context.services
    connection = await _owner_connection(context, message.business_connection_id)
    if connection is None or message.sender_business_bot is not None:
        # Sent by a bot on the owner's behalf (our auto-replies too): not the owner's words.
        raise ApplicationHandlerStop
    edited = update.edited_business_message is not None
    if not await collection_paused(services.db):
        await services.db.write_soon(
            partial(_store, services.db, message, connection.user_id, edited)
        )
    if not edited:
        await services.business.consider(message, connection)
    raise ApplicationHandlerStop


async def on_business_deleted(update: Update, context: CloneContext) -> None:
    """Forget messages the owner (or the other side) deleted in a Business chat."""
    deleted = update.deleted_business_messages
    if deleted is None:
        raise ApplicationHandlerStop
    connection = await _owner_connection(context, deleted.business_connection_id)
    if connection is not None:
        db = context.services.db
        await db.write_soon(
            partial(delete_messages, db, deleted.chat.id, list(deleted.message_ids))
        )
    raise ApplicationHandlerStop


async def collect_group_message(update: Update, context: CloneContext) -> None:
    """Store a group message (or an edit) when the owner enabled collection there."""
    message = update.effective_message
    if message is None or message.chat.type not in ("group", "supergroup"):
        return
    services = context.services
    if not await group_collection_enabled(services.db, message.chat.id):
        return
    if await collection_paused(services.db):
        return
    is_command = bool(message.text and message.text.startswith("/"))
    if is_command:
        return
    edited = update.edited_message is not None
    owner_id = services.settings.owner_id
    await services.db.write_soon(partial(_store, services.db, message, owner_id, edited))
