"""The training pipeline as the owner sees it: what each run ending says, its progress, the loss
curve, and the serving engine lending its accelerator and loading what the gate promotes.

``OwnerHooks`` is the ``training.pipeline.RunHooks`` of the bot and of ``tgclone train``; the
words are the same in a Telegram message and on a terminal. It imports nothing of Telegram:
the bot hands it callables that send.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from bot.engine.base import ReplyEngine
from bot.retrain.figures import describe_metrics, format_style
from training.loss_curve import NothingToPlotError, save_loss_curve
from training.pipeline import RunReport
from training.runners import Runner

logger = logging.getLogger(__name__)

Say = Callable[[str], Awaitable[None]]
SendPhoto = Callable[[Path, str], Awaitable[None]]
OnEvent = Callable[[dict[str, Any]], Awaitable[None]]


def describe(report: RunReport, *, served: bool = True) -> str:
    """What the owner is told when a run ends (``served``: an engine serves what is promoted,
    else the adapter is only recorded)."""
    run = f"Training run #{report.run_id}"
    if report.ending == "not_started":
        return f"{run} did not start: {report.reason}"
    if report.ending == "cancelled":
        return f"{run} was cancelled; the current adapter keeps serving."
    if report.ending == "failed":
        where = f"Log: {report.log_path}" if report.log_path else "Details are in the bot's log."
        return f"{run} failed ({report.reason}); the clone keeps its current adapter. {where}"
    style = format_style(report.metrics)  # "style: ..." or None
    figures = describe_metrics(report.metrics) + (f"; {style}" if style else "")
    sizes = f"{_count(report.train_samples)} training / {_count(report.eval_samples)} eval samples"
    preference = f"\n{report.preference}" if report.preference else ""
    sizes += describe_batch(report.batch)
    if report.ending == "kept":
        return (
            f"{run} finished ({figures}; {sizes}), but {report.reason}, so the current adapter "
            f"keeps serving. It is kept as candidate #{report.adapter_id}: "
            f"/promote {report.adapter_id} to use it anyway.{preference}"
        )
    live = "The new adapter is live." if served else f"Adapter: {report.adapter_dir}"
    return f"{run} finished: {figures} ({sizes}); {report.reason}. {live}{preference}"


def describe_batch(batch: dict[str, int]) -> str:
    """The batch as the run made it, for the end-of-run message ('' when not reported)."""
    try:
        per_device, steps = batch["per_device_batch"], batch["gradient_accumulation_steps"]
        gpus, effective = batch["gpus"], batch["effective_batch"]
    except KeyError:
        return ""
    where = f"{gpus} GPUs" if gpus > 1 else "1 process"
    text = f", effective batch {effective}: {per_device} per device × {steps} accumulation"
    text += f" × {where}"
    recipe = batch.get("recipe_batch")
    if recipe is not None and recipe != effective:
        text += f" (the recipe's {recipe} does not divide among them)"
    return text


def _count(value: int | None) -> str:
    return "?" if value is None else str(value)


class OwnerHooks:
    """Tells the owner how runs go and lets the serving engine follow them.

    Args:
        say: sends a line to the owner (a Telegram message, or a terminal print).
        engine: the serving engine, or None where nothing serves (the command line): then a
            promoted adapter is only recorded.
        share_accelerator: TRAIN_SHARE_GPU: a local run leaves the serving model loaded.
        status_for_run: a per-run callback for the trainer's events (the bot's edited status
            message).
        on_event: gets every trainer event (the command line prints them).
        send_photo: sends the loss curve.
    """

    def __init__(
        self,
        say: Say,
        engine: ReplyEngine | None = None,
        *,
        share_accelerator: bool = False,
        status_for_run: Callable[[int], OnEvent] | None = None,
        on_event: OnEvent | None = None,
        send_photo: SendPhoto | None = None,
    ) -> None:
        self._say = say
        self._engine = engine
        self._share = share_accelerator
        self._status_for_run = status_for_run
        self._on_event = on_event
        self._send_photo = send_photo
        self._statuses: dict[int, OnEvent] = {}

    async def started(self, run_id: int, trigger: str) -> None:
        await self._say(f"Training run #{run_id} started ({trigger}).")

    async def resumed(self, run_id: int) -> None:
        await self._say(
            f"Training run #{run_id} was in progress when the bot restarted; following it again."
        )

    async def event(self, run_id: int, event: dict[str, Any]) -> None:
        if self._on_event is not None:
            await self._on_event(event)
        if self._status_for_run is not None:
            status = self._statuses.get(run_id)
            if status is None:
                status = self._statuses[run_id] = self._status_for_run(run_id)
            await status(event)

    @contextlib.asynccontextmanager
    async def accelerator(self, runner: Runner) -> AsyncIterator[None]:
        """A local run gets the serving model's accelerator unless TRAIN_SHARE_GPU says both
        fit; it is loaded again afterwards (meanwhile the clone is 'learning right now')."""
        engine = self._engine
        lend = engine is not None and runner.kind == "local" and not self._share
        if lend and engine is not None:
            await engine.release()
        try:
            yield
        finally:
            if lend and engine is not None:
                await engine.restore()

    async def serve(self, adapter_dir: Path) -> None:
        if self._engine is not None:
            await self._engine.load_adapter(adapter_dir)

    async def finished(self, report: RunReport) -> None:
        self._statuses.pop(report.run_id, None)
        await self._say(describe(report, served=self._engine is not None))
        if report.ending in ("promoted", "kept"):
            await self._loss_curve(report)

    async def _loss_curve(self, report: RunReport) -> None:
        if self._send_photo is None or report.run_dir is None:
            return
        try:
            curve = await asyncio.to_thread(
                save_loss_curve,
                report.log_history,
                report.run_dir / "loss.png",
                title=f"Training run #{report.run_id}",
            )
        except NothingToPlotError:
            logger.info("run %d logged no losses to plot", report.run_id)
            return
        await self._send_photo(curve.path, f"Run #{report.run_id}: train and eval loss")
