"""Training and judging in child processes, off the event loop.

The training runners live in ``training.runners`` (local, SSH); they are re-exported here.
``run_json_child`` runs a ``python -m`` child that answers with one JSON line (the judge,
``training.judge``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from training.runners import LocalRunner, RunOutcome
from training.runners.events import error_tail, last_json_line
from training.runners.local import PROJECT_ROOT

__all__ = [
    "EvaluationError",
    "LocalRunner",
    "RunOutcome",
    "child_error",
    "run_json_child",
]


class EvaluationError(RuntimeError):
    """An adapter could not be scored; the message is the child's one-line error."""


async def run_json_child(
    module: str,
    args: list[str],
    *,
    log_path: Path,
    python: str = sys.executable,
    env: Mapping[str, str] | None = None,
) -> tuple[int, dict[str, Any]]:
    """Run ``python -m module args…``; return its exit code and the JSON of its last line.

    stderr goes to ``log_path``; cancelling the awaiting task stops the child's whole process
    group. A last line that is not a JSON object reads as ``{}``. ``env`` None: this
    process's environment.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log_file:
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
        try:
            stdout, _ = await process.communicate()
        except asyncio.CancelledError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            raise
    assert process.returncode is not None
    return process.returncode, last_json_line(stdout)


def child_error(report: dict[str, Any], log_path: Path, returncode: int) -> str:
    """Why a child failed: its one-line error, else the tail of its log, else its exit code."""
    return str(report.get("error") or error_tail(log_path) or f"exit {returncode}")
