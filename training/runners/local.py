"""Train on this machine: a detached child process, followed through its files."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from training.gpus import run_environment
from training.runners.base import (
    EVENTS_FILE,
    EXIT_CODE_FILE,
    PID_FILE,
    EventCallback,
    RunDetachedError,
    RunHandle,
    RunnerKind,
    RunOutcome,
    output_dir_of,
    train_command,
    wrapped,
)
from training.runners.events import (
    EventReader,
    deliver,
    failure_reason,
    read_exit_code,
    read_result,
)
from training.train import RESULT_FILE

if TYPE_CHECKING:
    from training.judge import Judgement

logger = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parent.parent.parent
POLL_SECONDS = 0.5


def is_our_process(pid: int, config_path: Path) -> bool:
    """True when ``pid`` runs ``training.train`` with this config: pids get reused."""
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    # A zombie (ended, not yet reaped) has an empty command line: it counts as ended.
    return b"training.train" in args and str(config_path).encode() in args


class LocalRunner:
    """Train on this machine in a child process (its own session and process group).

    The child's events go to ``events.jsonl`` beside the config, so ``follow`` works the same
    for a child of this process and for one a previous bot process started. It sees exactly the
    GPUs it trains on (``training.gpus``): the first ``num_gpus`` of ``gpu_ids`` (else of the
    machine's); the judge sees the first of them.
    """

    kind: RunnerKind = "local"

    def __init__(
        self,
        python: str = sys.executable,
        cwd: Path = PROJECT_ROOT,
        env: Mapping[str, str] | None = None,
        num_gpus: int = 1,
        accelerate: bool | None = None,
        poll_seconds: float = POLL_SECONDS,
        gpu_ids: Sequence[str] = (),
    ) -> None:
        """``env`` None passes this process's environment through (with the GPUs chosen);
        ``num_gpus`` > 1 (or ``accelerate``) starts training through ``accelerate launch``."""
        self._python = python
        self._cwd = cwd
        self._env = dict(env) if env is not None else None
        self._gpu_ids = tuple(gpu_ids)
        self._num_gpus = num_gpus
        self._accelerate = accelerate
        self._poll = poll_seconds
        self._process: asyncio.subprocess.Process | None = None
        self._handle: RunHandle | None = None
        self._cancelled = False
        self._detached = False

    @property
    def pid(self) -> int | None:
        """Process id of the training process followed; None before it starts."""
        return self._handle.pid if self._handle is not None else None

    async def run(
        self, config_path: Path, log_path: Path, on_event: EventCallback | None = None
    ) -> RunOutcome:
        """Run one training to completion, streaming progress events to ``on_event``."""
        handle = await self.start(config_path, log_path)
        return await self.follow(handle, on_event)

    async def start(self, config_path: Path, log_path: Path) -> RunHandle:
        """Start the child; stale events, exit status and result.json of the dir are removed."""
        config_path = Path(config_path).resolve()
        log_path.parent.mkdir(parents=True, exist_ok=True)
        run_dir = config_path.parent
        for stale in (run_dir / EVENTS_FILE, run_dir / EXIT_CODE_FILE):
            stale.unlink(missing_ok=True)
        (output_dir_of(config_path) / RESULT_FILE).unlink(missing_ok=True)
        command = train_command(self._python, str(config_path), self._num_gpus, self._accelerate)
        env = await run_environment(self._env, self._gpu_ids, self._num_gpus)
        self._process = await asyncio.create_subprocess_exec(
            *wrapped(
                command,
                str(run_dir / EVENTS_FILE),
                str(log_path),
                str(run_dir / EXIT_CODE_FILE),
                str(run_dir / PID_FILE),
            ),
            cwd=self._cwd,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            start_new_session=True,
        )
        self._handle = RunHandle("local", self._process.pid, config_path, log_path)
        logger.info("training started, pid %s", self._process.pid)
        if self._cancelled:
            self._kill()
        return self._handle

    async def follow(self, handle: RunHandle, on_event: EventCallback | None = None) -> RunOutcome:
        """Stream events until the process ends; works for a process started by another bot."""
        self._handle = handle
        if self._cancelled:
            self._kill()
        own = self._process if self._process and self._process.pid == handle.pid else None
        run_dir = handle.config_path.parent
        reader = EventReader()
        returncode: int | None = None
        while True:
            if self._detached:
                raise RunDetachedError(f"stopped following training pid {handle.pid}")
            if own is not None:
                with contextlib.suppress(TimeoutError):
                    returncode = await asyncio.wait_for(own.wait(), self._poll)
                ended = returncode is not None
            else:
                ended = not is_our_process(handle.pid, handle.config_path)
                if not ended:
                    await asyncio.sleep(self._poll)
            await deliver(reader.feed(self._read_from(run_dir / EVENTS_FILE, reader)), on_event)
            if ended:
                break
        if own is None:
            # Not our child: its wrapper wrote the status (unless it was killed too).
            returncode = read_exit_code(run_dir / EXIT_CODE_FILE)
        result = read_result(output_dir_of(handle.config_path))
        logger.info("training finished, pid %s, returncode %s", handle.pid, returncode)
        if self._cancelled and returncode != 0:
            return RunOutcome(returncode=returncode or -1, result=result, error="cancelled")
        error = None
        if returncode != 0:
            error = failure_reason(returncode, result, handle.log_path, "this machine")
        return RunOutcome(
            returncode=-1 if returncode is None else returncode, result=result, error=error
        )

    async def judge(
        self,
        handle: RunHandle,
        candidate: Path,
        serving: Path | None,
        eval_file: Path,
        *,
        max_length: int,
        log_path: Path,
    ) -> Judgement:
        """Judge the trained adapter here, in a child that sees the first training GPU."""
        from training.judge import JUDGE_PID_NAME, judge_in_child

        env = await run_environment(self._env, self._gpu_ids, 1)
        return await judge_in_child(
            candidate,
            serving,
            eval_file,
            max_length=max_length,
            log_path=log_path,
            python=self._python,
            env=env,
            pid_path=log_path.parent / JUDGE_PID_NAME,
        )

    async def finish(self, handle: RunHandle) -> None:
        """Nothing to clean up: the run's files are the run directory's."""

    @staticmethod
    def _read_from(path: Path, reader: EventReader) -> bytes:
        try:
            with path.open("rb") as file:
                file.seek(reader.consumed)
                return file.read()
        except FileNotFoundError:
            return b""

    def cancel(self) -> None:
        """Ask the child (and anything it started) to stop; ``follow`` then returns."""
        self._cancelled = True
        self._kill()

    def detach(self) -> None:
        """Stop following at the next poll; the training process keeps running."""
        self._detached = True

    def _kill(self) -> None:
        handle = self._handle
        if handle is None:
            return  # not started yet: ``start`` kills it right away
        if self._process is None or self._process.pid != handle.pid:
            if not is_our_process(handle.pid, handle.config_path):
                return
        elif self._process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(handle.pid, signal.SIGTERM)
