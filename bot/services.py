"""What the handlers reach through the context: built in post_init, closed in post_shutdown."""

from __future__ import annotations

from dataclasses import dataclass

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.chat_history import ChatHistory
from bot.engine import ReplyEngine
from bot.reply_scheduler import ReplyScheduler
from bot.retrain import RetrainService
from bot.settings import Settings
from storage.db import Database
from storage.models import CloneTurn


@dataclass
class Services:
    """The bot's long-lived objects; one of each per application."""

    settings: Settings
    db: Database
    engine: ReplyEngine
    retrain: RetrainService
    scheduler: AsyncIOScheduler
    replies: ReplyScheduler[CloneTurn]
    history: ChatHistory
