"""The Bot API methods the fake implements, each a function of the state and the parameters.

Results and error texts follow the real Bot API closely enough for PTB to build its objects and
raise the same exceptions (``BadRequest`` for 400, ``RetryAfter`` for 429 with ``retry_after``).
Methods not listed in :data:`METHODS` succeed with ``True``; the call is recorded either way.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from tests.fake_telegram.state import ApiError, BotState, JSONDict, StoredFile, bad_request
from tests.fake_telegram.wire import UploadedFile

Method = Callable[[BotState, JSONDict], Any]

MAX_TEXT_LENGTH = 4096
NOT_MODIFIED = (
    "message is not modified: specified new message content and reply markup of the specified "
    "message are exactly the same as a current content and reply markup of the message"
)
_COMMAND_RE = re.compile(r"^[a-z0-9_]{1,32}$")


def get_me(state: BotState, params: JSONDict) -> JSONDict:
    """``getMe``: the bot's own user."""
    return state.bot_user


def get_updates(state: BotState, params: JSONDict) -> list[JSONDict]:
    """``getUpdates``: long polling with ``offset``, ``limit`` and ``timeout`` (seconds); an
    ``allowed_updates`` list is remembered, and only those types are delivered (by default
    all but ``chat_member``, ``message_reaction`` and ``message_reaction_count``)."""
    if isinstance(params.get("allowed_updates"), list):
        state.set_allowed_updates(params["allowed_updates"])
    offset = params.get("offset")
    return state.take_updates(
        offset=int(offset) if offset is not None else None,
        limit=int(params.get("limit") or 100),
        timeout=float(params.get("timeout") or 0),
    )


def delete_webhook(state: BotState, params: JSONDict) -> bool:
    """``deleteWebhook``: there is never a webhook; may drop pending updates."""
    if params.get("drop_pending_updates"):
        state.drop_pending()
    return True


def set_my_commands(state: BotState, params: JSONDict) -> bool:
    """``setMyCommands``: validated like Telegram does, stored per scope and language."""
    commands = params.get("commands")
    if not isinstance(commands, list):
        raise bad_request('parameter "commands" must be an array')
    for command in commands:
        if not _COMMAND_RE.match(str(command.get("command", ""))):
            raise bad_request("BOT_COMMAND_INVALID")
        if not 1 <= len(str(command.get("description", ""))) <= 256:
            raise bad_request("command description must be 1-256 characters")
    with state.cond:
        state.commands[_commands_key(params)] = commands
    return True


def get_my_commands(state: BotState, params: JSONDict) -> list[JSONDict]:
    """``getMyCommands`` for the given scope and language."""
    with state.cond:
        return list(state.commands.get(_commands_key(params), []))


def delete_my_commands(state: BotState, params: JSONDict) -> bool:
    """``deleteMyCommands`` for the given scope and language."""
    with state.cond:
        state.commands.pop(_commands_key(params), None)
    return True


def send_message(state: BotState, params: JSONDict) -> JSONDict:
    """``sendMessage``: a new bot message with the chat's next ``message_id``."""
    chat = state.chat(_require(params, "chat_id"))
    text = str(params.get("text") or "")
    if not text.strip():
        raise bad_request("message text is empty")
    if len(text) > MAX_TEXT_LENGTH:
        raise bad_request("message is too long")
    fields: JSONDict = {"text": text, **_message_extras(state, chat["id"], params)}
    if "entities" in params:
        fields["entities"] = params["entities"]
    return state.new_message(chat, fields)


def send_message_draft(state: BotState, params: JSONDict) -> bool:
    """``sendMessageDraft``: a streaming preview in a private chat; nothing is stored as sent."""
    chat = state.chat(_require(params, "chat_id"))
    if chat.get("type") != "private":
        raise bad_request("message drafts can be sent to private chats only")
    draft_id = int(_require(params, "draft_id"))
    if draft_id == 0:
        raise bad_request("draft_id must be non-zero")
    text = str(params.get("text") or "")
    if len(text) > MAX_TEXT_LENGTH:
        raise bad_request("message is too long")
    state.add_draft(chat["id"], draft_id, text)
    return True


def edit_message_text(state: BotState, params: JSONDict) -> JSONDict | bool:
    """``editMessageText`` of a bot message; inline messages just succeed."""
    if "inline_message_id" in params:
        return True
    chat_id = _require(params, "chat_id")
    message_id = int(_require(params, "message_id"))
    text = str(params.get("text") or "")
    if not text.strip():
        raise bad_request("message text is empty")
    current = state.find_message(chat_id, message_id)
    if current is None:
        raise bad_request("message to edit not found")
    if current.get("from", {}).get("id") != state.bot_user["id"]:
        raise bad_request("message can't be edited")
    # As on Telegram, an edit without an inline keyboard leaves the message without one.
    changes: JSONDict = {"text": text, "reply_markup": params.get("reply_markup")}
    if all(current.get(key) == value for key, value in changes.items()):
        raise bad_request(NOT_MODIFIED)
    return state.edit_message(chat_id, message_id, changes)


def edit_message_reply_markup(state: BotState, params: JSONDict) -> JSONDict | bool:
    """``editMessageReplyMarkup`` of a bot message: sets (or, without one, removes) its
    inline keyboard."""
    if "inline_message_id" in params:
        return True
    chat_id = _require(params, "chat_id")
    message_id = int(_require(params, "message_id"))
    current = state.find_message(chat_id, message_id)
    if current is None:
        raise bad_request("message to edit not found")
    if current.get("from", {}).get("id") != state.bot_user["id"]:
        raise bad_request("message can't be edited")
    markup = params.get("reply_markup")
    if current.get("reply_markup") == markup:
        raise bad_request(NOT_MODIFIED)
    return state.edit_message(chat_id, message_id, {"reply_markup": markup})


