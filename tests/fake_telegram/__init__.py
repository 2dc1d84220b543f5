"""A fake Telegram Bot API server for driving the real PTB ``Application`` in tests."""

from tests.fake_telegram.server import CLOUD_DOWNLOAD_LIMIT, DEFAULT_TOKEN, FakeTelegramServer

__all__ = ["CLOUD_DOWNLOAD_LIMIT", "DEFAULT_TOKEN", "FakeTelegramServer"]
