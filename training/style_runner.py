"""Run ``python -m training.style_eval`` in a child process, off the event loop.

Same pattern as ``training.runner.evaluate_in_child``: the child loads its own model (so the
bot's memory and event loop are untouched), prints one JSON line, and logs to ``log_path``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from training.modeling import Device
from training.runner import EvaluationError, child_error, run_json_child
from training.style_eval import DEFAULT_LIMIT, DEFAULT_MAX_NEW_TOKENS


class StyleEvalError(EvaluationError):
    """The style checks could not run; the message is the child's one-line error."""


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
    args = ["--adapter", str(adapter_dir), "--eval-file", str(eval_file)]
    args += ["--limit", str(limit), "--max-new-tokens", str(max_new_tokens), "--device", device]
    returncode, report = await run_json_child(
        "training.style_eval", args, log_path=log_path, python=python
    )
    if returncode != 0 or "style_samples" not in report:
        error = child_error(report, log_path, returncode)
        raise StyleEvalError(f"style checks of {adapter_dir.name} failed: {error}")
    return {key: float(value) for key, value in report.items()}
