"""Errors the owner sees when an export cannot be imported.

Each subclass of :class:`ExportError` carries one specific, user-facing sentence: what is
wrong with the file and what to do about it. The bot and the CLI show it after their own
"Nothing was imported." (every ExportError leaves the database as it was), so the text never
says that itself, and never contains message content: only counts, ids, field names, names of
files and chats.
"""

from __future__ import annotations

import math
from datetime import datetime

EXPORT_HOWTO = (
    "In Telegram Desktop use Settings → Advanced → Export Telegram data, "
    "choose the format 'Machine-readable JSON', and send the result.json it writes "
    "(an HTML export works too: send a chat's messages.html, or the exported folder zipped)"
)


class ExportError(Exception):
    """A file that cannot be imported; ``str()`` is a sentence meant for the owner."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class EmptyExportError(ExportError):
    """The file has no content at all."""

    def __init__(self, file_name: str) -> None:
        super().__init__(
            f"The file {file_name} is empty: the export was probably interrupted or the "
            f"upload failed. Export again and send the new result.json. {EXPORT_HOWTO}."
        )


class NotJsonError(ExportError):
    """A .json file that is not JSON at all (an image, a random document renamed)."""

    def __init__(self, file_name: str) -> None:
        super().__init__(
            f"The file {file_name} is not JSON, so it is not a machine-readable Telegram "
            f"export. {EXPORT_HOWTO}."
        )


class NotUtf8Error(ExportError):
    """The file is text in another encoding (often re-saved by an editor as UTF-16)."""

    def __init__(self, file_name: str) -> None:
        super().__init__(
            f"The file {file_name} is not UTF-8 text; it was probably re-saved by an editor "
            "in another encoding. Send the result.json exactly as Telegram Desktop wrote it."
        )


class ZipWithoutExportError(ExportError):
    """A .zip archive with neither a result.json nor HTML chat pages inside."""

    def __init__(self, file_name: str) -> None:
        super().__init__(
            f"The archive {file_name} has no result.json and no messages.html inside. Zip "
            "the folder Telegram Desktop exported (with its result.json or its chats' "
            f"messages.html pages), or send result.json itself. {EXPORT_HOWTO}."
        )


class TruncatedExportError(ExportError):
    """The JSON stops in the middle: an interrupted download or export."""

    def __init__(self, file_name: str) -> None:
        super().__init__(
            f"The file {file_name} ends in the middle of the data: the export or the upload "
            "was cut short. Export again (or re-send the complete file)."
        )


class DamagedExportError(ExportError):
    """The JSON starts well but is broken further on (edited by hand, corrupted on disk)."""

    def __init__(self, file_name: str) -> None:
        super().__init__(
            f"The file {file_name} starts as JSON but is damaged further on, so it cannot be "
            "read. Send the result.json exactly as Telegram Desktop "
            "wrote it, without editing it."
        )


class NotTelegramExportError(ExportError):
    """Valid JSON that is not a Telegram Desktop export (an array, another app's file)."""

    def __init__(self, file_name: str) -> None:
        super().__init__(
            f"The file {file_name} is JSON but not a Telegram Desktop export: it has neither "
            f"a 'messages' list nor a 'chats' section. {EXPORT_HOWTO}."
        )


class OwnerUnknownError(ExportError):
    """An export that does not say which participant is the owner (single-chat exports)."""

    def __init__(self, file_name: str, *, single_chat: bool = True) -> None:
        what = (
            "is a single-chat export"
            if single_chat
            else "is an account export without its 'personal_information' section"
        )
        super().__init__(
            f"The file {file_name} {what} and I can't tell which participant "
            "is you: send it to the bot from your own account, or run "
            "`tgclone import PATH --owner-id YOUR_ID`."
        )


class OwnerMismatchError(ExportError):
    """A full-account export of somebody else's account."""

    def __init__(self, file_name: str, file_owner: int, expected_owner: int) -> None:
        super().__init__(
            f"The file {file_name} is the export of account {file_owner}, not of your account "
            f"({expected_owner}). Export your own account's data and "
            "send that."
        )


class NoOwnerMessagesError(ExportError):
    """A valid export in which the owner never wrote a message."""

    def __init__(self, file_name: str, owner_id: int, messages: int) -> None:
        super().__init__(
            f"The file {file_name} is a valid export, but none of its {messages} messages "
            f"were sent by user {owner_id}, so there is nothing of yours to learn from. "
            "Check the owner id (`--owner-id`), or export a chat "
            "in which you wrote."
        )


# --- archives and HTML exports (storage/export_archive.py, storage/export_html.py) ----------

ARCHIVE_FIX = (
    "Zip the folder Telegram Desktop exported again (a plain zip, "
    "no password) and send that, or send result.json itself"
)


class DamagedArchiveError(ExportError):
    """A .zip that cannot be read: cut short, corrupted, or in a compression zipfile lacks."""

    def __init__(self, file_name: str) -> None:
        super().__init__(
            f"The archive {file_name} is damaged (often an upload cut short) or packed in a "
            f"way I can't read, so it cannot be opened. {ARCHIVE_FIX}."
        )


class UnsafeArchiveError(ExportError):
    """A .zip with a member whose path is absolute or climbs out with '..'."""

    def __init__(self, file_name: str) -> None:
        super().__init__(
            f"The archive {file_name} contains a file with an unsafe path (absolute, or going "
            f"up with '..'), which Telegram Desktop never writes. {ARCHIVE_FIX}."
        )


class EncryptedArchiveError(ExportError):
    """A password-protected .zip."""

    def __init__(self, file_name: str) -> None:
        super().__init__(
            f"The archive {file_name} is password-protected, so I can't read it. {ARCHIVE_FIX}."
        )


class ArchiveTooLargeError(ExportError):
    """A zip bomb, or an archive far larger than any export: ``problem`` says which limit."""

    def __init__(self, file_name: str, problem: str) -> None:
        super().__init__(f"The archive {file_name} {problem}, so I stopped. {ARCHIVE_FIX}.")


class HtmlOwnerUnknownError(ExportError):
    """An HTML export imported without the owner's display name (HTML has no user ids)."""

    def __init__(self, file_name: str) -> None:
        super().__init__(
            f"{file_name} is an HTML export: it has names but no user ids, so I can't tell "
            "which messages are yours. Re-export as JSON (Telegram Desktop → Settings → "
            "Advanced → Export Telegram data → Format: Machine-readable JSON), or import it "
            'from the command line with `tgclone import PATH --owner-name "Your Name"`.'
        )


class HtmlOwnerNotFoundError(ExportError):
    """An HTML export in which no message is signed with the owner's display name."""

    def __init__(
        self, file_name: str, owner_name: str, messages: int, top_names: list[str]
    ) -> None:
        names = ", ".join(f'"{name}"' for name in top_names) or "none"
        super().__init__(
            f'None of the {messages} messages in {file_name} are signed "{owner_name}", so '
            "there is nothing of yours to learn from. Give your name "
            f"exactly as the export shows it (`--owner-name`); the most frequent names are: "
            f"{names}."
        )


class NotHtmlExportError(ExportError):
    """A page that is not a Telegram Desktop chat export (no chat header, no messages)."""

    def __init__(self, file_name: str) -> None:
        super().__init__(
            f"The file {file_name} is not a Telegram Desktop chat page (it has no messages). "
            "Send the chat's messages.html, or zip the whole exported folder and send the "
            f".zip. {EXPORT_HOWTO}."
        )


# --- values no Telegram export holds (storage/export_text.py, export_format.py, export_html.py)

EXPORT_AGAIN = (
    "Telegram Desktop never writes that, so the file was edited or damaged on the way: "
    "export again and send the new file without editing it"
)


class MalformedValueError(ExportError):
    """A value of the wrong kind or out of range: an id of 2**70, a date in the year 5000.

    ``where`` names the place (``message 41 in the chat "Sam"``); the value itself is quoted
    only when it is a short number (see :func:`shown_value`), so no message text ever is.
    """

    def __init__(
        self, file_name: str, where: str, field: str, value: object, expected: str
    ) -> None:
        super().__init__(
            f"The file {file_name} has {shown_value(value)} as '{field}' of {where}, where "
            f"Telegram writes {expected}. {EXPORT_AGAIN}."
        )


class NestedTooDeepError(ExportError):
    """Lists or objects nested so deeply that reading them would overflow the stack."""

    def __init__(self, file_name: str, where: str) -> None:
        super().__init__(
            f"The file {file_name} has a value nested hundreds of levels deep (lists or "
            f"objects inside each other) {where}. {EXPORT_AGAIN}."
        )


class NumberTooLongError(ExportError):
    """A number written with thousands of digits, which Python refuses to convert."""

    def __init__(self, file_name: str, where: str) -> None:
        super().__init__(
            f"The file {file_name} has a number thousands of digits long {where}. {EXPORT_AGAIN}."
        )


def shown_value(value: object) -> str:
    """How an error sentence quotes a bad value: a short number or a year, else what it is.

    Strings are quoted only when they are digits, so no message text can reach a sentence.
    """
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if type(value) is int or type(value) is str:
        text = str(value)
        digits = text.removeprefix("-")
        if digits.isdecimal() and digits.isascii():
            if len(digits) > 20:
                return f"a number of {len(digits):,} digits"
            return text if type(value) is int else f'"{text}"'
    if isinstance(value, datetime):
        return f"a date in the year {value.year}"
    if isinstance(value, float):
        return "a fraction" if math.isfinite(value) else "a number too big for any id"
    kinds = {bool: "true/false", list: "a list", dict: "an object", type(None): "null"}
    return kinds.get(type(value), "text")
