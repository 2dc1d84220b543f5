"""Webhook mode: Telegram posts updates to WEBHOOK_URL instead of the bot polling for them.

PTB's webhook server (tornado) listens on WEBHOOK_LISTEN:WEBHOOK_PORT, usually behind a
reverse proxy that ends TLS for the public URL; it serves the URL's path, registers the URL
with Telegram (``setWebhook``) and rejects every request without WEBHOOK_SECRET_TOKEN in the
``X-Telegram-Bot-Api-Secret-Token`` header.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from bot.settings import Settings


@dataclass(frozen=True)
class WebhookOptions:
    """The arguments of ``Application.run_webhook`` / ``Updater.start_webhook``."""

    listen: str
    port: int
    url_path: str
    webhook_url: str
    secret_token: str


def webhook_options(settings: Settings) -> WebhookOptions | None:
    """How to serve the webhook, or None for long polling (WEBHOOK_URL empty)."""
    if not settings.webhook_url:
        return None
    return WebhookOptions(
        listen=settings.webhook_listen,
        port=settings.webhook_port,
        url_path=urlsplit(settings.webhook_url).path.strip("/"),
        webhook_url=settings.webhook_url,
        secret_token=settings.webhook_secret_token,
    )
