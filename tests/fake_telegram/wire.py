"""Decoding Bot API request bodies the way Telegram's server reads them.

PTB 22.8's ``HTTPXRequest`` never sends JSON: it passes every parameter to httpx as form data,
strings as they are and everything else JSON-encoded (``chat_id=42``, ``reply_markup={...}``).
Without uploads that is ``application/x-www-form-urlencoded``; with an upload (``sendDocument``
with bytes) it is ``multipart/form-data`` whose file parts are named after the parameter
(``document``) or an ``attach://`` name. Plain JSON bodies are accepted too, for tests and
other clients that post directly.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from email import policy
from email.parser import BytesParser
from typing import Any
from urllib.parse import parse_qsl

JSONDict = dict[str, Any]

# Parameters whose value is a string even when it looks like JSON: ``text="42"`` must stay a
# string, while ``chat_id=42`` must become an int. Telegram knows each field's type; the fake
# only needs to know the string ones that may look like numbers, booleans or JSON.
STRING_PARAMS = frozenset(
    {
        "text",
        "caption",
        "file_id",
        "callback_query_id",
        "inline_message_id",
        "parse_mode",
        "action",
        "language_code",
        "description",
        "short_description",
        "name",
        "title",
        "question",
        "explanation",
        "emoji",
        "url",
        "business_connection_id",
        "message_effect_id",
        "sticker",
        "custom_emoji_id",
    }
)


@dataclass(frozen=True)
class UploadedFile:
    """One file part of a multipart request."""

    field: str
    file_name: str
    content: bytes
    mime_type: str


def decode_value(name: str, raw: str) -> Any:
    """Turn one form value back into what PTB JSON-encoded, leaving string parameters alone."""
    if name in STRING_PARAMS:
        return raw
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def decode_form(pairs: list[tuple[str, str]]) -> JSONDict:
    """Decode url-encoded or query-string pairs."""
    return {name: decode_value(name, raw) for name, raw in pairs}


def parse_body(content_type: str, body: bytes) -> JSONDict:
    """Parameters of a request; uploaded files appear as :class:`UploadedFile` values.

    Raises:
        ValueError: for a body that is not valid JSON, form or multipart data.
    """
    media_type = content_type.split(";", 1)[0].strip().lower()
    if not body:
        return {}
    if media_type == "application/json":
        parsed = json.loads(body)
        if not isinstance(parsed, dict):
            raise ValueError("a JSON body must be an object")
        return parsed
    if media_type == "multipart/form-data":
        return _parse_multipart(content_type, body)
    text = body.decode("utf-8")
    return decode_form(parse_qsl(text, keep_blank_values=True, strict_parsing=False))


def _parse_multipart(content_type: str, body: bytes) -> JSONDict:
    """Parse ``multipart/form-data`` with the stdlib e-mail parser (``cgi`` is deprecated)."""
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    envelope = BytesParser(policy=policy.HTTP).parsebytes(head + body)
    if not envelope.is_multipart():
        raise ValueError("multipart body without parts")
    params: JSONDict = {}
    for part in envelope.iter_parts():
        field = part.get_param("name", header="content-disposition")
        if not isinstance(field, str):
            continue
        payload = part.get_payload(decode=True)
        content = payload if isinstance(payload, bytes) else b""
        file_name = part.get_filename()
        if file_name is None:
            charset = part.get_content_charset() or "utf-8"
            params[field] = decode_value(field, content.decode(charset))
        else:
            params[field] = UploadedFile(
                field=field,
                file_name=file_name,
                content=content,
                mime_type=part.get_content_type(),
            )
    return params


def resolve_attachments(params: JSONDict) -> JSONDict:
    """Replace ``attach://name`` references with the uploaded file parts they point to."""
    uploads = {v.field: v for v in params.values() if isinstance(v, UploadedFile)}
    resolved: JSONDict = {}
    for name, value in params.items():
        if isinstance(value, str) and value.startswith("attach://"):
            resolved[name] = uploads.get(value.removeprefix("attach://"), value)
        else:
            resolved[name] = value
    return resolved


def ok(result: Any) -> JSONDict:
    """A successful Bot API response."""
    return {"ok": True, "result": result}


def error(code: int, description: str, retry_after: int | None = None) -> JSONDict:
    """A failed Bot API response (``parameters.retry_after`` makes PTB raise ``RetryAfter``)."""
    response: JSONDict = {"ok": False, "error_code": code, "description": description}
    if retry_after is not None:
        response["parameters"] = {"retry_after": retry_after}
    return response
