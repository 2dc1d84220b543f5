"""Owner commands for adapters: /adapters lists them, /promote and /rollback switch live."""

from __future__ import annotations

import logging
from pathlib import Path

from telegram import Update

from bot.context import CloneContext, Services
from bot.retrain.figures import quiz_figure
from storage.models import AdapterRecord
from storage.quizzes import QuizScore, quiz_scores
from storage.runs import current_adapter, get_adapter, list_adapters, promote_adapter

logger = logging.getLogger(__name__)

PROMOTE_USAGE = "Usage: /promote ID — the ids are in /adapters."


def _line(adapter: AdapterRecord, score: QuizScore | None) -> str:
    loss = adapter.metrics.get("gate_eval_loss", adapter.metrics.get("eval_loss"))
    loss_text = "n/a" if loss is None else f"{loss:.3f}"
    state = "serving" if adapter.promoted else "candidate"
    run = f"run #{adapter.run_id}" if adapter.run_id is not None else "no run"
    when = adapter.created_at.strftime("%Y-%m-%d %H:%M")
    quizzed = f" — quiz: {quiz_figure(score)}" if score is not None else ""
    return f"#{adapter.adapter_id} {state} — eval_loss {loss_text}{quizzed} — {run}, {when} UTC"


async def adapters(update: Update, context: CloneContext) -> None:
    """The newest adapters, which one serves, their eval_loss and blind-test figures."""
    message = update.effective_message
    if message is None:
        return
    listed = await list_adapters(context.services.db, limit=10)
    if not listed:
        await message.reply_text("No adapters yet: /retrain trains the first one.")
        return
    scores = await quiz_scores(context.services.db)
    lines = [_line(adapter, scores.get(adapter.adapter_id)) for adapter in listed]
    await message.reply_text("\n".join(lines))


async def _switch(services: Services, adapter: AdapterRecord) -> str:
    """Serve `adapter` (loaded first, so a broken one never gets promoted)."""
    if adapter.promoted:
        return f"Adapter #{adapter.adapter_id} is already serving."
    try:
        await services.engine.load_adapter(Path(adapter.path))
    except (OSError, ValueError) as exc:
        logger.warning(
            "adapter %d could not be loaded: %s", adapter.adapter_id, type(exc).__name__
        )
        problem = type(exc).__name__
        return f"Adapter #{adapter.adapter_id} could not be loaded ({problem}); nothing changed."
    await promote_adapter(services.db, adapter.adapter_id)
    return f"Adapter #{adapter.adapter_id} is live."


async def promote(update: Update, context: CloneContext) -> None:
    """Make the adapter with the given id serve, without a restart."""
    message = update.effective_message
    if message is None:
        return
    args = context.args or []
    if len(args) != 1 or not args[0].lstrip("#").isdigit():
        await message.reply_text(PROMOTE_USAGE)
        return
    adapter = await get_adapter(context.services.db, int(args[0].lstrip("#")))
    if adapter is None:
        await message.reply_text(f"There is no adapter #{args[0].lstrip('#')}. {PROMOTE_USAGE}")
        return
    await message.reply_text(await _switch(context.services, adapter))


async def rollback(update: Update, context: CloneContext) -> None:
    """Go back to the adapter trained before the serving one."""
    message = update.effective_message
    if message is None:
        return
    services = context.services
    serving = await current_adapter(services.db)
    older = [
        adapter
        for adapter in await list_adapters(services.db, limit=1000)
        if serving is None or adapter.adapter_id < serving.adapter_id
    ]
    if serving is None or not older:
        await message.reply_text("There is no earlier adapter to roll back to.")
        return
    await message.reply_text(await _switch(services, older[0]))
