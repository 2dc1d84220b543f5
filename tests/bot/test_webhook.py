"""Webhook mode: the real app behind PTB's webhook server, and the settings it needs."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from bot.app import build_application
from bot.cli import main
from bot.settings import SettingsError, load_settings
from bot.telegram.const import ALLOWED_UPDATES
from bot.telegram.webhook import webhook_options
from tests.bot.conftest import bot_settings
from tests.bot.scripted_engine import ScriptedEngine
from tests.bot.test_health import free_port
from tests.export_factory import OWNER_ID
from tests.fake_telegram import builders
from tests.fake_telegram.server import FakeTelegramServer

OWNER = builders.user(OWNER_ID, "Owner")
SECRET = "s3cret-Token_1"
WEBHOOK_URL = "https://clone.example.org/telegram/hook"


def _update(update_id: int, text: str) -> dict[str, object]:
    update = builders.command_update(
        builders.private_chat(OWNER), OWNER, text, message_id=update_id
    )
    update["update_id"] = update_id
    return update


async def test_webhook_mode_answers_updates_with_the_secret_only(
    fake_telegram: FakeTelegramServer, tmp_path: Path
) -> None:
    settings = bot_settings(
        fake_telegram,
        tmp_path / "data",
        webhook_url=WEBHOOK_URL,
        webhook_secret_token=SECRET,
        webhook_listen="127.0.0.1",
        webhook_port=free_port(),
    )
    options = webhook_options(settings)
    assert options is not None and options.url_path == "telegram/hook"
    app = build_application(settings, lambda _: ScriptedEngine())
    await app.initialize()
    assert app.post_init is not None and app.post_shutdown is not None and app.updater
    await app.post_init(app)
    # What Application.run_webhook does, with the options `tgclone run` passes it.
    await app.updater.start_webhook(
        listen=options.listen,
        port=options.port,
        url_path=options.url_path,
        webhook_url=options.webhook_url,
        secret_token=options.secret_token,
        allowed_updates=ALLOWED_UPDATES,
    )
    await app.start()
    hook = f"http://127.0.0.1:{options.port}/{options.url_path}"
    try:
        async with httpx.AsyncClient() as client:
            wrong = await client.post(
                hook,
                json=_update(1, "/stats"),
                headers={"X-Telegram-Bot-Api-Secret-Token": "not-the-secret"},
            )
            missing = await client.post(hook, json=_update(2, "/stats"))
            right = await client.post(
                hook,
                json=_update(3, "/help"),
                headers={"X-Telegram-Bot-Api-Secret-Token": SECRET},
            )
        help_text = await fake_telegram.wait_for_message(
            OWNER_ID, lambda m: "/retrain" in m.get("text", "")
        )
    finally:
        await app.updater.stop()
        await app.stop()
        await app.shutdown()
        await app.post_shutdown(app)
    assert (wrong.status_code, missing.status_code, right.status_code) == (403, 403, 200)
    assert help_text["chat"]["id"] == OWNER_ID
    assert not any(m.get("text", "").startswith("Chats:") for m in fake_telegram.sent_messages())
    [registered] = fake_telegram.calls_to("setWebhook")
    assert registered["url"] == WEBHOOK_URL
    assert registered["secret_token"] == SECRET


def test_polling_without_webhook_url() -> None:
    assert webhook_options(load_settings(_env_file=None)) is None


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"webhook_url": WEBHOOK_URL}, "WEBHOOK_SECRET_TOKEN is required when WEBHOOK_URL"),
        (
            {"webhook_url": WEBHOOK_URL, "webhook_secret_token": "has spaces!"},
            "WEBHOOK_SECRET_TOKEN may only hold",
        ),
        (
            {"webhook_url": "http://clone.example.org/hook", "webhook_secret_token": SECRET},
            "WEBHOOK_URL 'http://clone.example.org/hook' must be a public https:// URL",
        ),
        ({"webhook_port": 0}, "WEBHOOK_PORT"),
        ({"health_port": 70000}, "HEALTH_PORT"),
    ],
)
def test_webhook_and_health_settings_are_validated(
    values: dict[str, object], message: str
) -> None:
    with pytest.raises(SettingsError, match=message):
        load_settings(_env_file=None, **values)


def test_admin_ids_and_allow_all_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OWNER_ID", "1")
    monkeypatch.setenv("ADMIN_IDS", "2, 3")
    monkeypatch.setenv("ALLOW_ALL", "true")
    settings = load_settings(_env_file=None)
    assert settings.admin_ids == frozenset({2, 3})
    assert [settings.is_admin(u) for u in (1, 2, 3, 4)] == [True, True, True, False]
    assert settings.may_chat(4)
    monkeypatch.setenv("ADMIN_IDS", "2, bob")
    with pytest.raises(SettingsError, match="ADMIN_IDS must be numeric"):
        load_settings(_env_file=None)


def test_tgclone_run_refuses_a_webhook_without_secret(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "123:abc")
    monkeypatch.setenv("OWNER_ID", "1")
    monkeypatch.setenv("WEBHOOK_URL", WEBHOOK_URL)
    assert main(["run"]) == 2
    assert "WEBHOOK_SECRET_TOKEN is required when WEBHOOK_URL is set" in capsys.readouterr().err
