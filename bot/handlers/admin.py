"""Owner commands: /retrain and /stats (the access gate already let only the owner through)."""

from __future__ import annotations

import asyncio
import logging
import tempfile
from pathlib import Path

from telegram import Message, Update

from bot.context import CloneContext, Services
from bot.retrain.figures import (
    adapter_lines,
    precision_line,
    quiz_lines,
    run_lines,
    style_legend,
)
from bot.telegram.const import RETRAIN_JOB_ID
from storage.collection import collection_paused
from storage.corrections import count_corrections
from storage.messages import chat_titles, corpus_counts
from storage.quizzes import quiz_scores
from storage.reply_labels import count_labels
from storage.runs import current_adapter, latest_run
from training.chat_format import CloneSpecError, load_clone_spec
from training.pipeline import RunAlreadyActiveError
from training.prepare import build_corpus_dataset
from training.report import build_report, format_short, save_length_histogram

logger = logging.getLogger(__name__)


def _recorded_precision(adapter_dir: Path) -> str:
    """The precision the adapter's clone.json records ('' when it has none or is unreadable)."""
    try:
        return load_clone_spec(adapter_dir).precision
    except CloneSpecError:
        return ""


ALREADY_RUNNING = "A training run is already in progress; I'll tell you when it ends."


async def retrain(update: Update, context: CloneContext) -> None:
    """Start a training run now; say so if one is already running."""
    message = update.effective_message
    if message is None:
        return
    services = context.services
    try:
        await services.retrain.ensure_idle()
    except RunAlreadyActiveError:
        await message.reply_text(ALREADY_RUNNING)
        return
    # A job of its own per /retrain: APScheduler silently skips a job whose earlier instance
    # still runs, so one shared id left a /retrain sent during a run without an answer.
    job_id = f"{RETRAIN_JOB_ID}:{update.update_id}"
    services.scheduler.add_job(_run_now, args=[services, message], id=job_id)


async def _run_now(services: Services, message: Message) -> None:
    """The /retrain job; several /retrain at once can all find the pipeline idle, and the
    runs that then find another one in progress answer here."""
    if await services.retrain.run("command") is None:
        await message.reply_text(ALREADY_RUNNING)


async def cancel(update: Update, context: CloneContext) -> None:
    """Stop the training run in progress; the serving adapter stays."""
    message = update.effective_message
    if message is None:
        return
    if not await context.services.retrain.cancel():
        await message.reply_text("No training run is in progress.")
        return
    await message.reply_text("Stopping the training run…")


async def stats(update: Update, context: CloneContext) -> None:
    """Messages, the training data, the last run and the serving adapter (eval_loss, style);
    `/stats data` adds the length histogram."""
    message = update.effective_message
    if message is None:
        return
    services = context.services
    counts = await corpus_counts(services.db)
    build = await build_corpus_dataset(services.db, services.settings)
    report = build_report(
        build, services.settings.dataset_config(), chat_titles=await chat_titles(services.db)
    )
    lines = [
        f"Chats: {counts.chats}",
        f"Messages: {counts.messages} ({counts.owner_messages} yours)",
        format_short(report),
    ]
    corrections = await count_corrections(services.db)
    if corrections:
        lines.append(f"Your /fix corrections (trained on next run): {corrections}")
    labels = await count_labels(services.db)
    if any(labels.values()):
        lines.append(f"Replies you rated: {labels['good']} good, {labels['bad']} bad")
    run = await latest_run(services.db)
    lines += run_lines(run)
    paused = await collection_paused(services.db)
    lines.append(f"Live collection: {'paused (/resume)' if paused else 'on'}")
    adapter = await current_adapter(services.db)
    lines += adapter_lines(adapter, run)
    serving_id = adapter.adapter_id if adapter else None
    lines += quiz_lines(await quiz_scores(services.db), serving_id)
    if adapter is not None:
        recorded = await asyncio.to_thread(_recorded_precision, Path(adapter.path))
        server = services.settings.engine == "openai"
        lines.append(precision_line(recorded, services.engine.precision, model_server=server))
    lines += style_legend(run.metrics if run else {}, adapter.metrics if adapter else {})
    await message.reply_text("\n".join(lines))
    if context.args and context.args[0].lower() == "data":
        with tempfile.TemporaryDirectory() as folder:
            png = await asyncio.to_thread(
                save_length_histogram, report, Path(folder) / "reply-lengths.png"
            )
            await message.reply_photo(png.read_bytes(), caption="Owner reply lengths (words)")
