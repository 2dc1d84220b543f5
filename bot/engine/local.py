"""``CloneEngine``: the base model and the serving adapter in this process, off the event loop.

One worker thread owns the model. Generation requests and control jobs (adapter swaps,
release, restore) queue on it in order, so a swap never races a generation and no request is
dropped while it happens. Requests waiting together (different chats) are generated as one
batch, each streaming its own text back to its own consumer.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from bot.engine.base import (
    EngineBusyError,
    EnginePausedError,
    NoAdapterError,
    prepare_prompts,
)
from bot.engine.batch import StreamTarget, generate_batch
from bot.engine.heap import freeze_long_lived, unfreeze
from bot.engine.jobs import DONE, ControlJob, Done, GenerationRequest, JobQueue, Stop
from training.chat_format import ChatMessage, load_clone_spec
from training.modeling import (
    Device,
    Precision,
    ServingQuantization,
    load_base_model,
    resolve_device,
    resolve_precision,
)
from training.preflight import ModelSource, locate_model
from training.prompt import PromptBuilder

logger = logging.getLogger(__name__)

DEFAULT_QUEUE_SIZE = 32
DEFAULT_MAX_BATCH = 4


@dataclass
class _Loaded:
    base_model: str
    precision: Precision
    model: Any  # peft.PeftModel
    adapter_name: str
    adapter_dir: Path
    prompts: PromptBuilder


class CloneEngine:
    """Base model + adapter in this process: batched, streamed generation in one thread.

    Args:
        device: ``auto`` (CUDA when available), ``cpu`` or ``cuda``.
        quantization: ``auto`` (the precision the adapter was trained and judged in, where
            the device can run it; else 4-bit on CUDA, float32 on CPU), ``4bit`` or ``bf16``.
        overrides: GenerationSettings fields that replace clone.json's (GENERATION_*).
        queue_size: Requests that may wait for the worker; one more raises EngineBusyError.
        max_batch: Most requests generated together in one batch.
    """

    def __init__(
        self,
        device: Device = "auto",
        overrides: Mapping[str, Any] | None = None,
        *,
        quantization: ServingQuantization = "auto",
        queue_size: int = DEFAULT_QUEUE_SIZE,
        max_batch: int = DEFAULT_MAX_BATCH,
    ) -> None:
        if queue_size < 1 or max_batch < 1:
            raise ValueError("queue_size and max_batch must be >= 1")
        self._device = device
        self._quantization = quantization
        self._overrides = dict(overrides or {})
        self._jobs = JobQueue(max_waiting=queue_size, max_batch=max_batch)
        self._loaded: _Loaded | None = None
        self._requested: Path | None = None
        self._prompts: asyncio.Future[PromptBuilder] | None = None  # of ``_requested``
        self._released_dir: Path | None = None  # what served when ``release`` was called
        self._paused = False
        self._closed = False
        self._swaps = 0
        self._batch_sizes: list[int] = []
        self._worker = threading.Thread(target=self._work, name="clone-engine", daemon=True)
        self._worker.start()

    # --- asyncio side ----------------------------------------------------------------

    @property
    def has_adapter(self) -> bool:
        """True once an adapter is loaded or queued to load (requests wait for it)."""
        return self._requested is not None

    @property
    def adapter_dir(self) -> Path | None:
        return self._requested

    @property
    def paused(self) -> bool:
        """Between ``release`` and ``restore``."""
        return self._paused

    @property
    def model_loaded(self) -> bool:
        """Whether the worker holds a model right now (False after ``release``)."""
        return self._loaded is not None

    @property
    def precision(self) -> str | None:
        """The base weights' precision now served (nf4, bf16, fp32); None when none is loaded."""
        return self._loaded.precision if self._loaded is not None else None

    @property
    def batch_sizes(self) -> tuple[int, ...]:
        """Size of every batch generated so far, in order."""
        return tuple(self._batch_sizes)

    async def load_adapter(self, adapter_dir: Path) -> None:
        """Make `adapter_dir` the serving adapter; returns when it is live.

        Requests queued before the call finish on the old adapter, later ones get the new.
        While released, the adapter's clone.json is checked now and the weights are loaded
        by ``restore``. A failure leaves the serving adapter as it was.
        """
        previous = (self._requested, self._prompts)
        self._requested = adapter_dir
        try:
            # Queued now, before the first await: requests sent after this call wait for it.
            await self._queue_load(adapter_dir, weights=not self._paused)
        except Exception:  # a cancelled caller leaves the queued load to finish
            if self._requested == adapter_dir:
                self._requested, self._prompts = previous
            raise

    async def prompts(self) -> PromptBuilder:
        """The serving (or first loading) adapter's prompts."""
        if self._prompts is None:
            raise NoAdapterError("no adapter is loaded")
        return await asyncio.shield(self._prompts)

    async def generate(self, history: Sequence[ChatMessage]) -> str:
        """The clone's reply to `history` (user/assistant turns, oldest first), stripped."""
        pieces = [piece async for piece in self.stream(history)]
        return "".join(pieces).strip()

    async def stream(self, history: Sequence[ChatMessage]) -> AsyncIterator[str]:
        """The reply in pieces as the model writes them; a consumer may stop early.

        Raises:
            NoAdapterError: nothing to answer with.
            EnginePausedError: released for a training run.
            EngineBusyError: ENGINE_QUEUE_SIZE requests are already waiting.
        """
        request = self._submit(list(history))
        try:
            while True:
                item = await request.pieces.get()
                if isinstance(item, Done):
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            request.abandon()  # a consumer that left frees its row of the batch

    async def release(self) -> None:
        """Let queued requests finish, then unload the model and empty the CUDA cache.

        New requests raise EnginePausedError until ``restore``.
        """
        if self._paused:
            return
        self._paused = True
        self._released_dir = self._loaded.adapter_dir if self._loaded else None
        await self._control(self._unload_sync)
        logger.info("engine released the model for a training run")

    async def restore(self) -> None:
        """Load the serving adapter again after ``release``; requests queue behind the load.

        When an adapter promoted while released cannot be loaded, the one that served before
        the release serves again and the error is raised; with none, the engine serves
        nothing (NoAdapterError).
        """
        if not self._paused:
            return
        self._paused = False
        adapter_dir, previous = self._requested, self._released_dir
        if adapter_dir is None:
            return
        try:
            await self._queue_load(adapter_dir, weights=True)
        except Exception:
            if self._requested == adapter_dir:
                self._requested, self._prompts = None, None
                if previous is not None and previous != adapter_dir:
                    await self.load_adapter(previous)
            raise

    async def close(self) -> None:
        """Finish what is queued, stop the worker thread and free the model."""
        if self._closed:
            return
        self._closed = True
        self._jobs.put(Stop())
        await asyncio.to_thread(self._worker.join)

    def _submit(self, history: list[ChatMessage]) -> GenerationRequest:
        if self._closed:
            raise RuntimeError("the engine is closed")
        if self._paused:
            raise EnginePausedError("the model is released for a training run")
        if not self.has_adapter:
            raise NoAdapterError("no adapter is loaded")
        request = GenerationRequest(history, asyncio.get_running_loop())
        if not self._jobs.offer(request):
            raise EngineBusyError("ENGINE_QUEUE_SIZE replies are already waiting")
        return request

    def _queue_load(self, adapter_dir: Path, *, weights: bool) -> Awaitable[None]:
        """Queue a load of `adapter_dir` (its prompts, and its weights unless released) now.

        ``prompts()`` gets the adapter's PromptBuilder as soon as the worker has read it.
        """
        loop = asyncio.get_running_loop()
        prompts: asyncio.Future[PromptBuilder] = loop.create_future()
        prompts.add_done_callback(_retrieve)
        self._prompts = prompts

        def load() -> None:
            try:
                builder, source = self._prepare(adapter_dir)
            except BaseException as exc:
                loop.call_soon_threadsafe(_settle, prompts, exc)
                raise
            loop.call_soon_threadsafe(_settle, prompts, builder)
            if weights:
                self._load_sync(adapter_dir, builder, source)

        return self._control(load)

    async def _control(self, action: Callable[[], None]) -> None:
        if self._closed:
            raise RuntimeError("the engine is closed")
        job = ControlJob(action, asyncio.get_running_loop())
        self._jobs.put(job)
        await job.done

    # --- worker thread ---------------------------------------------------------------

    def _work(self) -> None:
        while True:
            job = self._jobs.take()
            if isinstance(job, Stop):
                self._unload_sync()
                return
            if isinstance(job, ControlJob):
                job.run()
            else:
                self._generate_batch(job)

    def _generate_batch(self, batch: list[GenerationRequest]) -> None:
        loaded = self._loaded
        live: list[GenerationRequest] = []
        prompts: list[str] = []
        for request in batch:
            if request.abandoned():
                continue
            try:
                if loaded is None:
                    raise NoAdapterError("the adapter failed to load")
                prompts.append(loaded.prompts.text(request.history))
            except Exception as exc:  # this request's own problem (a bad history)
                request.put(exc)
                continue
            live.append(request)
        if loaded is None or not live:
            return
        self._batch_sizes.append(len(live))
        try:
            targets = [StreamTarget(emit=r.put, abandoned=r.abandoned) for r in live]
            builder = loaded.prompts
            tokenizer = builder.tokenizer
            assert tokenizer is not None  # prepare_prompts always loads it
            generate_batch(loaded.model, tokenizer, prompts, targets, builder.generation)
        except Exception as exc:  # every consumer of the batch gets the error; the worker lives
            for request in live:
                request.put(exc)
        finally:
            for request in live:
                request.put(DONE)

    def _prepare(self, adapter_dir: Path) -> tuple[PromptBuilder, ModelSource]:
        """What can be checked without loading weights: clone.json, settings, LoRA config, and
        where the base model is (one that is missing offline fails here, with what to do)."""
        source = locate_model(load_clone_spec(adapter_dir).base_model, "weights")
        from peft import PeftConfig

        builder = prepare_prompts(adapter_dir, self._overrides)
        PeftConfig.from_pretrained(str(adapter_dir))
        return builder, source

    def _load_sync(self, adapter_dir: Path, prompts: PromptBuilder, source: ModelSource) -> None:
        unfreeze()  # the adapter or model this replaces must be collectable
        try:
            self._load_unfrozen(adapter_dir, prompts, source)
        finally:
            freeze_long_lived(collect=True)  # torch's and the model's objects, once loaded

    def _load_unfrozen(
        self, adapter_dir: Path, prompts: PromptBuilder, source: ModelSource
    ) -> None:
        from peft import PeftModel

        base_model = prompts.spec.base_model
        recorded = prompts.spec.precision
        precision = resolve_precision(self._quantization, resolve_device(self._device), recorded)
        if recorded and precision != recorded:
            logger.warning(
                "serving %s weights; the adapter was trained and judged on %s", precision, recorded
            )
        self._swaps += 1
        name = f"adapter{self._swaps}"
        current = self._loaded
        if current is not None and (current.base_model, current.precision) == (
            base_model,
            precision,
        ):
            current.model.load_adapter(str(adapter_dir), adapter_name=name, is_trainable=False)
            current.model.set_adapter(name)
            current.model.delete_adapter(current.adapter_name)
            self._loaded = replace(
                current, adapter_name=name, adapter_dir=adapter_dir, prompts=prompts
            )
            logger.info("hot-swapped adapter to %s", adapter_dir)
            return
        self._unload_sync()
        base = load_base_model(source.path, self._device, self._quantization, recorded=recorded)
        model = PeftModel.from_pretrained(base, str(adapter_dir), adapter_name=name)
        model.eval()
        self._loaded = _Loaded(
            base_model=base_model,
            precision=precision,
            model=model,
            adapter_name=name,
            adapter_dir=adapter_dir,
            prompts=prompts,
        )
        logger.info("loaded base %s with adapter %s", base_model, adapter_dir)

    def _unload_sync(self) -> None:
        if self._loaded is None:
            return
        self._loaded = None
        import gc

        unfreeze()  # a frozen model in a reference cycle would keep its memory
        gc.collect()
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def _settle(future: asyncio.Future[PromptBuilder], outcome: PromptBuilder | BaseException) -> None:
    if future.done():
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)


def _retrieve(future: asyncio.Future[PromptBuilder]) -> None:
    """Mark a failed load's exception as seen: its caller already got it from the load."""
    if not future.cancelled():
        future.exception()
