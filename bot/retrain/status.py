"""A training run as the owner watches it: one status message, edited at each evaluation."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from telegram import Bot, Message

from bot.telegram.status_message import StatusMessage


def _eta(elapsed: float, step: int, max_steps: int) -> str:
    if step <= 0 or max_steps <= 0:
        return "ETA unknown"
    left = elapsed / step * max(max_steps - step, 0)
    return f"ETA {left / 60:.0f} min" if left >= 60 else f"ETA {left:.0f} s"


class RunProgress:
    """Turns the trainer's events into status lines (eval events only; logs are too chatty)."""

    def __init__(self, run_id: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._run_id = run_id
        self._clock = clock
        self._started = clock()
        self._max_steps = 0

    def line(self, event: dict[str, Any]) -> str | None:
        """The status line for this event, or None when it does not change the picture."""
        kind = event.get("event")
        if kind == "start":
            self._started = self._clock()
            self._max_steps = int(event.get("max_steps") or 0)
            return f"Training run #{self._run_id}: started, {self._max_steps} steps."
        if kind != "eval":
            return None
        step = int(event.get("step") or 0)
        parts = [f"Training run #{self._run_id}: step {step}/{self._max_steps}"]
        if "epoch" in event:
            parts.append(f"epoch {float(event['epoch']):.2f}")
        if "eval_loss" in event:
            parts.append(f"eval_loss {float(event['eval_loss']):.3f}")
        if "eval_mean_token_accuracy" in event:
            parts.append(f"accuracy {float(event['eval_mean_token_accuracy']):.2f}")
        parts.append(_eta(self._clock() - self._started, step, self._max_steps))
        return ", ".join(parts)


StatusFactory = Callable[[int], Callable[[dict[str, Any]], Awaitable[None]]]


def owner_status_factory(bot: Bot, owner_id: int) -> StatusFactory:
    """For each run id, a callback that keeps the owner's status message current."""

    def for_run(run_id: int) -> Callable[[dict[str, Any]], Awaitable[None]]:
        progress = RunProgress(run_id)

        async def send(text: str) -> Message:
            return await bot.send_message(owner_id, text)

        status = StatusMessage(send=send)

        async def on_event(event: dict[str, Any]) -> None:
            line = progress.line(event)
            if line is not None:
                status.show(line)

        return on_event

    return for_run
