"""APScheduler wiring: the retrain schedule lives here, /retrain adds a run-now job."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger

from bot.settings import Settings, SettingsError
from bot.telegram.const import RETRAIN_CRON_JOB_ID

DAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


def crontab_weekdays(field: str) -> str:
    """A crontab day-of-week field (0 or 7 = Sunday) spelled with day names.

    APScheduler 3 counts weekdays from Monday = 0, so `from_crontab("0 4 * * 0")` would fire
    on Mondays; names mean the same in both.
    """
    parts = []
    for part in field.split(","):
        if part == "*" or any(c.isalpha() for c in part):
            parts.append(part)
            continue
        span, _, step_text = part.partition("/")
        step = int(step_text) if step_text else 1
        if span == "*":
            first, last = 0, 6
        else:
            first_text, _, last_text = span.partition("-")
            first = int(first_text)
            last = int(last_text) if last_text else (6 if step_text else first)
        if not (0 <= first <= 7 and 0 <= last <= 7 and first <= last and step >= 1):
            raise ValueError(f"bad day-of-week {part!r}")
        parts.extend(DAY_NAMES[day % 7] for day in range(first, last + 1, step))
    return ",".join(dict.fromkeys(parts))


def parse_cron(settings: Settings) -> CronTrigger | None:
    """The RETRAIN_CRON trigger, or None when no schedule is set."""
    line = settings.retrain_cron.strip()
    if not line:
        return None
    try:
        fields = line.split()
        if len(fields) != 5:
            raise ValueError(f"expected 5 fields, got {len(fields)}")
        minute, hour, day, month, weekday = fields
        return CronTrigger(
            minute=minute,
            hour=hour,
            day=day,
            month=month,
            day_of_week=crontab_weekdays(weekday),
            timezone=settings.timezone,
        )
    except ValueError as exc:
        raise SettingsError(
            f"RETRAIN_CRON={settings.retrain_cron!r} is not a crontab line ({exc}); "
            "use five fields, e.g. '0 4 * * 0' for Sundays at 04:00"
        ) from exc


def build_scheduler(settings: Settings) -> AsyncIOScheduler:
    """The bot's scheduler (not yet started), in the deployment's time zone."""
    return AsyncIOScheduler(timezone=settings.timezone)


def schedule_retrain(
    scheduler: AsyncIOScheduler, settings: Settings, run: Callable[[str], Awaitable[object]]
) -> None:
    """Add the RETRAIN_CRON schedule, if any: ``run("schedule")`` at each firing."""
    trigger = parse_cron(settings)
    if trigger is not None:
        scheduler.add_job(
            run,
            trigger,
            args=["schedule"],
            id=RETRAIN_CRON_JOB_ID,
            max_instances=1,
            coalesce=True,
            misfire_grace_time=3600,
        )
