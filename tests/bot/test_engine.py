"""The serving engine: the adapter's own template and prompt, hot swaps with no dropped request."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bot.engine.base import NoAdapterError
from bot.engine.local import CloneEngine
from tests.adapters import greedy_reply, make_adapter

QUESTION = "Как дела?"
HISTORY = [{"role": "user", "content": QUESTION}]


async def test_no_adapter_refuses() -> None:
    engine = CloneEngine(device="cpu")
    try:
        assert not engine.has_adapter
        with pytest.raises(NoAdapterError):
            await engine.generate(HISTORY)  # type: ignore[arg-type]
    finally:
        await engine.close()


async def test_hot_swap_serves_each_adapter_and_drops_nothing(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    first = make_adapter(tiny_model_dir, tmp_path / "a", seed=1, system_prompt="Ты — владелец.")
    second = make_adapter(tiny_model_dir, tmp_path / "b", seed=2, system_prompt="You are me.")
    expected_first = greedy_reply(first, QUESTION, max_new_tokens=10)
    expected_second = greedy_reply(second, QUESTION, max_new_tokens=10)
    assert expected_first != expected_second, "the two adapters must answer differently"

    engine = CloneEngine(device="cpu")
    try:
        await engine.load_adapter(first)
        # A request before the swap, the swap, and a request after, all in flight at once.
        before, _, after = await asyncio.gather(
            engine.generate(HISTORY),  # type: ignore[arg-type]
            engine.load_adapter(second),
            engine.generate(HISTORY),  # type: ignore[arg-type]
        )
        assert engine.adapter_dir == second
    finally:
        await engine.close()
    assert before == expected_first
    assert after == expected_second


async def test_failed_load_keeps_the_serving_adapter(tiny_model_dir: Path, tmp_path: Path) -> None:
    good = make_adapter(tiny_model_dir, tmp_path / "good", seed=3, system_prompt="Me.")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "clone.json").write_text("{not json", "utf-8")
    engine = CloneEngine(device="cpu")
    try:
        await engine.load_adapter(good)
        with pytest.raises(ValueError, match=r"clone\.json"):
            await engine.load_adapter(broken)
        assert engine.adapter_dir == good
        reply = await engine.generate(HISTORY)  # type: ignore[arg-type]
    finally:
        await engine.close()
    assert reply == greedy_reply(good, QUESTION, max_new_tokens=10)
