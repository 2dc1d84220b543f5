"""A stand-in for the model engine (our own code, not a library mock): echoes, after a delay.

Its prompts are real: the Qwen2.5 tokenizer of tests/fixtures with a default clone.json, so the
turns it receives are what the turn shaper makes for a real adapter.
"""

from __future__ import annotations

import asyncio
import functools
import re
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

from bot.engine.base import EnginePausedError, NoAdapterError
from tests.tiny_model import TOKENIZER_DIR
from training.chat_format import ChatMessage, CloneSpec
from training.config import DatasetConfig, GenerationSettings
from training.prompt import PromptBuilder


@functools.cache
def _tokenizer() -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(TOKENIZER_DIR)


def scripted_prompts(dataset: DatasetConfig | None = None) -> PromptBuilder:
    """Prompts of an adapter trained with ``dataset`` (default rules) on Qwen2.5's template."""
    tokenizer = _tokenizer()
    spec = CloneSpec(
        base_model="scripted",
        dataset=dataset or DatasetConfig(),
        chat_template=str(tokenizer.chat_template),
    )
    return PromptBuilder(spec, tokenizer, GenerationSettings(max_new_tokens=64))


class ScriptedEngine:
    """Answers each line of the last user turn with 're: <line>'; records every history.

    Args:
        delay: seconds before the reply (or its first piece) is ready.
        piece_delay: seconds between the pieces (words) of a streamed reply.
        piece_delays: seconds before each piece after the first, in turn (then
            ``piece_delay``): a reply that stalls partway.
        fail: raise an error that quotes the user's message, as careless library code might.
        reply: answer with this text instead of the echo.
        dataset: the dataset rules of the adapter it stands for (default rules).
    """

    def __init__(
        self,
        delay: float = 0.0,
        fail: bool = False,
        *,
        piece_delay: float = 0.0,
        piece_delays: Sequence[float] = (),
        reply: str | None = None,
        dataset: DatasetConfig | None = None,
    ) -> None:
        self.delay = delay
        self.piece_delay = piece_delay
        self.piece_delays = list(piece_delays)
        self.fail = fail
        self.reply = reply
        self.paused = False
        self.error: Exception | None = None  # raised by every request while set
        self.histories: list[list[ChatMessage]] = []
        """The turns of each request (without its system message)."""
        self.systems: list[str] = []
        """The system message of each request (the system prompt and its memory block)."""
        self._adapter: Path | None = Path("scripted")
        self.released = False
        self._prompts = scripted_prompts(dataset)
        self.precision: str | None = None  # what an in-process engine would report

    @property
    def has_adapter(self) -> bool:
        return self._adapter is not None

    @property
    def adapter_dir(self) -> Path | None:
        return self._adapter

    async def load_adapter(self, adapter_dir: Path) -> None:
        self._adapter = adapter_dir

    async def prompts(self) -> PromptBuilder:
        if self._adapter is None:
            raise NoAdapterError("no adapter is loaded")
        return self._prompts

    async def generate(self, history: Sequence[ChatMessage]) -> str:
        if self.paused or self.released:
            raise EnginePausedError("the accelerator is lent to a training run")
        if self.error is not None:
            raise self.error
        system, *turns = history
        assert system["role"] == "system", "the reply pipeline puts the system message first"
        self.systems.append(system["content"])
        self.histories.append(turns)
        await asyncio.sleep(self.delay)
        last = history[-1]["content"]
        if self.fail:
            raise RuntimeError(f"the engine broke on {last!r}")
        if self.reply is not None:
            return self.reply
        return "\n".join(f"re: {line}" for line in last.split("\n"))

    async def stream(self, history: Sequence[ChatMessage]) -> AsyncIterator[str]:
        """The same reply as ``generate``, a word at a time (``piece_delay`` apart)."""
        reply = await self.generate(history)
        delays = iter(self.piece_delays)
        for index, piece in enumerate(re.findall(r"\S+\s*|\s+", reply)):
            wait = next(delays, self.piece_delay) if index else 0.0
            if wait:
                await asyncio.sleep(wait)
            yield piece

    async def release(self) -> None:
        self.released = True

    async def restore(self) -> None:
        self.released = False

    async def close(self) -> None:
        self._adapter = None
