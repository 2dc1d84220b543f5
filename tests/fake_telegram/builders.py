"""Builders for the Bot API JSON objects a test pushes into the fake server.

Every builder returns a plain ``dict`` shaped like the Bot API's own JSON (``from``, not
``from_user``), so it can go straight into :meth:`FakeTelegramServer.push_update` or be compared
with what the bot sent. ``message_id`` and ``update_id`` are left out when not given: the server
assigns them from its own counters when the update is pushed, the way Telegram does.
"""

from __future__ import annotations

import time
from typing import Any

JSONDict = dict[str, Any]


def user(
    id: int,
    first_name: str,
    username: str | None = None,
    language_code: str | None = "en",
    *,
    last_name: str | None = None,
    is_bot: bool = False,
) -> JSONDict:
    """A ``User`` object."""
    result: JSONDict = {"id": id, "is_bot": is_bot, "first_name": first_name}
    if last_name is not None:
        result["last_name"] = last_name
    if username is not None:
        result["username"] = username
    if language_code is not None:
        result["language_code"] = language_code
    return result


def private_chat(of_user: JSONDict) -> JSONDict:
    """The private ``Chat`` between the bot and ``of_user`` (its id is the user's id)."""
    chat: JSONDict = {"id": of_user["id"], "type": "private", "first_name": of_user["first_name"]}
    for key in ("last_name", "username"):
        if key in of_user:
            chat[key] = of_user[key]
    return chat


def group_chat(id: int, title: str, *, supergroup: bool = True) -> JSONDict:
    """A group ``Chat``; Telegram gives groups negative ids (supergroups start with -100)."""
    if id >= 0:
        raise ValueError(f"group chat ids are negative in the Bot API, got {id}")
    return {"id": id, "type": "supergroup" if supergroup else "group", "title": title}


def message(
    chat: JSONDict,
    from_user: JSONDict,
    *,
    text: str | None = None,
    message_id: int | None = None,
    date: int | None = None,
    reply_to: JSONDict | None = None,
    **fields: Any,
) -> JSONDict:
    """A ``Message``; extra keyword arguments become extra fields (``document=``, ``caption=``)."""
    result: JSONDict = {
        "date": int(time.time()) if date is None else date,
        "chat": chat,
        "from": from_user,
    }
    if message_id is not None:
        result["message_id"] = message_id
    if text is not None:
        result["text"] = text
    if reply_to is not None:
        result["reply_to_message"] = reply_to
    result.update(fields)
    return result


def message_update(
    chat: JSONDict,
    from_user: JSONDict,
    text: str,
    message_id: int | None = None,
    date: int | None = None,
    reply_to: JSONDict | None = None,
) -> JSONDict:
    """An ``Update`` carrying a plain text message."""
    msg = message(chat, from_user, text=text, message_id=message_id, date=date, reply_to=reply_to)
    return {"message": msg}


def mention_update(
    chat: JSONDict,
    from_user: JSONDict,
    text: str,
    mentioned: JSONDict,
    *,
    text_mention: bool = False,
    message_id: int | None = None,
    reply_to: JSONDict | None = None,
) -> JSONDict:
    """An ``Update`` whose text names ``mentioned`` (a user from :func:`user`).

    By default ``text`` must contain ``@username`` and gets a ``mention`` entity there; with
    ``text_mention=True`` it must contain the user's first name, which becomes a
    ``text_mention`` entity carrying the user (how Telegram marks users without a username).
    """
    target = mentioned["first_name"] if text_mention else f"@{mentioned['username']}"
    index = text.lower().find(target.lower())  # usernames are case-insensitive
    if index < 0:
        raise ValueError(f"{target!r} does not occur in the text")
    entity: JSONDict = {
        "type": "text_mention" if text_mention else "mention",
        "offset": _utf16_len(text[:index]),
        "length": _utf16_len(target),
    }
    if text_mention:
        entity["user"] = mentioned
    msg = message(
        chat, from_user, text=text, message_id=message_id, reply_to=reply_to, entities=[entity]
    )
    return {"message": msg}


def command_update(
    chat: JSONDict,
    from_user: JSONDict,
    text: str,
    message_id: int | None = None,
    date: int | None = None,
    reply_to: JSONDict | None = None,
) -> JSONDict:
    """An ``Update`` with a command message: ``text`` like ``"/retrain 3"`` or ``"/start@bot"``,
    as a reply to the message ``reply_to`` when given.

    The leading command gets the ``bot_command`` entity that PTB's ``CommandHandler`` looks for.
    """
    if not text.startswith("/"):
        raise ValueError(f"a command starts with '/', got {text!r}")
    command = text.split(maxsplit=1)[0]
    entity = {"type": "bot_command", "offset": 0, "length": _utf16_len(command)}
    msg = message(
        chat,
        from_user,
        text=text,
        message_id=message_id,
        date=date,
        reply_to=reply_to,
        entities=[entity],
    )
    return {"message": msg}


