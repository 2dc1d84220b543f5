"""A stand-in for the model engine (our own code, not a library mock): echoes, after a delay."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

from training.chat_format import ChatMessage


class ScriptedEngine:
    """Answers each line of the last user turn with 're: <line>'; records every history."""

    def __init__(self, delay: float = 0.0, fail: bool = False) -> None:
        self.delay = delay
        self.fail = fail
        self.histories: list[list[ChatMessage]] = []
        self._adapter: Path | None = Path("scripted")
        self.released = False

    @property
    def has_adapter(self) -> bool:
        return self._adapter is not None

    @property
    def adapter_dir(self) -> Path | None:
        return self._adapter

    async def load_adapter(self, adapter_dir: Path) -> None:
        self._adapter = adapter_dir

    async def generate(self, history: Sequence[ChatMessage]) -> str:
        self.histories.append(list(history))
        await asyncio.sleep(self.delay)
        if self.fail:
            raise RuntimeError("the engine broke")
        return "\n".join(f"re: {line}" for line in history[-1]["content"].split("\n"))

    async def stream(self, history: Sequence[ChatMessage]) -> AsyncIterator[str]:
        """The same reply as ``generate``, a word at a time."""
        reply = await self.generate(history)
        for piece in re.findall(r"\S+\s*|\s+", reply):
            yield piece

    async def release(self) -> None:
        self.released = True

    async def restore(self) -> None:
        self.released = False

    async def close(self) -> None:
        self._adapter = None
