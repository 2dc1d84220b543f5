"""What crosses from the event loop to CloneEngine's worker thread, and the queue it waits in.

A ``GenerationRequest`` carries a history in and its reply's pieces back out (through an
``asyncio.Queue`` fed with ``call_soon_threadsafe``). A ``ControlJob`` (load, unload) runs in
the worker between batches and resolves a future. ``JobQueue`` keeps both in arrival order,
bounds the requests waiting, and hands the worker either one control job or a batch of
requests that arrived back to back.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Callable

from training.chat_format import ChatMessage


class Done:
    """End of a request's stream."""


DONE = Done()
Piece = str | Done | BaseException


class GenerationRequest:
    """One reply in flight: its history, and the loop-side queue its pieces go to."""

    def __init__(self, history: list[ChatMessage], loop: asyncio.AbstractEventLoop) -> None:
        self.history = history
        self.pieces: asyncio.Queue[Piece] = asyncio.Queue()
        self._loop = loop
        self._abandoned = threading.Event()

    def put(self, item: Piece) -> None:
        """Hand a piece, an error or ``DONE`` to the consumer (from the worker thread)."""
        if self._abandoned.is_set():
            return
        try:
            self._loop.call_soon_threadsafe(self.pieces.put_nowait, item)
        except RuntimeError:  # the consumer's loop is closed: nobody is waiting any more
            self._abandoned.set()

    def abandon(self) -> None:
        """The consumer stopped listening; the worker drops or ends this row."""
        self._abandoned.set()

    def abandoned(self) -> bool:
        return self._abandoned.is_set()


class ControlJob:
    """Work for the worker thread other than generation (load, unload), awaited by a caller."""

    def __init__(self, action: Callable[[], None], loop: asyncio.AbstractEventLoop) -> None:
        self.action = action
        self.done: asyncio.Future[None] = loop.create_future()
        self._loop = loop

    def run(self) -> None:
        """Run in the worker; the outcome (or the exception) goes to ``done``."""
        try:
            self.action()
        except Exception as exc:  # handed to the awaiting caller, the worker lives on
            self._loop.call_soon_threadsafe(_set_exception, self.done, exc)
        else:
            self._loop.call_soon_threadsafe(_set_result, self.done)


class Stop:
    """Tells the worker to unload and end, after everything queued before it."""


Job = GenerationRequest | ControlJob | Stop


class JobQueue:
    """Jobs in arrival order; at most ``max_waiting`` generation requests at a time."""

    def __init__(self, max_waiting: int, max_batch: int) -> None:
        self._jobs: deque[Job] = deque()
        self._waiting = 0
        self._max_waiting = max_waiting
        self._max_batch = max_batch
        self._cv = threading.Condition()

    def offer(self, request: GenerationRequest) -> bool:
        """Queue a request; False (and not queued) when ``max_waiting`` already wait."""
        with self._cv:
            if self._waiting >= self._max_waiting:
                return False
            self._jobs.append(request)
            self._waiting += 1
            self._cv.notify()
            return True

    def put(self, job: ControlJob | Stop) -> None:
        """Queue a control job; never refused."""
        with self._cv:
            self._jobs.append(job)
            self._cv.notify()

    def take(self) -> ControlJob | Stop | list[GenerationRequest]:
        """Block for the next job: a control job, or up to ``max_batch`` requests that are
        next in line. A control job ends a batch, so a swap takes effect exactly between the
        requests queued before it and those after it."""
        with self._cv:
            while not self._jobs:
                self._cv.wait()
            job = self._jobs.popleft()
            if not isinstance(job, GenerationRequest):
                return job
            batch = [job]
            while len(batch) < self._max_batch and self._jobs:
                following = self._jobs[0]
                if not isinstance(following, GenerationRequest):
                    break
                batch.append(following)
                self._jobs.popleft()
            self._waiting -= len(batch)
            return batch


def _set_result(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _set_exception(future: asyncio.Future[None], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)
