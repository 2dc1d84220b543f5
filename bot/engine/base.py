"""What every engine shares: the ``ReplyEngine`` protocol, its errors, and the adapter's
prompts with the serving-side generation overrides.

``bot.engine.local.CloneEngine`` runs the model in this process;
``bot.engine.openai_server.OpenAIEngine`` talks to an OpenAI-compatible server instead;
``bot.engine.factory`` picks one from the settings.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from training.chat_format import ChatMessage, load_clone_spec
from training.modeling import load_adapter_tokenizer
from training.prompt import PromptBuilder
from training.settings import with_fields


class ReplyEngine(Protocol):
    """What the bot needs of an engine (in-process, a model server, or a stand-in in tests)."""

    @property
    def has_adapter(self) -> bool: ...

    @property
    def adapter_dir(self) -> Path | None: ...

    @property
    def precision(self) -> str | None:
        """The base weights' precision this engine serves with (nf4, bf16, fp32); None when
        nothing is loaded or a model server chose it."""
        ...

    async def load_adapter(self, adapter_dir: Path) -> None: ...

    async def prompts(self) -> PromptBuilder:
        """The serving adapter's prompts (its clone.json and tokenizer): the turn shaping
        every reply path uses. Raises NoAdapterError when none is loaded or loading."""
        ...

    async def generate(self, history: Sequence[ChatMessage]) -> str: ...

    def stream(self, history: Sequence[ChatMessage]) -> AsyncIterator[str]:
        """The reply to shaped turns (``PromptBuilder.turns``, with the system message of
        ``PromptBuilder.with_memory`` first) as it is generated: text pieces whose
        concatenation is the reply."""
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


class EngineBusyError(RuntimeError):
    """Too many replies are already waiting (ENGINE_QUEUE_SIZE); try again in a moment."""


class EngineUnavailableError(ConnectionError):
    """The model server (ENGINE=openai) cannot be reached or failed the request.

    A ``ConnectionError`` (so an ``OSError``): callers that keep the old adapter when a new
    one cannot be loaded already catch it.
    """


def prepare_prompts(adapter_dir: Path, overrides: Mapping[str, Any]) -> PromptBuilder:
    """The adapter's clone.json and tokenizer, checked, as a PromptBuilder (blocking I/O).

    ``overrides``: GenerationSettings fields to use instead of clone.json's (GENERATION_*).
    """
    spec = load_clone_spec(adapter_dir)
    settings = with_fields(spec.generation, overrides)
    tokenizer = load_adapter_tokenizer(adapter_dir, spec.base_model)
    return PromptBuilder(spec, tokenizer, settings)
