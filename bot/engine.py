"""The clone's inference engine: base model + current adapter, off the event loop.

One worker thread owns the model. Generation requests and adapter swaps queue on it in
order, so a swap never races a generation and no request is dropped while it happens.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from training.chat_format import ChatMessage, CloneSpec, load_clone_spec, render_prompt
from training.config import GenerationSettings
from training.modeling import Device, load_adapter_tokenizer, load_base_model

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

logger = logging.getLogger(__name__)

IM_END = "<|im_end|>"
END_OF_TEXT = "<|endoftext|>"


class ReplyEngine(Protocol):
    """What the bot needs of an engine (the in-process one below, or a stand-in in tests)."""

    @property
    def has_adapter(self) -> bool: ...

    @property
    def adapter_dir(self) -> Path | None: ...

    async def load_adapter(self, adapter_dir: Path) -> None: ...

    async def generate(self, history: Sequence[ChatMessage]) -> str: ...

    def stream(self, history: Sequence[ChatMessage]) -> AsyncIterator[str]:
        """The reply as it is generated: text pieces whose concatenation is the reply."""
        ...

    async def release(self) -> None:
        """Free the accelerator (a local training run needs it); requests raise
        EnginePausedError until ``restore``."""

    async def restore(self) -> None:
        """Load the serving adapter again after ``release``."""

    async def close(self) -> None: ...


class NoAdapterError(RuntimeError):
    """No trained adapter is loaded yet, so the clone cannot answer."""


class EnginePausedError(RuntimeError):
    """The engine gave the accelerator to a training run; it answers again afterwards."""


@dataclass(frozen=True)
class GenerationOverrides:
    """Serving-side overrides of the generation settings saved in clone.json."""

    do_sample: bool | None = None
    max_new_tokens: int | None = None
    temperature: float | None = None

    def apply(self, base: GenerationSettings) -> GenerationSettings:
        changes = {k: v for k, v in vars(self).items() if v is not None}
        return replace(base, **changes)


@dataclass
class _Loaded:
    base_model: str
    model: Any  # peft.PeftModel
    tokenizer: PreTrainedTokenizerBase
    adapter_name: str
    adapter_dir: Path
    spec: CloneSpec


class CloneEngine:
    """Loads the base model once, hot-swaps adapters, and generates replies in a thread."""

    def __init__(
        self,
        device: Device = "auto",
        overrides: GenerationOverrides | None = None,
    ) -> None:
        self._device = device
        self._overrides = overrides or GenerationOverrides()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="clone-engine")
        self._loaded: _Loaded | None = None
        self._requested: Path | None = None
        self._swaps = 0

    @property
    def has_adapter(self) -> bool:
        """True once an adapter is loaded or queued to load (requests wait for it)."""
        return self._requested is not None

    @property
    def adapter_dir(self) -> Path | None:
        return self._requested

    async def load_adapter(self, adapter_dir: Path) -> None:
        """Make `adapter_dir` the serving adapter; returns when it is live."""
        self._requested = adapter_dir
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._executor, self._load_sync, adapter_dir)
        except BaseException:
            self._requested = self._loaded.adapter_dir if self._loaded else None
            raise

    async def generate(self, history: Sequence[ChatMessage]) -> str:
        """The clone's reply to `history` (user/assistant turns, oldest first)."""
        if not self.has_adapter:
            raise NoAdapterError("no adapter is loaded")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._generate_sync, list(history))

    async def stream(self, history: Sequence[ChatMessage]) -> AsyncIterator[str]:
        """The reply in pieces (to be replaced by token streaming from the worker thread)."""
        yield await self.generate(history)

    async def release(self) -> None:
        """Free the accelerator for a training run (see ReplyEngine.release)."""

    async def restore(self) -> None:
        """Load the serving adapter again (see ReplyEngine.restore)."""

    async def close(self) -> None:
        """Stop the worker thread and free the model."""
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._unload_sync)
        self._executor.shutdown(wait=True)

    # --- worker thread ---------------------------------------------------------------

    def _load_sync(self, adapter_dir: Path) -> None:
        from peft import PeftModel

        spec = load_clone_spec(adapter_dir)
        self._swaps += 1
        name = f"adapter{self._swaps}"
        current = self._loaded
        if current is not None and current.base_model == spec.base_model:
            current.model.load_adapter(str(adapter_dir), adapter_name=name, is_trainable=False)
            current.model.set_adapter(name)
            current.model.delete_adapter(current.adapter_name)
            self._loaded = replace(
                current,
                adapter_name=name,
                adapter_dir=adapter_dir,
                spec=spec,
                tokenizer=load_adapter_tokenizer(adapter_dir, spec.base_model),
            )
            logger.info("hot-swapped adapter to %s", adapter_dir)
            return
        self._unload_sync()
        base = load_base_model(spec.base_model, self._device)
        model = PeftModel.from_pretrained(base, str(adapter_dir), adapter_name=name)
        model.eval()
        self._loaded = _Loaded(
            base_model=spec.base_model,
            model=model,
            tokenizer=load_adapter_tokenizer(adapter_dir, spec.base_model),
            adapter_name=name,
            adapter_dir=adapter_dir,
            spec=spec,
        )
        logger.info("loaded base %s with adapter %s", spec.base_model, adapter_dir)

    def _generate_sync(self, history: list[ChatMessage]) -> str:
        import torch

        loaded = self._loaded
        if loaded is None:
            raise NoAdapterError("the adapter failed to load")
        tokenizer = loaded.tokenizer
        prompt = render_prompt(tokenizer, loaded.spec, history)
        inputs = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
        inputs = inputs.to(loaded.model.device)
        settings = self._overrides.apply(loaded.spec.generation)
        sampling: dict[str, Any] = {"do_sample": settings.do_sample}
        if settings.do_sample:
            sampling.update(
                temperature=settings.temperature,
                top_p=settings.top_p,
                top_k=settings.top_k,
            )
        with torch.inference_mode():
            output = loaded.model.generate(
                **inputs,
                max_new_tokens=settings.max_new_tokens,
                repetition_penalty=settings.repetition_penalty,
                eos_token_id=tokenizer.convert_tokens_to_ids([IM_END, END_OF_TEXT]),
                pad_token_id=tokenizer.convert_tokens_to_ids(END_OF_TEXT),
                **sampling,
            )
        new_tokens = output[0, inputs["input_ids"].shape[1] :]
        return str(tokenizer.decode(new_tokens, skip_special_tokens=True)).strip()

    def _unload_sync(self) -> None:
        if self._loaded is None:
            return
        self._loaded = None
        import gc

        gc.collect()
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except ImportError:  # pragma: no cover - torch is a dependency
            pass
