"""Training and judging in child processes, off the event loop.

The training runners live in ``training.runners`` (local, SSH); they are re-exported here.
``run_json_child`` runs a ``python -m`` child that answers with one JSON line (the judge,
``training.judge``). Such a child never outlives the work it was started for: cancelling
the task that awaits it stops it (and waits until it has), and one a killed bot left behind,
recorded in its pid file, is stopped before the next one starts in its place.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from storage.private_files import open_private
from training.runners import LocalRunner, RunOutcome
from training.runners.events import error_tail, last_json_line
from training.runners.local import PROJECT_ROOT

__all__ = [
    "EvaluationError",
    "LocalRunner",
    "RunOutcome",
    "child_error",
    "run_json_child",
    "stop_leftover_child",
]

logger = logging.getLogger(__name__)

STOP_SECONDS = 5.0
"""How long a stopped child may take to exit after SIGTERM before it gets SIGKILL."""


class EvaluationError(RuntimeError):
    """An adapter could not be scored; the message is the child's one-line error."""


async def run_json_child(
    module: str,
    args: list[str],
    *,
    log_path: Path,
    python: str = sys.executable,
    env: Mapping[str, str] | None = None,
    pid_path: Path | None = None,
) -> tuple[int, dict[str, Any]]:
    """Run ``python -m module args…``; return its exit code and the JSON of its last line.

    stderr goes to ``log_path``; cancelling the awaiting task stops the child's whole process
    group and returns once it has exited. ``pid_path`` records the child while it runs: a
    child of ``module`` found there (left by a process that was killed) is stopped first. A
    last line that is not a JSON object reads as ``{}``. ``env`` None: this process's
    environment.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    if pid_path is not None:
        await asyncio.to_thread(stop_leftover_child, pid_path, module)
    with open_private(log_path, "ab") as log_file:
        process = await asyncio.create_subprocess_exec(
            python,
            "-m",
            module,
            *args,
            cwd=PROJECT_ROOT,
            env=dict(env) if env is not None else None,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=log_file,
            start_new_session=True,
        )
        if pid_path is not None:
            pid_path.write_text(str(process.pid), encoding="ascii")
        try:
            stdout, _ = await process.communicate()
        except asyncio.CancelledError:
            await _stop_group(process)
            raise
        finally:
            if pid_path is not None:
                pid_path.unlink(missing_ok=True)
    assert process.returncode is not None
    return process.returncode, last_json_line(stdout)


async def _stop_group(process: asyncio.subprocess.Process) -> None:
    """SIGTERM the child's process group, SIGKILL it if it lingers; return once it exited."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(process.wait(), STOP_SECONDS)
            return


def stop_leftover_child(pid_path: Path, module: str) -> bool:
    """Stop the ``python -m module`` child recorded in ``pid_path`` if it still runs (its
    parent was killed); True when there was one. Pids get reused: only a process whose
    command line names ``module`` is touched."""
    try:
        pid = int(pid_path.read_text(encoding="ascii"))
    except (OSError, ValueError):
        return False
    if not _runs_module(pid, module):
        pid_path.unlink(missing_ok=True)
        return False
    logger.warning("stopping a %s process (pid %d) left by an earlier bot process", module, pid)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, sig)
        deadline = time.monotonic() + STOP_SECONDS
        while _runs_module(pid, module) and time.monotonic() < deadline:
            time.sleep(0.05)
        if not _runs_module(pid, module):
            break
    pid_path.unlink(missing_ok=True)
    return True


def _runs_module(pid: int, module: str) -> bool:
    """``pid`` is alive and runs ``python -m module`` (a zombie's command line is empty)."""
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return module.encode() in args


def child_error(report: dict[str, Any], log_path: Path, returncode: int) -> str:
    """Why a child failed: its one-line error, else the tail of its log, else its exit code."""
    return str(report.get("error") or error_tail(log_path) or f"exit {returncode}")
