"""One training run at a time: prepare → runner (local or SSH) → judge → gate → adapter record.

The bot (``bot.retrain``) and ``tgclone train`` drive the same ``TrainingPipeline``. It talks
to neither Telegram nor an engine: what the owner is told, which accelerator a local run may
take and what serves are the ``RunHooks``' business. It owns the rest: one run at a time,
cancelling, the runner, the run records, judging the new adapter (``training.judge``: it and
the serving adapter scored in one process on the run's eval set, and its style checks) and the
quality gate (``training.gate``).

A run outlives the process that started it: the training process is detached and recorded in
SQLite, so ``resume`` follows a run a previous process left (or fails it with the reason), and
``shutdown`` stops following without stopping the training.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

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
from training.gpus import GpuSelectionError
from training.judge import Judgement
from training.preflight import PreflightError, preflight_run
from training.prepare import RunSetupError, prepare_run, require_corpus
from training.runners import RunDetachedError, RunHandle, Runner, RunOutcome
from training.runners.factory import make_runner
from training.settings import PipelineSettings

logger = logging.getLogger(__name__)

CONFIG_NAME = "train_config.json"  # what prepare_run writes into the run directory
LOG_NAME = "train.log"
JUDGE_LOG_NAME = "judge.log"
SHUTDOWN_SECONDS = 15.0

Ending = Literal["promoted", "kept", "failed", "not_started", "cancelled"]


class RunAlreadyActiveError(Exception):
    """A training run is already queued or running."""


@dataclass(frozen=True)
class RunReport:
    """How a run ended, for whoever tells the owner."""

    run_id: int
    ending: Ending
    reason: str = ""
    """The gate's reason (promoted, kept), or why the run failed or did not start."""
    metrics: dict[str, float] = field(default_factory=dict)
    adapter_id: int | None = None
    adapter_dir: Path | None = None
    run_dir: Path | None = None
    log_path: Path | None = None
    train_samples: int | None = None
    eval_samples: int | None = None
    log_history: list[dict[str, Any]] = field(default_factory=list)
    """Every log and evaluation of the trainer (loss curves are drawn from it)."""
    preference: str = ""
    """What the preference stage did, in a line (``training.preference``); empty: no word."""
    batch: dict[str, int] = field(default_factory=dict)
    """How the batch was made (``training.gpus.BatchPlan.to_dict``): GPUs, accumulation,
    effective batch."""


class RunHooks(Protocol):
    """What the pipeline asks of its driver (the bot or the command line)."""

    async def started(self, run_id: int, trigger: str) -> None:
        """A run was created (``trigger``: command, schedule, cli)."""

    async def resumed(self, run_id: int) -> None:
        """A run a previous process left running is followed again."""

    async def event(self, run_id: int, event: dict[str, Any]) -> None:
        """One event of the training process (progress, evaluations, token figures)."""

    def accelerator(self, runner: Runner) -> AbstractAsyncContextManager[None]:
        """Held while ``runner`` trains and the new adapter is judged (a local run may need
        the accelerator the serving model holds)."""

    async def serve(self, adapter_dir: Path) -> None:
        """Make ``adapter_dir`` serve before it is recorded as promoted; raise to refuse."""

    async def finished(self, report: RunReport) -> None:
        """The run ended (any way but detached)."""


