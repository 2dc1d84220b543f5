"""build_application(): the bot's table of contents. Every handler is registered here."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from telegram import BotCommand, BotCommandScopeChat, BotCommandScopeDefault, Update
from telegram.error import TelegramError
from telegram.ext import (
    AIORateLimiter,
    Application,
    ApplicationBuilder,
    BusinessConnectionHandler,
    BusinessMessagesDeletedHandler,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    TypeHandler,
    filters,
)

from bot.auto_reply import AutoReplier, auto_replier, install_auto_replier
from bot.chat_history import ChatHistory
from bot.const import (
    CMD_ADAPTERS,
    CMD_AUTOREPLY,
    CMD_CANCEL,
    CMD_COLLECT,
    CMD_FIX,
    CMD_FORGET,
    CMD_HELP,
    CMD_PAUSE,
    CMD_PROMOTE,
    CMD_RESET,
    CMD_RESUME,
    CMD_RETRAIN,
    CMD_ROLLBACK,
    CMD_START,
    CMD_STATS,
    CMD_TALK,
    FORGET_CALLBACK_PREFIX,
    RATE_LIMIT_MAX_RETRIES,
)
from bot.context import CloneContext, set_services
from bot.engine import ReplyEngine
from bot.engine_factory import build_engine
from bot.handlers.access import gate
from bot.handlers.adapters import adapters, promote, rollback
from bot.handlers.admin import cancel, retrain, stats
from bot.handlers.autoreply import autoreply
from bot.handlers.chat import reply_as_clone
from bot.handlers.collect import (
    collect_group_message,
    on_business_connection,
    on_business_deleted,
    on_business_message,
)
from bot.handlers.collection_controls import (
    collect,
    forget_command,
    forget_confirmed,
    pause,
    resume,
)
from bot.handlers.errors import on_error
from bot.handlers.fix import fix
from bot.handlers.group_talk import reply_in_group, talk
from bot.handlers.start import reset, start
from bot.handlers.upload import import_upload
from bot.health import HealthServer
from bot.heap import freeze_long_lived, unfreeze
from bot.reply_scheduler import ReplyScheduler
from bot.retrain import RetrainService
from bot.run_status import owner_status_factory
from bot.scheduler import build_scheduler, parse_cron
from bot.services import Services
from bot.settings import Settings
from bot.telegram_http import AiohttpRequest
from storage.db import Database
from storage.runs import current_adapter

logger = logging.getLogger(__name__)

PUBLIC_COMMANDS = [
    BotCommand(CMD_START, "What this bot is"),
    BotCommand(CMD_HELP, "What this bot is"),
    BotCommand(CMD_RESET, "Start a new conversation"),
]
OWNER_COMMANDS = [
    *PUBLIC_COMMANDS,
    BotCommand(CMD_RETRAIN, "Train a new adapter now"),
    BotCommand(CMD_CANCEL, "Stop the running training"),
    BotCommand(CMD_STATS, "Data and training figures"),
    BotCommand(CMD_PAUSE, "Pause live collection"),
    BotCommand(CMD_RESUME, "Resume live collection"),
    BotCommand(CMD_FORGET, "Delete collected messages (all or one chat)"),
    BotCommand(CMD_ADAPTERS, "List trained adapters"),
    BotCommand(CMD_PROMOTE, "Serve adapter ID"),
    BotCommand(CMD_ROLLBACK, "Serve the previous adapter"),
    BotCommand(CMD_TALK, "In a group: answer when mentioned, on/off"),
    BotCommand(CMD_AUTOREPLY, "Answer as you in Business chats: on/off"),
    BotCommand(CMD_FIX, "Reply to my message: the answer you'd give"),
]

AnyApplication = Application[Any, Any, Any, Any, Any, Any]

HEALTH_KEY = "health_server"


EngineFactory = Callable[[Settings], ReplyEngine]


def build_application(
    settings: Settings, engine_factory: EngineFactory = build_engine
) -> AnyApplication:
    """The configured PTB application; its services start in post_init."""
    parse_cron(settings)  # a bad RETRAIN_CRON fails here, before any connection
    application = (
        ApplicationBuilder()
        .token(settings.telegram_bot_token)
        .base_url(settings.telegram_api_base_url)
        .base_file_url(settings.telegram_file_base_url)
        .local_mode(settings.telegram_local_mode)
        # aiohttp, not PTB's httpx: see bot.telegram_http. getUpdates has its own session.
        .request(AiohttpRequest())
        .get_updates_request(AiohttpRequest(connections=1))
        .context_types(ContextTypes(context=CloneContext))
        .concurrent_updates(True)  # one chat's generation never holds up another chat
        # Flood control: an overall cap, per-group caps, and RetryAfter waited out and retried.
        .rate_limiter(
            AIORateLimiter(
                overall_max_rate=settings.telegram_rate_limit,
                max_retries=RATE_LIMIT_MAX_RETRIES,
            )
        )
        .post_init(_post_init(settings, engine_factory))
        .post_shutdown(_post_shutdown)
        .build()
    )
    new_message = filters.UpdateType.MESSAGE
    # Group -2: live collection. Business updates end here; group messages go on.
    application.add_handler(BusinessConnectionHandler(on_business_connection), group=-2)
    application.add_handler(
        MessageHandler(filters.UpdateType.BUSINESS_MESSAGES, on_business_message), group=-2
    )
    application.add_handler(BusinessMessagesDeletedHandler(on_business_deleted), group=-2)
    application.add_handler(
        MessageHandler(
            filters.ChatType.GROUPS & (filters.UpdateType.MESSAGE | filters.UpdateType.EDITED),
            collect_group_message,
        ),
        group=-2,
    )
    # Group -1: the access gate stops everything it does not allow.
    application.add_handler(TypeHandler(Update, gate), group=-1)
    # Group 0: commands, buttons, uploads, then talk with the clone.
    application.add_handler(CommandHandler([CMD_START, CMD_HELP], start))
    application.add_handler(CommandHandler(CMD_RESET, reset))
    application.add_handler(CommandHandler(CMD_RETRAIN, retrain))
    application.add_handler(CommandHandler(CMD_CANCEL, cancel))
    application.add_handler(CommandHandler(CMD_STATS, stats))
    application.add_handler(CommandHandler(CMD_COLLECT, collect))
    application.add_handler(CommandHandler(CMD_TALK, talk))
    application.add_handler(CommandHandler(CMD_PAUSE, pause))
    application.add_handler(CommandHandler(CMD_RESUME, resume))
    application.add_handler(CommandHandler(CMD_FORGET, forget_command))
    application.add_handler(CommandHandler(CMD_ADAPTERS, adapters))
    application.add_handler(CommandHandler(CMD_PROMOTE, promote))
    application.add_handler(CommandHandler(CMD_ROLLBACK, rollback))
    application.add_handler(CommandHandler(CMD_AUTOREPLY, autoreply))
    application.add_handler(CommandHandler(CMD_FIX, fix))
    application.add_handler(
        CallbackQueryHandler(forget_confirmed, pattern=f"^{FORGET_CALLBACK_PREFIX}")
    )
    application.add_handler(MessageHandler(filters.Document.ALL & new_message, import_upload))
    application.add_handler(
        MessageHandler(
            filters.TEXT & ~filters.COMMAND & filters.ChatType.PRIVATE & new_message,
            reply_as_clone,
        )
    )
    application.add_handler(
        MessageHandler(
            filters.TEXT & ~filters.COMMAND & filters.ChatType.GROUPS & new_message,
            reply_in_group,
        )
    )
    application.add_error_handler(on_error)
    return application


def _post_init(settings: Settings, engine_factory: EngineFactory) -> Any:
    async def post_init(application: AnyApplication) -> None:
        db = await Database.open(settings.database_path)
        engine = engine_factory(settings)

        async def notify_owner(text: str) -> None:
            try:
                await application.bot.send_message(settings.owner_id, text)
            except TelegramError:
                logger.warning("could not message the owner", exc_info=True)

        async def notify_owner_photo(path: Path, caption: str) -> None:
            try:
                await application.bot.send_photo(
                    settings.owner_id, path.read_bytes(), caption=caption
                )
            except TelegramError:
                logger.warning("could not send the owner a photo", exc_info=True)

        retrain_service = RetrainService(
            settings,
            db,
            engine,
            notify_owner,
            status_for_run=owner_status_factory(application.bot, settings.owner_id),
            notify_photo=notify_owner_photo,
        )
        scheduler = build_scheduler(settings, retrain_service)
        scheduler.start()
        set_services(
            application,
            Services(
                settings,
                db,
                engine,
                retrain_service,
                scheduler,
                ReplyScheduler(settings.reply_quiet_seconds),
                ChatHistory(db),
            ),
        )
        install_auto_replier(
            application,
            AutoReplier(
                settings,
                db,
                engine,
                application.bot,
                on_error=lambda exc: application.process_error(None, exc),
            ),
        )
        if settings.health_port:
            health = HealthServer(
                settings.health_listen,
                settings.health_port,
                is_running=lambda: application.running,
                adapter=lambda: engine.adapter_dir,
            )
            await health.start()
            application.bot_data[HEALTH_KEY] = health
        await _set_commands(application, settings)
        adapter = await current_adapter(db)
        if adapter is not None:
            application.create_task(engine.load_adapter(Path(adapter.path)))
        # A run the previous bot process left: follow it again, or fail it with the reason.
        retrain_service.resume_in_background()
        freeze_long_lived()  # no full garbage-collection pass walks the started bot again

    return post_init


async def _set_commands(application: AnyApplication, settings: Settings) -> None:
    await application.bot.set_my_commands(PUBLIC_COMMANDS, scope=BotCommandScopeDefault())
    for user_id in sorted({settings.owner_id, *settings.admin_ids}):
        try:
            await application.bot.set_my_commands(
                OWNER_COMMANDS, scope=BotCommandScopeChat(user_id)
            )
        except TelegramError:  # they have not opened a chat with the bot yet
            logger.info("owner command menu not set for %s: no chat with them yet", user_id)


async def _post_shutdown(application: AnyApplication) -> None:
    health = application.bot_data.pop(HEALTH_KEY, None)
    if isinstance(health, HealthServer):
        await health.close()
    replier = auto_replier(application)
    if replier is not None:
        await replier.close()
    services = application.bot_data.get("services")
    if not isinstance(services, Services):
        return
    # Before the scheduler, which cancels its running jobs: a training process keeps running
    # (the next start follows it again); only the following stops.
    await services.retrain.shutdown()
    services.scheduler.shutdown(wait=False)
    await services.replies.close()
    await services.history.close()
    await services.engine.close()
    await services.db.close()
    unfreeze()
