"""The bot's long-lived objects and the typed callback context that reaches them.

``Services`` is built in post_init and closed in post_shutdown (in reverse order of
creation); handlers get it as ``context.services`` instead of dict look-ups.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from telegram.ext import Application, CallbackContext, ExtBot

from bot.engine.base import ReplyEngine
from bot.replies.business import AutoReplier
from bot.replies.history import ChatHistory
from bot.replies.inbox import ReplyScheduler
from bot.settings import Settings
from bot.telegram.health import HealthServer
from bot.telegram.pending_uploads import RunningImports
from storage.db import Database
from storage.models import CloneTurn
from training.pipeline import TrainingPipeline

SERVICES_KEY = "services"


@dataclass
class Services:
    """The bot's long-lived objects, one of each per application, in order of creation.

    ``close`` closes them in reverse order: the replies stop before the engine and the
    database they use; the training pipeline stops following its run (the training process
    goes on; the next start follows it again) before the scheduler cancels its jobs.
    """

    settings: Settings
    db: Database
    engine: ReplyEngine
    scheduler: AsyncIOScheduler
    retrain: TrainingPipeline
    replies: ReplyScheduler[CloneTurn]
    history: ChatHistory
    business: AutoReplier
    health: HealthServer | None = None
    imports: RunningImports = field(default_factory=RunningImports)

    async def close(self) -> None:
        """Close everything, newest first (see the class docstring)."""
        if self.health is not None:
            await self.health.close()
        await self.business.close()
        await self.history.close()
        await self.replies.close()
        await self.retrain.shutdown()
        self.scheduler.shutdown(wait=False)
        await self.engine.close()
        await self.db.close()


class CloneContext(CallbackContext[ExtBot[None], dict[Any, Any], dict[Any, Any], dict[Any, Any]]):
    """CallbackContext with the bot's services as a typed property."""

    @property
    def services(self) -> Services:
        services = self.application.bot_data.get(SERVICES_KEY)
        if not isinstance(services, Services):
            raise RuntimeError("services are not set up: post_init has not run")
        return services


def set_services(
    application: Application[Any, Any, Any, Any, Any, Any], services: Services
) -> None:
    """Store the services where CloneContext finds them."""
    application.bot_data[SERVICES_KEY] = services
