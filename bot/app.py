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
    MessageReactionHandler,
    TypeHandler,
    filters,
)

from bot.context import SERVICES_KEY, CloneContext, Services, set_services
from bot.engine.base import ReplyEngine
from bot.engine.factory import build_engine
from bot.engine.heap import freeze_long_lived, unfreeze
from bot.handlers.access import gate
from bot.handlers.adapters import adapters, promote, rollback
from bot.handlers.admin import cancel, retrain, stats
from bot.handlers.autoreply import autoreply
from bot.handlers.chat import reply_as_clone, reply_to_media
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
from bot.handlers.quiz import quiz, quiz_answer
from bot.handlers.reactions import on_label_button, on_reaction
from bot.handlers.start import reset, start
from bot.handlers.upload import import_upload
from bot.replies.business import AutoReplier
from bot.replies.history import ChatHistory
from bot.replies.inbox import ReplyScheduler
from bot.retrain.schedule import build_scheduler, parse_cron, schedule_retrain
from bot.retrain.service import OwnerHooks
from bot.retrain.status import owner_status_factory
from bot.settings import Settings
from bot.telegram.const import (
    ADAPTERS,
    AUTOREPLY,
    CANCEL,
    COLLECT,
    FIX,
    FORGET,
    FORGET_CALLBACK_PREFIX,
    HELP,
    LABEL_CALLBACK_PREFIX,
    PAUSE,
    PROMOTE,
    QUIZ,
    QUIZ_CALLBACK_PREFIX,
    RATE_LIMIT_MAX_RETRIES,
    RESET,
    RESUME,
    RETRAIN,
    ROLLBACK,
    START,
    STATS,
    TALK,
    commands_for,
)
from bot.telegram.health import HealthServer
from bot.telegram.http import AiohttpRequest
from bot.telegram.pending_uploads import report_interrupted_imports
from storage.db import Database
from storage.runs import current_adapter
from training.pipeline import TrainingPipeline

logger = logging.getLogger(__name__)


AnyApplication = Application[Any, Any, Any, Any, Any, Any]


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
        # aiohttp, not PTB's httpx: see bot.telegram.http. getUpdates has its own session.
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
    application.add_handler(CommandHandler([START.name, HELP.name], start))
    application.add_handler(CommandHandler(RESET.name, reset))
    application.add_handler(CommandHandler(RETRAIN.name, retrain))
    application.add_handler(CommandHandler(CANCEL.name, cancel))
    application.add_handler(CommandHandler(STATS.name, stats))
    application.add_handler(CommandHandler(COLLECT.name, collect))
    application.add_handler(CommandHandler(TALK.name, talk))
    application.add_handler(CommandHandler(PAUSE.name, pause))
    application.add_handler(CommandHandler(RESUME.name, resume))
    application.add_handler(CommandHandler(FORGET.name, forget_command))
    application.add_handler(CommandHandler(ADAPTERS.name, adapters))
    application.add_handler(CommandHandler(PROMOTE.name, promote))
    application.add_handler(CommandHandler(ROLLBACK.name, rollback))
    application.add_handler(CommandHandler(AUTOREPLY.name, autoreply))
    application.add_handler(CommandHandler(FIX.name, fix))
    application.add_handler(CommandHandler(QUIZ.name, quiz))
    application.add_handler(
        CallbackQueryHandler(forget_confirmed, pattern=f"^{FORGET_CALLBACK_PREFIX}")
    )
    application.add_handler(CallbackQueryHandler(quiz_answer, pattern=f"^{QUIZ_CALLBACK_PREFIX}"))
    # Teaching: the owner's reactions to clone replies, or the label buttons under them.
    application.add_handler(MessageReactionHandler(on_reaction))
    application.add_handler(
        CallbackQueryHandler(on_label_button, pattern=f"^{LABEL_CALLBACK_PREFIX}")
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
    # Stickers, photos, voice… in a private chat: a caption is answered, no words get a note.
    application.add_handler(
        MessageHandler(
            filters.ChatType.PRIVATE & new_message & ~filters.TEXT & ~filters.StatusUpdate.ALL,
            reply_to_media,
        )
    )
    application.add_error_handler(on_error)
    return application


def _post_init(settings: Settings, engine_factory: EngineFactory) -> Any:
    async def post_init(application: AnyApplication) -> None:
        db = await Database.open(settings.database_path)
        # A write queued behind an import that fails later: the one error handler hears it.
        db.on_queued_error = lambda exc: application.process_error(None, exc)
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

        # Created before the retrain service it triggers, so that it is closed after it.
        scheduler = build_scheduler(settings)
        hooks = OwnerHooks(
            notify_owner,
            engine,
            share_accelerator=settings.train_share_gpu,
            status_for_run=owner_status_factory(application.bot, settings.owner_id),
            send_photo=notify_owner_photo,
        )
        retrain_service = TrainingPipeline(settings, db, hooks)
        schedule_retrain(scheduler, settings, retrain_service.run)
        scheduler.start()
        business = AutoReplier(
            settings,
            db,
            engine,
            application.bot,
            on_error=lambda exc: application.process_error(None, exc),
        )
        health = None
        if settings.health_port:
            health = HealthServer(
                settings.health_listen,
                settings.health_port,
                is_running=lambda: application.running,
                adapter=lambda: engine.adapter_dir,
            )
            await health.start()
        set_services(
            application,
            Services(
                settings,
                db,
                engine,
                scheduler,
                retrain_service,
                ReplyScheduler(settings.reply_quiet_seconds),
                ChatHistory(db),
                business,
                health,
            ),
        )
        await _set_commands(application, settings)
        # Imports a killed bot left: their owners hear that nothing was imported.
        await report_interrupted_imports(application.bot, settings.uploads_dir)
        adapter = await current_adapter(db)
        if adapter is not None:
            application.create_task(engine.load_adapter(Path(adapter.path)))
        # A run the previous bot process left: follow it again, or fail it with the reason.
        retrain_service.resume_in_background()
        freeze_long_lived()  # no full garbage-collection pass walks the started bot again

    return post_init


def _menu(*, owner: bool) -> list[BotCommand]:
    return [BotCommand(c.name, c.description) for c in commands_for(owner=owner)]


async def _set_commands(application: AnyApplication, settings: Settings) -> None:
    await application.bot.set_my_commands(_menu(owner=False), scope=BotCommandScopeDefault())
    for user_id in sorted({settings.owner_id, *settings.admin_ids}):
        try:
            await application.bot.set_my_commands(
                _menu(owner=True), scope=BotCommandScopeChat(user_id)
            )
        except TelegramError:  # they have not opened a chat with the bot yet
            logger.info("owner command menu not set for %s: no chat with them yet", user_id)


async def _post_shutdown(application: AnyApplication) -> None:
    services = application.bot_data.get(SERVICES_KEY)
    if isinstance(services, Services):
        await services.close()
    unfreeze()
