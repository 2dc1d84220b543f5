"""Run ``python -m training.train`` as a child process, off the event loop.

The child writes one JSON event per stdout line (see ``training.train``) and its logs to
stderr; the runner hands each event to a callback and sends stderr to a log file, so a
long run never blocks the bot and a failure leaves a readable tail.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from training.config import TrainConfig
from training.train import RESULT_FILE

logger = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parent.parent
ERROR_TAIL_LINES = 20
ERROR_TAIL_CHARS = 2000
EventCallback = Callable[[dict[str, Any]], Awaitable[None] | None]


@dataclass(frozen=True)
class RunOutcome:
    """How a training process ended.

    ``result`` is the parsed result.json (None when the child wrote none); ``error`` says why
    it failed: the child's one-line error from result.json, else the tail of its stderr.
    """

    returncode: int
    result: dict[str, Any] | None
    error: str | None

    @property
    def succeeded(self) -> bool:
        """True when the process exited 0 and reported success."""
        return (
            self.returncode == 0
            and self.result is not None
            and self.result.get("status") == "succeeded"
        )


def _read_result(config_path: Path, started_at: float) -> dict[str, Any] | None:
    """result.json of this run; one left by an earlier run in the same directory is ignored."""
    try:
        config = TrainConfig.from_dict(json.loads(config_path.read_text(encoding="utf-8")))
        path = config.output_dir / RESULT_FILE
        if path.stat().st_mtime < started_at:
            return None
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, TypeError):
        return None
    return data if isinstance(data, dict) else None


def _tail(log_path: Path) -> str:
    try:
        lines = log_path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(lines[-ERROR_TAIL_LINES:])[-ERROR_TAIL_CHARS:]


class LocalRunner:
    """Train on this machine in a child process (its own process group)."""

    def __init__(
        self,
        python: str = sys.executable,
        cwd: Path = PROJECT_ROOT,
        env: Mapping[str, str] | None = None,
    ) -> None:
        """``env`` None passes this process's environment through unchanged."""
        self._python = python
        self._cwd = cwd
        self._env = dict(env) if env is not None else None
        self._process: asyncio.subprocess.Process | None = None
        self._cancelled = False

    @property
    def pid(self) -> int | None:
        """Process id of the running (or finished) child; None before ``run`` starts it."""
        return self._process.pid if self._process is not None else None

    async def run(
        self,
        config_path: Path,
        log_path: Path,
        on_event: EventCallback | None = None,
    ) -> RunOutcome:
        """Run one training to completion, streaming progress events to ``on_event``."""
        log_path.parent.mkdir(parents=True, exist_ok=True)
        started_at = time.time()
        with log_path.open("ab") as log_file:
            self._process = await asyncio.create_subprocess_exec(
                self._python,
                "-m",
                "training.train",
                "--config",
                str(Path(config_path).resolve()),
                cwd=self._cwd,
                env=self._env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=log_file,
                start_new_session=True,
            )
            logger.info("training started, pid %s", self._process.pid)
            assert self._process.stdout is not None
            async for raw in self._process.stdout:
                await self._dispatch(raw, log_file, on_event)
            returncode = await self._process.wait()
        result = _read_result(Path(config_path), started_at)
        error = None
        if returncode != 0 and self._cancelled:
            error = "cancelled"
        elif returncode != 0:
            # The child's own one-line summary beats a traceback; the log keeps the rest.
            reported = result.get("error") if result is not None else None
            error = str(reported) if reported else _tail(log_path) or f"exit {returncode}"
        logger.info("training finished, pid %s, returncode %s", self._process.pid, returncode)
        return RunOutcome(returncode=returncode, result=result, error=error)

    async def _dispatch(self, raw: bytes, log_file: Any, on_event: EventCallback | None) -> None:
        line = raw.decode("utf-8", errors="replace").strip()
        if not line:
            return
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            event = None
        if not isinstance(event, dict):
            # Something printed past the child's stdout guard: keep it in the log.
            log_file.write(raw)
            log_file.flush()
            return
        if on_event is not None:
            outcome = on_event(event)
            if inspect.isawaitable(outcome):
                await outcome

    def cancel(self) -> None:
        """Ask the child (and anything it started) to stop; ``run`` then returns."""
        process = self._process
        if process is None or process.returncode is not None:
            return
        self._cancelled = True
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)


class EvaluationError(RuntimeError):
    """An adapter could not be scored; the message is the child's one-line error."""


async def evaluate_in_child(
    adapter_dir: Path,
    eval_file: Path,
    *,
    max_length: int,
    log_path: Path,
    python: str = sys.executable,
) -> dict[str, float]:
    """Run ``python -m training.evaluate`` for one adapter and return its metrics."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log_file:
        process = await asyncio.create_subprocess_exec(
            python,
            "-m",
            "training.evaluate",
            "--adapter",
            str(adapter_dir),
            "--eval-file",
            str(eval_file),
            "--max-length",
            str(max_length),
            cwd=PROJECT_ROOT,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=log_file,
            start_new_session=True,
        )
        try:
            stdout, _ = await process.communicate()
        except asyncio.CancelledError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            raise
    lines = stdout.decode("utf-8", errors="replace").strip().splitlines()
    try:
        report = json.loads(lines[-1]) if lines else {}
    except json.JSONDecodeError:
        report = {}
    if process.returncode != 0 or "eval_loss" not in report:
        error = report.get("error") or _tail(log_path) or f"exit {process.returncode}"
        raise EvaluationError(f"scoring {adapter_dir.name} failed: {error}")
    return {key: float(value) for key, value in report.items()}
