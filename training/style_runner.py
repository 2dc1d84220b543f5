"""Run ``python -m training.style_eval`` in a child process, off the event loop.

Same pattern as ``training.runner.evaluate_in_child``: the child loads its own model (so the
bot's memory and event loop are untouched), prints one JSON line, and logs to ``log_path``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from pathlib import Path

from training.modeling import Device
from training.runner import PROJECT_ROOT, EvaluationError
from training.style_eval import DEFAULT_LIMIT, DEFAULT_MAX_NEW_TOKENS

ERROR_TAIL_CHARS = 2000


class StyleEvalError(EvaluationError):
    """The style checks could not run; the message is the child's one-line error."""


def _log_tail(log_path: Path) -> str:
    try:
        text = log_path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return text.strip()[-ERROR_TAIL_CHARS:]


async def run_style_eval(
    adapter_dir: Path,
    eval_file: Path,
    *,
    log_path: Path,
    limit: int = DEFAULT_LIMIT,
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
    device: Device = "auto",
    python: str = sys.executable,
) -> dict[str, float]:
    """The ``style_*`` figures of ``adapter_dir`` on ``eval_file``; StyleEvalError on failure.

    Cancelling the awaiting task stops the child (and anything it started).
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log_file:
        process = await asyncio.create_subprocess_exec(
            python,
            "-m",
            "training.style_eval",
            "--adapter",
            str(adapter_dir),
            "--eval-file",
            str(eval_file),
            "--limit",
            str(limit),
            "--max-new-tokens",
            str(max_new_tokens),
            "--device",
            device,
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
    if not isinstance(report, dict):
        report = {}
    if process.returncode != 0 or "style_samples" not in report:
        error = report.get("error") or _log_tail(log_path) or f"exit {process.returncode}"
        raise StyleEvalError(f"style checks of {adapter_dir.name} failed: {error}")
    return {key: float(value) for key, value in report.items()}
