"""build_application(): the bot's table of contents. Every handler is registered here."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from telegram import BotCommand, BotCommandScopeChat, BotCommandScopeDefault, Update
from telegram.error import TelegramError
from telegram.ext import (
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

from bot.const import (
    CMD_ADAPTERS,
    CMD_CANCEL,
    CMD_COLLECT,
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
    FORGET_CALLBACK_PREFIX,
)
from bot.context import CloneContext, set_services
from bot.engine import CloneEngine, GenerationOverrides, ReplyEngine
from bot.handlers.access import gate
from bot.handlers.adapters import adapters, promote, rollback
from bot.handlers.admin import cancel, retrain, stats
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
from bot.handlers.start import reset, start
from bot.handlers.upload import import_upload
from bot.reply_scheduler import ReplyScheduler
from bot.retrain import RetrainService
from bot.run_status import owner_status_factory
from bot.scheduler import build_scheduler, parse_cron
from bot.services import Services
from bot.settings import Settings
from storage.db import Database
from storage.runs import current_adapter, fail_stale_runs

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
]

AnyApplication = Application[Any, Any, Any, Any, Any, Any]


EngineFactory = Callable[[Settings], ReplyEngine]


def default_engine(settings: Settings) -> ReplyEngine:
    """Base model + adapter in this process."""
    return CloneEngine(
        device=settings.engine_device,
        overrides=GenerationOverrides(
            do_sample=settings.generation_do_sample,
            max_new_tokens=settings.generation_max_new_tokens,
            temperature=settings.generation_temperature,
        ),
    )


def build_application(
    settings: Settings, engine_factory: EngineFactory = default_engine
) -> AnyApplication:
    """The configured PTB application; its services start in post_init."""
    parse_cron(settings)  # a bad RETRAIN_CRON fails here, before any connection
    application = (
        ApplicationBuilder()
        .token(settings.telegram_bot_token)
        .base_url(settings.telegram_api_base_url)
        .base_file_url(settings.telegram_file_base_url)
        .local_mode(settings.telegram_local_mode)
        .context_types(ContextTypes(context=CloneContext))
        .concurrent_updates(True)  # one chat's generation never holds up another chat
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
    application.add_handler(CommandHandler(CMD_PAUSE, pause))
    application.add_handler(CommandHandler(CMD_RESUME, resume))
    application.add_handler(CommandHandler(CMD_FORGET, forget_command))
    application.add_handler(CommandHandler(CMD_ADAPTERS, adapters))
    application.add_handler(CommandHandler(CMD_PROMOTE, promote))
    application.add_handler(CommandHandler(CMD_ROLLBACK, rollback))
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
    application.add_error_handler(on_error)
    return application


def _post_init(settings: Settings, engine_factory: EngineFactory) -> Any:
    async def post_init(application: AnyApplication) -> None:
        db = await Database.open(settings.database_path)
        stale = await fail_stale_runs(db, "the bot stopped while this run was in progress")
        if stale:
            logger.warning("marked %d unfinished training run(s) as failed", stale)
        engine = engine_factory(settings)

        async def notify_owner(text: str) -> None:
            try:
                await application.bot.send_message(settings.owner_id, text)
            except TelegramError:
                logger.warning("could not message the owner", exc_info=True)

        retrain_service = RetrainService(
            settings,
            db,
            engine,
            notify_owner,
            status_for_run=owner_status_factory(application.bot, settings.owner_id),
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
            ),
        )
        await _set_commands(application, settings)
        adapter = await current_adapter(db)
        if adapter is not None:
            application.create_task(engine.load_adapter(Path(adapter.path)))

    return post_init


async def _set_commands(application: AnyApplication, settings: Settings) -> None:
    await application.bot.set_my_commands(PUBLIC_COMMANDS, scope=BotCommandScopeDefault())
    try:
        await application.bot.set_my_commands(
            OWNER_COMMANDS, scope=BotCommandScopeChat(settings.owner_id)
        )
    except TelegramError:  # the owner has not opened a chat with the bot yet
        logger.info("owner command menu not set: no chat with the owner yet")


async def _post_shutdown(application: AnyApplication) -> None:
    services = application.bot_data.get("services")
    if not isinstance(services, Services):
        return
    services.scheduler.shutdown(wait=False)
    await services.replies.close()
    await services.retrain.cancel()
    await services.engine.close()
    await services.db.close()