def delete_message(state: BotState, params: JSONDict) -> bool:
    """``deleteMessage``."""
    chat_id = _require(params, "chat_id")
    if not state.delete_message(chat_id, int(_require(params, "message_id"))):
        raise bad_request("message to delete not found")
    return True


def send_chat_action(state: BotState, params: JSONDict) -> bool:
    """``sendChatAction``: checks the chat and ``action`` only."""
    state.chat(_require(params, "chat_id"))
    _require(params, "action")
    return True


def get_file(state: BotState, params: JSONDict) -> JSONDict:
    """``getFile``: refuses unknown ids and files above the download limit, like the cloud."""
    file_id = str(_require(params, "file_id"))
    with state.cond:
        stored = state.files.get(file_id)
    if stored is None:
        raise bad_request("invalid file_id")
    if state.local_dir is not None:
        # A Bot API server in --local mode: no size limit, and the path is on its disk.
        local = state.local_dir / stored.file_path
        local.parent.mkdir(parents=True, exist_ok=True)
        local.write_bytes(stored.content)
        return {**_file_fields(stored), "file_path": str(local)}
    if len(stored.content) > state.download_limit:
        raise bad_request("file is too big")
    return {**_file_fields(stored), "file_path": stored.file_path}


def send_document(state: BotState, params: JSONDict) -> JSONDict:
    """``sendDocument`` with an upload or an existing ``file_id``."""
    chat = state.chat(_require(params, "chat_id"))
    stored = _input_file(state, params, "document", "documents")
    document = {**_file_fields(stored), "file_name": stored.file_name}
    document["mime_type"] = stored.mime_type
    fields = {"document": document, **_message_extras(state, chat["id"], params)}
    return state.new_message(chat, fields)


def send_photo(state: BotState, params: JSONDict) -> JSONDict:
    """``sendPhoto``: the message carries one ``PhotoSize`` (the fake does not resize)."""
    chat = state.chat(_require(params, "chat_id"))
    stored = _input_file(state, params, "photo", "photos")
    photo = {**_file_fields(stored), "width": 512, "height": 512}
    fields = {"photo": [photo], **_message_extras(state, chat["id"], params)}
    return state.new_message(chat, fields)


def get_business_connection(state: BotState, params: JSONDict) -> JSONDict:
    connection_id = str(_require(params, "business_connection_id"))
    with state.cond:
        connection = state.business_connections.get(connection_id)
    if connection is None:
        raise bad_request("BUSINESS_CONNECTION_INVALID")
    return connection


def succeed(state: BotState, params: JSONDict) -> bool:
    """Methods whose only effect in the fake is being recorded."""
    return True


METHODS: dict[str, Method] = {
    "getme": get_me,
    "getupdates": get_updates,
    "deletewebhook": delete_webhook,
    "setmycommands": set_my_commands,
    "getmycommands": get_my_commands,
    "deletemycommands": delete_my_commands,
    "sendmessage": send_message,
    "sendmessagedraft": send_message_draft,
    "editmessagetext": edit_message_text,
    "editmessagereplymarkup": edit_message_reply_markup,
    "deletemessage": delete_message,
    "sendchataction": send_chat_action,
    "getfile": get_file,
    "senddocument": send_document,
    "sendphoto": send_photo,
    "getbusinessconnection": get_business_connection,
    "answercallbackquery": succeed,
    "setmessagereaction": succeed,
    "close": succeed,
    "logout": succeed,
}


def call(state: BotState, method: str, params: JSONDict) -> Any:
    """Run ``method`` (case-insensitive, as in the Bot API) or succeed if it is unknown.

    Raises:
        ApiError: the Bot API error the method answers with.
    """
    implementation = METHODS.get(method.lower(), succeed)
    try:
        return implementation(state, params)
    except (KeyError, TypeError, ValueError) as exc:
        raise ApiError(400, f"Bad Request: invalid parameters for {method}: {exc}") from exc


def _require(params: JSONDict, name: str) -> Any:
    value = params.get(name)
    if value is None or value == "":
        raise bad_request(f"{name} is empty")
    return value


def _commands_key(params: JSONDict) -> str:
    scope = params.get("scope") or {"type": "default"}
    return f"{json.dumps(scope, sort_keys=True)}|{params.get('language_code') or ''}"


def _message_extras(state: BotState, chat_id: int | str, params: JSONDict) -> JSONDict:
    """Fields every sent message may carry: caption, reply markup and the replied-to message."""
    extras: JSONDict = {}
    if params.get("caption"):
        extras["caption"] = params["caption"]
    markup = params.get("reply_markup")
    if isinstance(markup, dict) and "inline_keyboard" in markup:
        extras["reply_markup"] = markup
    reply = params.get("reply_parameters")
    reply_id = reply.get("message_id") if isinstance(reply, dict) else None
    reply_id = reply_id or params.get("reply_to_message_id")
    if reply_id is not None:
        replied = state.find_message(chat_id, int(reply_id))
        if replied is not None:
            replied.pop("reply_to_message", None)
            extras["reply_to_message"] = replied
    return extras


def _input_file(state: BotState, params: JSONDict, name: str, folder: str) -> StoredFile:
    """The uploaded part named ``name``, stored as a new file, or the file an id refers to."""
    value = _require(params, name)
    if isinstance(value, UploadedFile):
        return state.add_file(value.content, value.file_name, value.mime_type, folder)
    with state.cond:
        stored = state.files.get(str(value))
    if stored is None:
        raise bad_request("wrong file identifier/HTTP URL specified")
    return stored


def _file_fields(stored: StoredFile) -> JSONDict:
    return {
        "file_id": stored.file_id,
        "file_unique_id": stored.file_unique_id,
        "file_size": len(stored.content),
    }