def document_update(
    chat: JSONDict,
    from_user: JSONDict,
    file_id: str,
    file_name: str,
    file_size: int,
    mime_type: str = "application/octet-stream",
    *,
    caption: str | None = None,
    file_unique_id: str | None = None,
    message_id: int | None = None,
    date: int | None = None,
) -> JSONDict:
    """An ``Update`` with a message carrying a ``Document``."""
    document: JSONDict = {
        "file_id": file_id,
        "file_unique_id": file_unique_id or f"u{file_id}",
        "file_name": file_name,
        "mime_type": mime_type,
        "file_size": file_size,
    }
    extra: JSONDict = {"document": document}
    if caption is not None:
        extra["caption"] = caption
    msg = message(chat, from_user, message_id=message_id, date=date, **extra)
    return {"message": msg}


def callback_query_update(
    from_user: JSONDict,
    data: str,
    on_message: JSONDict,
    query_id: str = "cbq-1",
) -> JSONDict:
    """An ``Update`` for a press on an inline button of ``on_message`` (a bot message)."""
    query: JSONDict = {
        "id": query_id,
        "from": from_user,
        "chat_instance": str(on_message["chat"]["id"]),
        "message": on_message,
        "data": data,
    }
    return {"callback_query": query}


def message_reaction_update(
    chat: JSONDict,
    from_user: JSONDict,
    message_id: int,
    new: list[str],
    old: list[str] | None = None,
    *,
    date: int | None = None,
) -> JSONDict:
    """A ``message_reaction`` update: ``from_user`` changed their emoji reactions to a message
    from ``old`` to ``new`` (an empty ``new`` takes them back)."""

    def emoji(values: list[str]) -> list[JSONDict]:
        return [{"type": "emoji", "emoji": value} for value in values]

    return {
        "message_reaction": {
            "chat": chat,
            "message_id": message_id,
            "user": from_user,
            "date": int(time.time()) if date is None else date,
            "old_reaction": emoji(old or []),
            "new_reaction": emoji(new),
        }
    }


def business_connection(
    connection_id: str,
    owner: JSONDict,
    *,
    enabled: bool = True,
    can_reply: bool = True,
    date: int | None = None,
) -> JSONDict:
    """A ``BusinessConnection`` of ``owner``'s account to the bot."""
    return {
        "id": connection_id,
        "user": owner,
        "user_chat_id": owner["id"],
        "date": int(time.time()) if date is None else date,
        "is_enabled": enabled,
        "rights": {"can_reply": can_reply, "can_read_messages": True},
    }


def business_message_update(
    connection_id: str,
    chat: JSONDict,
    from_user: JSONDict,
    text: str,
    message_id: int,
    *,
    date: int | None = None,
    edited: bool = False,
    sender_business_bot: JSONDict | None = None,
) -> JSONDict:
    """A ``business_message`` (or ``edited_business_message``) in one of the owner's chats."""
    extra: JSONDict = {"business_connection_id": connection_id}
    if sender_business_bot is not None:
        extra["sender_business_bot"] = sender_business_bot
    if edited:
        extra["edit_date"] = int(time.time())
    msg = message(chat, from_user, text=text, message_id=message_id, date=date, **extra)
    return {"edited_business_message" if edited else "business_message": msg}


def deleted_business_messages_update(
    connection_id: str, chat: JSONDict, message_ids: list[int]
) -> JSONDict:
    """Messages deleted in one of the owner's Business chats."""
    return {
        "deleted_business_messages": {
            "business_connection_id": connection_id,
            "chat": chat,
            "message_ids": message_ids,
        }
    }


def edited_message_update(
    chat: JSONDict, from_user: JSONDict, text: str, message_id: int, date: int | None = None
) -> JSONDict:
    """An ``edited_message`` update: ``message_id`` is the message that changed."""
    msg = message(
        chat, from_user, text=text, message_id=message_id, date=date, edit_date=int(time.time())
    )
    return {"edited_message": msg}


def _utf16_len(text: str) -> int:
    """Entity offsets and lengths count UTF-16 code units, not code points."""
    return len(text.encode("utf-16-le")) // 2