class TrainingPipeline:
    """Runs training jobs; the scheduler, /retrain and ``tgclone train`` call ``run``."""

    def __init__(self, settings: PipelineSettings, db: Database, hooks: RunHooks) -> None:
        self._settings = settings
        self._db = db
        self._hooks = hooks
        self._lock = asyncio.Lock()
        self._runner: Runner | None = None
        self._handle: RunHandle | None = None  # the training process being followed
        self._cancel_requested = False
        self._resume_task: asyncio.Task[None] | None = None
        self._judging: asyncio.Future[Judgement] | None = None
        self._stopping = False
        self._runs_on = 0  # runs held or awaited (resume's look for none does not count)

    @property
    def busy(self) -> bool:
        """A run is being prepared, trained, judged or followed."""
        return self._runs_on > 0

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
        """This process stops: leave a training process running (the next start follows it
        again); a judging child is stopped (the next start judges the adapter again), and a
        run still preparing is cancelled."""
        resuming = self._resume_task
        if resuming is not None and not resuming.done() and not self.busy:
            # Not started yet (it takes the pipeline first): nothing to follow or leave.
            resuming.cancel()
            await asyncio.gather(resuming, return_exceptions=True)
        if not self.busy:
            return
        if self._judging is not None:
            self._stopping = True
            self._judging.cancel()  # returns once the child has exited
        if self._runner is not None:
            self._runner.detach()
        else:
            await self.cancel()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(SHUTDOWN_SECONDS), self._lock:
                pass

    async def run(self, trigger: str) -> TrainingRun | None:
        """Train a new adapter from everything stored, and make it serve if it passes the gate.

        Returns the finished run, or None when another run was already in progress.
        """
        if self.busy:
            logger.info("skipping %s run: another run is in progress", trigger)
            return None
        async with self._work(), self._lock:
            self._cancel_requested = False
            run_id = await create_run(self._db, trigger)
            logger.info("training run %d started by %s", run_id, trigger)
            await self._hooks.started(run_id, trigger)
            await self._guard(run_id, self._train(run_id))
            return await get_run(self._db, run_id)

    async def resume(self) -> None:
        """Follow the runs a previous process left running, or fail them with the reason.

        A process that is still alive is followed to its end (progress, judging, gate as
        usual); one that finished meanwhile is judged from its result; one that died without
        a result fails. Queued runs that never started a process fail.
        """
        async with self._lock:
            for run in await unfinished_runs(self._db):
                async with self._work():
                    await self._resume_one(run)

    async def _resume_one(self, run: TrainingRun) -> None:
        self._cancel_requested = False
        location = await run_location(self._db, run.run_id)
        if location is None or run.run_dir is None:
            reason = "the bot stopped before this run's training process started"
            await finish_run(self._db, run.run_id, "failed", {}, reason)
            await self._hooks.finished(RunReport(run.run_id, "failed", reason))
            return
        logger.info("following training run %d again", run.run_id)
        await self._hooks.resumed(run.run_id)
        await self._guard(run.run_id, self._reattach(run.run_id, run.run_dir, location))

    @contextlib.asynccontextmanager
    async def _work(self) -> AsyncIterator[None]:
        """The pipeline is busy while the block runs: a run is on, or waits for the lock."""
        self._runs_on += 1
        try:
            yield
        finally:
            self._runs_on -= 1

    def resume_in_background(self) -> asyncio.Task[None]:
        """Start ``resume`` as a task of its own (not the application's: PTB's stop() would
        wait for it, and the training it follows may take hours)."""
        self._resume_task = asyncio.get_running_loop().create_task(self.resume())
        return self._resume_task

    async def _guard(self, run_id: int, work: Any) -> None:
        """The job boundary: every way a run can end is recorded and reported."""
        try:
            await work
        except (RunSetupError, PreflightError, GpuSelectionError) as exc:
            await finish_run(self._db, run_id, "failed", {}, str(exc))
            await self._hooks.finished(RunReport(run_id, "not_started", str(exc)))
        except RunDetachedError:
            logger.info("training run %d left running for the next start", run_id)
        except asyncio.CancelledError:
            if self._handle is None:
                await finish_run(self._db, run_id, "cancelled", {}, "cancelled")
            else:  # the task went, not the training process: the next start follows it
                logger.info("training run %d left running (its task was cancelled)", run_id)
            raise
        except Exception as exc:
            logger.exception("training run %d failed", run_id)
            reason = type(exc).__name__
            await finish_run(self._db, run_id, "failed", {}, f"{reason}: {exc}")
            await self._hooks.finished(RunReport(run_id, "failed", reason))
        finally:
            self._runner = None
            self._handle = None

    async def _train(self, run_id: int) -> None:
        runner = make_runner(self._settings)
        await require_corpus(self._db)
        # Refused at once, before a dataset, a download or a process: a base model that is
        # missing offline, or that this machine cannot train.
        model = await preflight_run(self._settings, runner.kind)
        prepared = await prepare_run(self._db, self._settings, run_id, model.path)
        if self._cancel_requested:
            await self._cancelled(run_id)
            return
        await mark_run_running(self._db, run_id, None, str(prepared.run_dir))
        self._runner = runner
        async with self._hooks.accelerator(runner):
            handle = self._handle = await runner.start(prepared.config_path, prepared.log_path)
            location = RunLocation(runner.kind, handle.pid, handle.host, handle.remote_dir)
            await record_run_location(self._db, run_id, location)
            outcome = await runner.follow(handle, self._events(run_id))
            verdict = await self._settle(run_id, runner, handle, outcome)
        if verdict is not None:
            await self._apply(verdict)

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
        async with self._hooks.accelerator(runner):
            outcome = await runner.follow(handle, self._events(run_id))
            verdict = await self._settle(run_id, runner, handle, outcome)
        if verdict is not None:
            await self._apply(verdict)

    async def _settle(
        self, run_id: int, runner: Runner, handle: RunHandle, outcome: RunOutcome
    ) -> _Verdict | None:
        """Judge the run where it trained, then let the runner clean up there (not when this
        task is cancelled: the next start follows the run again)."""
        try:
            verdict = await self._judge(run_id, runner, handle, outcome)
        except Exception:
            await runner.finish(handle)
            raise
        await runner.finish(handle)
        return verdict

    def _events(self, run_id: int) -> Any:
        async def on_event(event: dict[str, Any]) -> None:
            if event.get("event") == "eval" and isinstance(event.get("step"), int):
                numbers = {
                    k: float(v)
                    for k, v in event.items()
                    if isinstance(v, int | float) and not isinstance(v, bool) and k != "step"
                }
                await add_run_eval(self._db, run_id, int(event["step"]), numbers)
            await self._hooks.event(run_id, event)

        return on_event

    async def _judge(
        self, run_id: int, runner: Runner, handle: RunHandle, outcome: RunOutcome
    ) -> _Verdict | None:
        """Record a training that ended without an adapter; judge one that produced one.

        Runs while the training still holds the accelerator: the judging child needs it too.
        """
        result = outcome.result
        if outcome.error == "cancelled" or (self._cancel_requested and not outcome.succeeded):
            await self._cancelled(run_id)
            return None
        if outcome.returncode != 0 or result is None:
            error = outcome.error or f"training exited with code {outcome.returncode}"
            await finish_run(self._db, run_id, "failed", {}, error)
            report = RunReport(run_id, "failed", error, log_path=handle.log_path)
            await self._hooks.finished(report)
            return None
        metrics = {k: float(v) for k, v in dict(result.get("metrics", {})).items()}
        adapter_dir = Path(str(result["adapter_dir"]))
        run_dir = handle.config_path.parent
        config = TrainConfig.from_dict(json.loads(handle.config_path.read_text("utf-8")))
        serving = await current_adapter(self._db)
        judgement = await self._judge_child(
            runner,
            handle,
            adapter_dir,
            Path(serving.path) if serving is not None else None,
            config.eval_file,
            config.max_length,
            run_dir,
        )
        decision = decide(
            judgement,
            serving_exists=serving is not None,
            min_improvement=self._settings.promote_min_improvement,
        )
        metrics.update(_gate_metrics(judgement, decision))
        history = result.get("log_history")
        preference = result.get("preference")
        batch = result.get("batch")
        return _Verdict(
            run_id=run_id,
            adapter_dir=adapter_dir,
            run_dir=run_dir,
            metrics=metrics,
            decision=decision,
            train_samples=result.get("train_samples"),
            eval_samples=result.get("eval_samples"),
            log_history=history if isinstance(history, list) else [],
            preference=str(preference.get("note", "")) if isinstance(preference, dict) else "",
            batch={str(k): int(v) for k, v in batch.items()} if isinstance(batch, dict) else {},
        )

    async def _judge_child(
        self,
        runner: Runner,
        handle: RunHandle,
        candidate: Path,
        serving: Path | None,
        eval_file: Path,
        max_length: int,
        run_dir: Path,
    ) -> Judgement:
        """The judging child's verdict, as a future ``shutdown`` can stop; stopped that way,
        the run is left for the next start (RunDetachedError), which judges it again."""
        self._judging = asyncio.ensure_future(
            runner.judge(
                handle,
                candidate,
                serving,
                eval_file,
                max_length=max_length,
                log_path=run_dir / JUDGE_LOG_NAME,
            )
        )
        try:
            return await self._judging
        except asyncio.CancelledError:
            if self._stopping and not _current_task_cancelling():
                raise RunDetachedError("the bot stopped while judging the new adapter") from None
            raise
        finally:
            self._judging = None

    async def _apply(self, verdict: _Verdict) -> None:
        """Promote the judged adapter or keep it as a candidate; report either way."""
        decision = verdict.decision
        if decision.promote:
            # Served first: an adapter that cannot be served is never recorded as serving.
            await self._hooks.serve(verdict.adapter_dir)
        adapter_id = await add_adapter(
            self._db,
            verdict.run_id,
            str(verdict.adapter_dir),
            verdict.metrics,
            promoted=decision.promote,
        )
        await finish_run(self._db, verdict.run_id, "succeeded", verdict.metrics, None)
        await self._hooks.finished(
            RunReport(
                verdict.run_id,
                "promoted" if decision.promote else "kept",
                decision.reason,
                verdict.metrics,
                adapter_id,
                verdict.adapter_dir,
                verdict.run_dir,
                train_samples=verdict.train_samples,
                eval_samples=verdict.eval_samples,
                log_history=verdict.log_history,
                preference=verdict.preference,
                batch=verdict.batch,
            )
        )

    async def _cancelled(self, run_id: int) -> None:
        await finish_run(self._db, run_id, "cancelled", {}, "cancelled by the owner")
        await self._hooks.finished(RunReport(run_id, "cancelled"))


def _current_task_cancelling() -> bool:
    """The running task itself was cancelled (not only a future it awaited)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def _gate_metrics(judgement: Judgement, decision: GateDecision) -> dict[str, float]:
    """The judgement's figures as the run and adapter records keep them."""
    metrics = {
        "gate_eval_loss": decision.candidate_loss,
        "gate_content_token_accuracy": judgement.candidate["eval_content_token_accuracy"],
        **judgement.style,
    }
    if decision.serving_loss is not None:
        metrics["gate_serving_eval_loss"] = decision.serving_loss
    return metrics


@dataclass(frozen=True)
class _Verdict:
    """A finished training judged by the gate, waiting to be promoted or kept."""

    run_id: int
    adapter_dir: Path
    run_dir: Path
    metrics: dict[str, float]
    decision: GateDecision
    train_samples: int | None
    eval_samples: int | None
    log_history: list[dict[str, Any]]
    preference: str
    batch: dict[str, int]


@contextlib.asynccontextmanager
async def no_accelerator_needed(runner: Runner) -> AsyncIterator[None]:
    """``RunHooks.accelerator`` for a process that serves nothing (the command line)."""
    yield
