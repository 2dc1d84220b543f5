"""What the handlers reach through the context: built in post_init, closed in post_shutdown."""

from __future__ import annotations

from dataclasses import dataclass

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.engine import CloneEngine
from bot.retrain import RetrainService
from bot.settings import Settings
from storage.db import Database


@dataclass
class Services:
    """The bot's long-lived objects; one of each per application."""

    settings: Settings
    db: Database
    engine: CloneEngine
    retrain: RetrainService
    scheduler: AsyncIOScheduler
