"""Reading what a training process leaves behind: events.jsonl, result.json, its log."""

from __future__ import annotations

import inspect
import json
import logging
from pathlib import Path
from typing import Any

from training.runners.base import EventCallback
from training.train import RESULT_FILE

logger = logging.getLogger(__name__)

ERROR_TAIL_LINES = 20
ERROR_TAIL_CHARS = 2000


class EventReader:
    """Turns bytes appended to events.jsonl into events; a partial last line waits for more."""

    def __init__(self) -> None:
        self._pending = b""
        self.consumed = 0
        """Bytes read so far, complete lines or not (where to resume reading)."""

    def feed(self, data: bytes) -> list[dict[str, Any]]:
        """The complete events in ``data`` (plus what was pending); other lines are skipped."""
        self.consumed += len(data)
        lines = (self._pending + data).split(b"\n")
        self._pending = lines.pop()
        events = []
        for raw in lines:
            line = raw.decode("utf-8", errors="replace").strip()
            if not line:
                continue
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                event = None
            if isinstance(event, dict):
                events.append(event)
            else:
                # Something printed past the child's stdout guard; not an event.
                logger.debug("skipped a non-event line of %d bytes", len(raw))
        return events


async def deliver(events: list[dict[str, Any]], on_event: EventCallback | None) -> None:
    """Hand events, in order, to a sync or async callback."""
    if on_event is None:
        return
    for event in events:
        outcome = on_event(event)
        if inspect.isawaitable(outcome):
            await outcome


def read_result(output_dir: Path) -> dict[str, Any] | None:
    """The run's result.json, or None when it wrote none (or an unreadable one)."""
    try:
        data = json.loads((output_dir / RESULT_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def last_json_line(stdout: bytes) -> dict[str, Any]:
    """The JSON object on the last line of a child's stdout (``{}`` when it is none)."""
    lines = stdout.decode("utf-8", errors="replace").strip().splitlines()
    try:
        report = json.loads(lines[-1]) if lines else {}
    except json.JSONDecodeError:
        report = {}
    return report if isinstance(report, dict) else {}


def read_exit_code(path: Path) -> int | None:
    """The exit status the wrapper wrote, or None when it never got to write one."""
    try:
        return int(path.read_text(encoding="utf-8").strip())
    except (OSError, ValueError):
        return None


def error_tail(log_path: Path) -> str:
    """The last lines of a log, short enough for an error message."""
    try:
        lines = log_path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(lines[-ERROR_TAIL_LINES:])[-ERROR_TAIL_CHARS:]


def failure_reason(
    returncode: int | None, result: dict[str, Any] | None, log_path: Path, where: str
) -> str:
    """Why a run failed: the child's one-line error beats a traceback; the log keeps the rest."""
    reported = result.get("error") if result is not None else None
    if reported:
        return str(reported)
    if returncode is None:
        return (
            f"the training process on {where} ended without an exit status "
            "(killed together with its wrapper, or the machine restarted)"
        )
    if returncode in (137, -9):
        return f"the training process on {where} was killed (SIGKILL, often out of memory)"
    return error_tail(log_path) or f"training exited with code {returncode}"
