"""Exports sent to the bot: imported once, bad files refused with a reason, nothing half-done."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.handlers.upload import NOT_AN_EXPORT
from bot.settings import Settings
from storage.db import Database
from storage.messages import corpus_counts
from tests.bad_exports import BAD_EXPORTS, BadExport, zipped
from tests.bot.conftest import bot_settings, running_clone
from tests.export_factory import OWNER_ID, full_export
from tests.fake_telegram import builders
from tests.fake_telegram.server import FakeTelegramServer
from tests.html_exports import FIXTURES, HTML_OWNER_NAME

OWNER = builders.user(OWNER_ID, "Owner")


def _is_final(message: dict[str, object]) -> bool:
    text = str(message.get("text", ""))
    return text.startswith(("Import finished", "Nothing was imported"))


def _declared_25_mb(server: FakeTelegramServer, content: bytes) -> dict[str, object]:
    """The owner's upload of `content`, declared by Telegram as 25 MB (over the cloud limit)."""
    file_id = server.register_file(content, "result.json")
    return builders.document_update(
        builders.private_chat(OWNER),
        OWNER,
        file_id,
        "result.json",
        25 * 1024 * 1024,
        "application/json",
    )


async def _message_count(settings: Settings) -> int:
    db = await Database.open(settings.database_path)
    try:
        return (await corpus_counts(db)).messages
    finally:
        await db.close()


async def test_same_export_twice_reports_zero_new(
    settings: Settings, fake_telegram: FakeTelegramServer
) -> None:
    export = json.dumps(full_export(conversations=3), ensure_ascii=False).encode()
    async with running_clone(settings):
        fake_telegram.send_document(OWNER, export, "result.json")
        first = await fake_telegram.wait_for_message(OWNER_ID, _is_final, timeout=30)
        fake_telegram.send_document(OWNER, export, "result.json")
        second = await fake_telegram.wait_for_message(OWNER_ID, _is_final, timeout=30)
    assert "New: 14, already present: 0" in first["text"]
    assert "New: 0, already present: 14" in second["text"]
    assert await _message_count(settings) == 14
    assert not list(settings.uploads_dir.iterdir()), "uploads are deleted after import"


async def test_broken_json_is_refused_and_changes_nothing(
    settings: Settings, fake_telegram: FakeTelegramServer
) -> None:
    truncated = json.dumps(full_export(conversations=3)).encode()[:-200]
    async with running_clone(settings):
        fake_telegram.send_document(OWNER, truncated, "result.json")
        reply = await fake_telegram.wait_for_message(OWNER_ID, _is_final, timeout=30)
    assert reply["text"].startswith("Nothing was imported.")
    assert len(reply["text"]) > len("Nothing was imported. ") + 20
    assert await _message_count(settings) == 0


async def test_not_json_file_gets_export_instructions(
    settings: Settings, fake_telegram: FakeTelegramServer
) -> None:
    async with running_clone(settings):
        fake_telegram.send_document(OWNER, b"hello", "notes.txt")
        reply = await fake_telegram.wait_for_message(OWNER_ID)
    assert reply["text"] == NOT_AN_EXPORT
    assert not fake_telegram.calls_to("getFile")


async def test_file_over_cloud_limit_is_explained_not_downloaded(
    settings: Settings, fake_telegram: FakeTelegramServer
) -> None:
    update = _declared_25_mb(fake_telegram, b"{}")
    async with running_clone(settings):
        fake_telegram.push_update(update)
        reply = await fake_telegram.wait_for_message(OWNER_ID)
    assert "20 MB" in reply["text"] and "TELEGRAM_LOCAL_MODE" in reply["text"]
    assert not fake_telegram.calls_to("getFile")


@pytest.mark.parametrize("bad", BAD_EXPORTS, ids=lambda bad: bad.name)
async def test_bad_export_gets_a_specific_answer_and_changes_nothing(
    settings: Settings, fake_telegram: FakeTelegramServer, tmp_path: Path, bad: BadExport
) -> None:
    path = tmp_path / bad.file_name
    bad.write(path)
    async with running_clone(settings):
        fake_telegram.send_document(OWNER, path.read_bytes(), bad.file_name)
        reply = await fake_telegram.wait_for_message(OWNER_ID, _is_final, timeout=60)
    assert reply["text"].startswith("Nothing was imported."), reply["text"]
    assert bad.says in reply["text"]
    assert await _message_count(settings) == 0


async def test_zipped_export_is_imported(
    settings: Settings, fake_telegram: FakeTelegramServer
) -> None:
    content = json.dumps(full_export(conversations=3), ensure_ascii=False).encode()
    async with running_clone(settings):
        fake_telegram.send_document(OWNER, zipped(content), "Telegram Desktop.zip")
        reply = await fake_telegram.wait_for_message(OWNER_ID, _is_final, timeout=30)
    assert "New: 14, already present: 0" in reply["text"]


async def test_html_export_is_imported_with_the_owners_telegram_name(
    settings: Settings, fake_telegram: FakeTelegramServer
) -> None:
    first, _, last = HTML_OWNER_NAME.partition(" ")
    owner = builders.user(OWNER_ID, first, last_name=last)
    page = (FIXTURES / "html" / "chats" / "chat_02" / "messages.html").read_bytes()
    async with running_clone(settings):
        fake_telegram.send_document(owner, page, "messages.html", mime_type="text/html")
        reply = await fake_telegram.wait_for_message(OWNER_ID, _is_final, timeout=30)
    assert reply["text"].startswith("Import finished"), reply["text"]
    assert "(5 yours)" in reply["text"]


async def test_local_bot_api_server_lifts_the_download_limit(tmp_path: Path) -> None:
    content = json.dumps(full_export(conversations=3), ensure_ascii=False).encode()
    with FakeTelegramServer(local_dir=tmp_path / "bot-api-files") as server:
        settings = bot_settings(server, tmp_path / "data", telegram_local_mode=True)
        update = _declared_25_mb(server, content)
        async with running_clone(settings):
            server.push_update(update)
            reply = await server.wait_for_message(OWNER_ID, _is_final, timeout=30)
    # getFile answered an absolute path on the server's disk: only a local read can succeed.
    assert "New: 14, already present: 0" in reply["text"]


async def test_stats_data_sends_the_reply_length_histogram(
    settings: Settings, fake_telegram: FakeTelegramServer
) -> None:
    export = json.dumps(full_export(conversations=6), ensure_ascii=False).encode()
    async with running_clone(settings):
        fake_telegram.send_document(OWNER, export, "result.json")
        await fake_telegram.wait_for_message(OWNER_ID, _is_final, timeout=30)
        fake_telegram.send_command(OWNER, "/stats data")
        stats = await fake_telegram.wait_for_message(
            OWNER_ID, lambda m: str(m.get("text", "")).startswith("Chats:")
        )
        await fake_telegram.wait_until(lambda: fake_telegram.calls_to("sendPhoto"), timeout=30)
    assert "Training samples: " in stats["text"] and "Serving adapter: none" in stats["text"]
    photo = fake_telegram.calls_to("sendPhoto")[0]
    assert photo["caption"] == "Owner reply lengths (words)"
