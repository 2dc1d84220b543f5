"""APScheduler wiring: the retrain schedule lives here, /retrain adds a run-now job."""

from __future__ import annotations

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger

from bot.const import RETRAIN_CRON_JOB_ID
from bot.retrain import RetrainService
from bot.settings import Settings, SettingsError


def parse_cron(settings: Settings) -> CronTrigger | None:
    """The RETRAIN_CRON trigger, or None when no schedule is set."""
    if not settings.retrain_cron.strip():
        return None
    try:
        return CronTrigger.from_crontab(settings.retrain_cron, timezone=settings.timezone)
    except ValueError as exc:
        raise SettingsError(
            f"RETRAIN_CRON={settings.retrain_cron!r} is not a crontab line ({exc}); "
            "use five fields, e.g. '0 4 * * 0' for Sundays at 04:00"
        ) from exc


def build_scheduler(settings: Settings, retrain: RetrainService) -> AsyncIOScheduler:
    """A scheduler (not yet started) with the retrain schedule, if any."""
    scheduler = AsyncIOScheduler(timezone=settings.timezone)
    trigger = parse_cron(settings)
    if trigger is not None:
        scheduler.add_job(
            retrain.run,
            trigger,
            args=["schedule"],
            id=RETRAIN_CRON_JOB_ID,
            max_instances=1,
            coalesce=True,
            misfire_grace_time=3600,
        )
    return scheduler
