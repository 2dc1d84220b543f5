"""One training run at a time: dataset → child process → adapter → live, with the owner told."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from bot.engine import ReplyEngine
from bot.quality_gate import GateDecision, decide
from bot.run_setup import PreparedRun, RunSetupError, prepare_run
from bot.settings import Settings
from storage.db import Database
from storage.models import TrainingRun
from storage.runs import (
    active_run,
    add_adapter,
    add_run_eval,
    create_run,
    current_adapter,
    finish_run,
    get_run,
    mark_run_running,
)
from training.runner import EvaluationError, LocalRunner, evaluate_in_child

logger = logging.getLogger(__name__)

Notify = Callable[[str], Awaitable[None]]
OnEvent = Callable[[dict[str, Any]], Awaitable[None]]


class RunAlreadyActiveError(Exception):
    """A training run is already queued or running."""


def _metric(metrics: dict[str, float], name: str) -> str:
    value = metrics.get(name)
    return "n/a" if value is None else f"{value:.3f}"


def describe_metrics(metrics: dict[str, float]) -> str:
    """eval_loss and mean token accuracy in a few words (content accuracy once gated)."""
    text = (
        f"eval_loss {_metric(metrics, 'eval_loss')}, "
        f"mean token accuracy {_metric(metrics, 'eval_mean_token_accuracy')}"
    )
    if "gate_content_token_accuracy" in metrics:
        text += f", {_metric(metrics, 'gate_content_token_accuracy')} on content tokens"
    return text


class RetrainService:
    """Runs training jobs for the bot; the scheduler and /retrain both call `run`."""

    def __init__(
        self,
        settings: Settings,
        db: Database,
        engine: ReplyEngine | None,
        notify: Notify,
        on_event: OnEvent | None = None,
        status_for_run: Callable[[int], OnEvent] | None = None,
    ) -> None:
        """`engine` None: nothing serves in this process (the CLI), adapters are only recorded.

        `on_event` gets every trainer event; `status_for_run(run_id)` makes a per-run callback
        (the bot's edited status message).
        """
        self._settings = settings
        self._db = db
        self._engine = engine
        self._notify = notify
        self._on_event = on_event
        self._status_for_run = status_for_run
        self._lock = asyncio.Lock()
        self._runner: LocalRunner | None = None
        self._cancel_requested = False

    @property
    def busy(self) -> bool:
        return self._lock.locked()

    async def ensure_idle(self) -> None:
        """Raise RunAlreadyActiveError when a run is queued or running."""
        if self.busy or await active_run(self._db) is not None:
            raise RunAlreadyActiveError("a training run is already in progress")

    async def cancel(self) -> bool:
        """Stop the run in progress, at whatever stage it is; False when none is running."""
        if not self.busy:
            return False
        self._cancel_requested = True
        if self._runner is not None:
            self._runner.cancel()  # a child not started yet is stopped at its first event
        return True

    async def run(self, trigger: str) -> TrainingRun | None:
        """Train a new adapter from everything stored, and make it live if it succeeds.

        Returns the finished run, or None when another run was already in progress.
        """
        if self.busy:
            logger.info("skipping %s run: another run is in progress", trigger)
            return None
        async with self._lock:
            self._cancel_requested = False
            run_id = await create_run(self._db, trigger)
            logger.info("training run %d started by %s", run_id, trigger)
            await self._notify(f"Training run #{run_id} started ({trigger}).")
            try:
                await self._train(run_id)
            except RunSetupError as exc:
                await finish_run(self._db, run_id, "failed", {}, str(exc))
                await self._notify(f"Training run #{run_id} did not start: {exc}")
            except asyncio.CancelledError:
                await finish_run(self._db, run_id, "cancelled", {}, "cancelled")
                raise
            except Exception as exc:
                # The job boundary: record the failure and keep the bot and adapter as they were.
                logger.exception("training run %d failed", run_id)
                await finish_run(self._db, run_id, "failed", {}, f"{type(exc).__name__}: {exc}")
                await self._notify(
                    f"Training run #{run_id} failed ({type(exc).__name__}); "
                    "the clone keeps its current adapter. Details are in the bot's log."
                )
            return await get_run(self._db, run_id)

    async def _train(self, run_id: int) -> None:
        prepared = await prepare_run(self._db, self._settings, run_id)
        if self._cancel_requested:
            await self._cancelled(run_id)
            return
        await mark_run_running(self._db, run_id, None, str(prepared.run_dir))
        runner = self._runner = LocalRunner()
        status = self._status_for_run(run_id) if self._status_for_run else None

        async def on_event(event: dict[str, Any]) -> None:
            if event.get("event") == "start":
                await mark_run_running(self._db, run_id, runner.pid, str(prepared.run_dir))
                if self._cancel_requested:
                    runner.cancel()
            if event.get("event") == "eval" and isinstance(event.get("step"), int):
                numbers = {
                    k: float(v)
                    for k, v in event.items()
                    if isinstance(v, int | float) and not isinstance(v, bool) and k != "step"
                }
                await add_run_eval(self._db, run_id, int(event["step"]), numbers)
            if self._on_event is not None:
                await self._on_event(event)
            if status is not None:
                await status(event)

        try:
            outcome = await runner.run(prepared.config_path, prepared.log_path, on_event=on_event)
        finally:
            self._runner = None
        result = outcome.result
        if outcome.error == "cancelled":
            await self._cancelled(run_id)
            return
        if outcome.returncode != 0 or result is None:
            error = outcome.error or f"training exited with code {outcome.returncode}"
            await finish_run(self._db, run_id, "failed", {}, error)
            await self._notify(
                f"Training run #{run_id} failed; the clone keeps its current adapter. "
                f"Log: {prepared.log_path}"
            )
            return
        metrics = {k: float(v) for k, v in dict(result.get("metrics", {})).items()}
        adapter_dir = Path(str(result["adapter_dir"]))
        decision, scores = await self._gate(adapter_dir, prepared)
        metrics["gate_eval_loss"] = decision.candidate_loss
        metrics["gate_content_token_accuracy"] = scores["eval_content_token_accuracy"]
        if decision.serving_loss is not None:
            metrics["gate_serving_eval_loss"] = decision.serving_loss
        sizes = f"{len(prepared.build.train)} training / {len(prepared.build.eval)} eval samples"
        if not decision.promote:
            adapter_id = await add_adapter(
                self._db, run_id, str(adapter_dir), metrics, promoted=False
            )
            await finish_run(self._db, run_id, "succeeded", metrics, None)
            await self._notify(
                f"Training run #{run_id} finished ({describe_metrics(metrics)}; {sizes}), but "
                f"its {decision.reason}, so the current adapter keeps serving. It is kept as "
                f"candidate #{adapter_id}: /promote {adapter_id} to use it anyway."
            )
            return
        # Load first: an adapter that cannot be served is never promoted.
        if self._engine is not None:
            await self._engine.load_adapter(adapter_dir)
        await add_adapter(self._db, run_id, str(adapter_dir), metrics, promoted=True)
        await finish_run(self._db, run_id, "succeeded", metrics, None)
        live = "The new adapter is live." if self._engine else f"Adapter: {adapter_dir}"
        await self._notify(
            f"Training run #{run_id} finished: {describe_metrics(metrics)} ({sizes}); "
            f"{decision.reason}. {live}"
        )

    async def _cancelled(self, run_id: int) -> None:
        await finish_run(self._db, run_id, "cancelled", {}, "cancelled by the owner")
        await self._notify(
            f"Training run #{run_id} was cancelled; the current adapter keeps serving."
        )

    async def _gate(
        self, candidate: Path, prepared: PreparedRun
    ) -> tuple[GateDecision, dict[str, float]]:
        """Score the candidate and the serving adapter on this run's eval set, same code."""
        max_length = prepared.config.max_length
        log_path = prepared.run_dir / "gate.log"
        scores = await evaluate_in_child(
            candidate, prepared.config.eval_file, max_length=max_length, log_path=log_path
        )
        serving = await current_adapter(self._db)
        serving_loss: float | None = None
        if serving is not None:
            try:
                serving_scores = await evaluate_in_child(
                    Path(serving.path),
                    prepared.config.eval_file,
                    max_length=max_length,
                    log_path=log_path,
                )
                serving_loss = serving_scores["eval_loss"]
            except EvaluationError:
                # A serving adapter that cannot even be scored is no bar to clear.
                logger.warning("the serving adapter %d could not be scored", serving.adapter_id)
        decision = decide(
            scores["eval_loss"], serving_loss, self._settings.promote_min_improvement
        )
        return decision, scores
