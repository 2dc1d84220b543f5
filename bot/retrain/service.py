"""One training run at a time: dataset → runner (local or SSH) → gate → adapter live.

A run outlives the bot: the training process is detached and recorded in SQLite, so on start
``resume`` follows a run the previous bot process left (or fails it with the reason), and on
shutdown ``shutdown`` stops following without stopping the training.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.engine.base import ReplyEngine
from bot.retrain.figures import describe_metrics, format_style
from bot.settings import Settings
from storage.db import Database
from storage.models import TrainingRun
from storage.runs import (
    RunLocation,
    active_run,
    add_adapter,
    add_run_eval,
    create_run,
    current_adapter,
    finish_run,
    get_run,
    mark_run_running,
    record_run_location,
    run_location,
    unfinished_runs,
)
from training.config import TrainConfig
from training.gate import GateDecision, decide
from training.loss_curve import NothingToPlotError, save_loss_curve
from training.prepare import RunSetupError, prepare_run
from training.runner import EvaluationError, evaluate_in_child
from training.runners import RunDetachedError, RunHandle, Runner, RunOutcome
from training.runners.factory import make_runner
from training.style_runner import StyleEvalError, run_style_eval

logger = logging.getLogger(__name__)

Notify = Callable[[str], Awaitable[None]]
NotifyPhoto = Callable[[Path, str], Awaitable[None]]
OnEvent = Callable[[dict[str, Any]], Awaitable[None]]
CONFIG_NAME = "train_config.json"  # what prepare_run writes into the run directory
LOG_NAME = "train.log"
SHUTDOWN_SECONDS = 15.0


class RunAlreadyActiveError(Exception):
    """A training run is already queued or running."""


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
        notify_photo: NotifyPhoto | None = None,
    ) -> None:
        """`engine` None: nothing serves in this process (the CLI), adapters are only recorded.

        `on_event` gets every trainer event; `status_for_run(run_id)` makes a per-run callback
        (the bot's edited status message); `notify_photo` sends the loss curve.
        """
        self._settings = settings
        self._db = db
        self._engine = engine
        self._notify = notify
        self._on_event = on_event
        self._status_for_run = status_for_run
        self._notify_photo = notify_photo
        self._lock = asyncio.Lock()
        self._runner: Runner | None = None
        self._handle: RunHandle | None = None  # the training process being followed
        self._cancel_requested = False
        self._resume_task: asyncio.Task[None] | None = None

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
            self._runner.cancel()  # a process not started yet is stopped as soon as it is
        return True

    async def shutdown(self) -> None:
        """The bot stops: leave a training process running (the next start follows it again);
        a run still preparing or being scored is cancelled."""
        if not self.busy:
            return
        if self._runner is not None:
            self._runner.detach()
        else:
            await self.cancel()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(SHUTDOWN_SECONDS), self._lock:
                pass

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
            await self._guard(run_id, self._train(run_id))
            return await get_run(self._db, run_id)

    async def resume(self) -> None:
        """Follow the runs a previous bot process left running, or fail them with the reason.

        A process that is still alive is followed to its end (progress, gate, promotion as
        usual); one that finished meanwhile is judged from its result; one that died without
        a result fails. Queued runs that never started a process fail.
        """
        async with self._lock:
            for run in await unfinished_runs(self._db):
                self._cancel_requested = False
                location = await run_location(self._db, run.run_id)
                if location is None or run.run_dir is None:
                    await finish_run(
                        self._db,
                        run.run_id,
                        "failed",
                        {},
                        "the bot stopped before this run's training process started",
                    )
                    continue
                logger.info("following training run %d again", run.run_id)
                await self._notify(
                    f"Training run #{run.run_id} was in progress when the bot restarted; "
                    "following it again."
                )
                await self._guard(run.run_id, self._reattach(run.run_id, run.run_dir, location))

    def resume_in_background(self) -> asyncio.Task[None]:
        """Start `resume` as a task of its own (not the application's: PTB's stop() would
        wait for it, and the training it follows may take hours)."""
        self._resume_task = asyncio.get_running_loop().create_task(self.resume())
        return self._resume_task

    async def _guard(self, run_id: int, work: Awaitable[None]) -> None:
        """The job boundary: every way a run can end is recorded; the bot keeps serving."""
        try:
            await work
        except RunSetupError as exc:
            await finish_run(self._db, run_id, "failed", {}, str(exc))
            await self._notify(f"Training run #{run_id} did not start: {exc}")
        except RunDetachedError:
            logger.info("training run %d left running for the next bot start", run_id)
        except asyncio.CancelledError:
            if self._handle is None:
                await finish_run(self._db, run_id, "cancelled", {}, "cancelled")
            else:  # the task went, not the training process: the next start follows it
                logger.info("training run %d left running (its task was cancelled)", run_id)
            raise
        except Exception as exc:
            logger.exception("training run %d failed", run_id)
            await finish_run(self._db, run_id, "failed", {}, f"{type(exc).__name__}: {exc}")
            await self._notify(
                f"Training run #{run_id} failed ({type(exc).__name__}); "
                "the clone keeps its current adapter. Details are in the bot's log."
            )
        finally:
            self._runner = None
            self._handle = None

    async def _train(self, run_id: int) -> None:
        prepared = await prepare_run(self._db, self._settings, run_id)
        if self._cancel_requested:
            await self._cancelled(run_id)
            return
        await mark_run_running(self._db, run_id, None, str(prepared.run_dir))
        runner = self._runner = make_runner(self._settings)
        async with self._gpu_for(runner):
            handle = self._handle = await runner.start(prepared.config_path, prepared.log_path)
            location = RunLocation(runner.kind, handle.pid, handle.host, handle.remote_dir)
            await record_run_location(self._db, run_id, location)
            outcome = await runner.follow(handle, self._event_handler(run_id))
            verdict = await self._judge(run_id, handle, outcome)
        if verdict is not None:
            await self._apply(run_id, verdict)

    async def _reattach(self, run_id: int, run_dir: str, location: RunLocation) -> None:
        runner = self._runner = make_runner(self._settings)
        handle = RunHandle(
            "ssh" if location.runner == "ssh" else "local",
            location.pid,
            Path(run_dir) / CONFIG_NAME,
            Path(run_dir) / LOG_NAME,
            host=location.host,
            remote_dir=location.remote_dir,
        )
        self._handle = handle
        if handle.runner != runner.kind:
            raise RunSetupError(
                f"it was started by the {handle.runner} runner, but TRAIN_RUNNER is now "
                f"{runner.kind}; the clone keeps its current adapter"
            )
        async with self._gpu_for(runner):
            outcome = await runner.follow(handle, self._event_handler(run_id))
            verdict = await self._judge(run_id, handle, outcome)
        if verdict is not None:
            await self._apply(run_id, verdict)

    @contextlib.asynccontextmanager
    async def _gpu_for(self, runner: Runner) -> AsyncIterator[None]:
        """A local run gets the serving model's GPU unless TRAIN_SHARE_GPU says both fit."""
        release = (
            self._engine is not None
            and runner.kind == "local"
            and not self._settings.train_share_gpu
        )
        if release and self._engine is not None:
            await self._engine.release()
        try:
            yield
        finally:
            if release and self._engine is not None:
                await self._engine.restore()

    def _event_handler(self, run_id: int) -> OnEvent:
        status = self._status_for_run(run_id) if self._status_for_run else None

        async def on_event(event: dict[str, Any]) -> None:
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

        return on_event

    async def _judge(self, run_id: int, handle: RunHandle, outcome: RunOutcome) -> _Verdict | None:
        """Record a training that ended without an adapter; score one that produced one.

        Runs while the training still holds the GPU: the scoring children need it too.
        """
        result = outcome.result
        if outcome.error == "cancelled" or (self._cancel_requested and not outcome.succeeded):
            await self._cancelled(run_id)
            return None
        if outcome.returncode != 0 or result is None:
            error = outcome.error or f"training exited with code {outcome.returncode}"
            await finish_run(self._db, run_id, "failed", {}, error)
            await self._notify(
                f"Training run #{run_id} failed; the clone keeps its current adapter. "
                f"Log: {handle.log_path}"
            )
            return None
        metrics = {k: float(v) for k, v in dict(result.get("metrics", {})).items()}
        adapter_dir = Path(str(result["adapter_dir"]))
        run_dir = handle.config_path.parent
        config = TrainConfig.from_dict(json.loads(handle.config_path.read_text("utf-8")))
        decision, scores = await self._gate(adapter_dir, config, run_dir)
        metrics["gate_eval_loss"] = decision.candidate_loss
        metrics["gate_content_token_accuracy"] = scores["eval_content_token_accuracy"]
        if decision.serving_loss is not None:
            metrics["gate_serving_eval_loss"] = decision.serving_loss
        metrics.update(await self._style(run_id, adapter_dir, config, run_dir))
        history = result.get("log_history")
        return _Verdict(
            adapter_dir=adapter_dir,
            run_dir=run_dir,
            metrics=metrics,
            decision=decision,
            sizes=_sizes(result),
            log_history=history if isinstance(history, list) else [],
        )

    async def _apply(self, run_id: int, verdict: _Verdict) -> None:
        """Promote the scored adapter or keep it as a candidate; tell the owner either way."""
        metrics, decision = verdict.metrics, verdict.decision
        style = format_style(metrics)  # "style: ..." or None
        figures = describe_metrics(metrics) + (f"; {style}" if style else "")
        if not decision.promote:
            adapter_id = await add_adapter(
                self._db, run_id, str(verdict.adapter_dir), metrics, promoted=False
            )
            await finish_run(self._db, run_id, "succeeded", metrics, None)
            await self._notify(
                f"Training run #{run_id} finished ({figures}; {verdict.sizes}), but "
                f"its {decision.reason}, so the current adapter keeps serving. It is kept as "
                f"candidate #{adapter_id}: /promote {adapter_id} to use it anyway."
            )
        else:
            # Load first (the GPU is back): an adapter that cannot be served is never promoted.
            if self._engine is not None:
                await self._engine.load_adapter(verdict.adapter_dir)
            await add_adapter(self._db, run_id, str(verdict.adapter_dir), metrics, promoted=True)
            await finish_run(self._db, run_id, "succeeded", metrics, None)
            live = (
                "The new adapter is live." if self._engine else f"Adapter: {verdict.adapter_dir}"
            )
            await self._notify(
                f"Training run #{run_id} finished: {figures} ({verdict.sizes}); "
                f"{decision.reason}. {live}"
            )
        await self._send_loss_curve(run_id, verdict)

    async def _style(
        self, run_id: int, adapter_dir: Path, config: TrainConfig, run_dir: Path
    ) -> dict[str, float]:
        """Style figures of the new adapter; a failure here never fails the run."""
        log_path = run_dir / "style.log"
        try:
            return await run_style_eval(adapter_dir, config.eval_file, log_path=log_path)
        except StyleEvalError:
            logger.warning("style checks of run %d failed; see %s", run_id, log_path)
            return {}

    async def _send_loss_curve(self, run_id: int, verdict: _Verdict) -> None:
        if self._notify_photo is None:
            return
        try:
            curve = await asyncio.to_thread(
                save_loss_curve,
                verdict.log_history,
                verdict.run_dir / "loss.png",
                title=f"Training run #{run_id}",
            )
        except NothingToPlotError:
            logger.info("run %d logged no losses to plot", run_id)
            return
        await self._notify_photo(curve.path, f"Run #{run_id}: train and eval loss")

    async def _cancelled(self, run_id: int) -> None:
        await finish_run(self._db, run_id, "cancelled", {}, "cancelled by the owner")
        await self._notify(
            f"Training run #{run_id} was cancelled; the current adapter keeps serving."
        )

    async def _gate(
        self, candidate: Path, config: TrainConfig, run_dir: Path
    ) -> tuple[GateDecision, dict[str, float]]:
        """Score the candidate and the serving adapter on this run's eval set, same code."""
        max_length = config.max_length
        log_path = run_dir / "gate.log"
        scores = await evaluate_in_child(
            candidate, config.eval_file, max_length=max_length, log_path=log_path
        )
        serving = await current_adapter(self._db)
        serving_loss: float | None = None
        if serving is not None:
            try:
                serving_scores = await evaluate_in_child(
                    Path(serving.path), config.eval_file, max_length=max_length, log_path=log_path
                )
                serving_loss = serving_scores["eval_loss"]
            except EvaluationError:
                # A serving adapter that cannot even be scored is no bar to clear.
                logger.warning("the serving adapter %d could not be scored", serving.adapter_id)
        decision = decide(
            scores["eval_loss"], serving_loss, self._settings.promote_min_improvement
        )
        return decision, scores


@dataclass(frozen=True)
class _Verdict:
    """A finished training scored by the gate, waiting to be promoted or kept."""

    adapter_dir: Path
    run_dir: Path
    metrics: dict[str, float]
    decision: GateDecision
    sizes: str
    log_history: list[dict[str, Any]]


def _sizes(result: dict[str, Any]) -> str:
    return (
        f"{result.get('train_samples', '?')} training / "
        f"{result.get('eval_samples', '?')} eval samples"
    )
