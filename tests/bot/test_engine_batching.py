"""CloneEngine's worker: batches of chats generated together, streamed, swapped, released."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from contextlib import aclosing
from pathlib import Path
from typing import Any

import pytest
from safetensors import SafetensorError

from bot.engine.base import EngineBusyError, EnginePausedError, NoAdapterError
from bot.engine.batch import (
    IncrementalDecoder,
    StreamTarget,
    streamer_class,
    token_id,
)
from bot.engine.local import CloneEngine
from tests.adapters import greedy_reply, make_adapter
from training.chat_format import STOP_TOKENS, ChatMessage

QUESTIONS = ["Как дела?", "Привет! Что ты делаешь сегодня вечером, после работы?", "hi"]


def ask(question: str) -> list[ChatMessage]:
    return [{"role": "user", "content": question}]


@pytest.fixture
def adapter(tiny_model_dir: Path, tmp_path: Path) -> Path:
    return make_adapter(tiny_model_dir, tmp_path / "a", seed=1, system_prompt="Ты — владелец.")


@pytest.fixture
async def engine() -> AsyncIterator[CloneEngine]:
    engine = CloneEngine(device="cpu", max_batch=4)
    try:
        yield engine
    finally:
        await engine.close()


async def collect(stream: AsyncIterator[str]) -> list[str]:
    return [piece async for piece in stream]


async def test_requests_waiting_together_are_one_batch_with_solo_replies(
    engine: CloneEngine, adapter: Path
) -> None:
    expected = [greedy_reply(adapter, q, max_new_tokens=10) for q in QUESTIONS]
    # The load keeps the worker busy while the three requests queue behind it.
    _, *replies = await asyncio.gather(
        engine.load_adapter(adapter), *(engine.generate(ask(q)) for q in QUESTIONS)
    )
    assert engine.batch_sizes == (3,)
    assert replies == expected


async def test_max_batch_splits_a_long_queue(tiny_model_dir: Path, adapter: Path) -> None:
    engine = CloneEngine(device="cpu", max_batch=2)
    try:
        await asyncio.gather(
            engine.load_adapter(adapter), *(engine.generate(ask(q)) for q in QUESTIONS)
        )
        assert engine.batch_sizes == (2, 1)
    finally:
        await engine.close()


async def test_swap_between_queued_requests_drops_none(
    engine: CloneEngine, adapter: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    second = make_adapter(tiny_model_dir, tmp_path / "b", seed=2, system_prompt="You are me.")
    old = [greedy_reply(adapter, q, max_new_tokens=10) for q in QUESTIONS[:2]]
    new = [greedy_reply(second, q, max_new_tokens=10) for q in QUESTIONS[:2]]
    assert old != new, "the two adapters must answer differently"
    results = await asyncio.gather(
        engine.load_adapter(adapter),
        engine.generate(ask(QUESTIONS[0])),
        engine.generate(ask(QUESTIONS[1])),
        engine.load_adapter(second),
        engine.generate(ask(QUESTIONS[0])),
        engine.generate(ask(QUESTIONS[1])),
    )
    assert [results[1], results[2]] == old
    assert [results[4], results[5]] == new
    assert engine.batch_sizes == (2, 2), "a swap must end a batch, never join it"
    assert engine.adapter_dir == second


async def test_stream_pieces_join_to_the_reply_and_never_split_a_character(
    engine: CloneEngine, adapter: Path
) -> None:
    await engine.load_adapter(adapter)
    pieces = await collect(engine.stream(ask(QUESTIONS[0])))
    assert len(pieces) > 1, "a reply of several tokens arrives in several pieces"
    assert all(piece and "\ufffd" not in piece for piece in pieces)
    assert "".join(pieces).strip() == greedy_reply(adapter, QUESTIONS[0], max_new_tokens=10)


def test_incremental_decoder_holds_back_partial_characters(qwen_tokenizer: Any) -> None:
    text = "Привет, мир! Как ты? 👋🏽 日本語"
    ids = qwen_tokenizer(text, add_special_tokens=False)["input_ids"]
    decoder = IncrementalDecoder(qwen_tokenizer)
    pieces = [decoder.push(token_id) for token_id in ids]
    pieces.append(decoder.flush())
    assert "".join(pieces) == text
    assert not any("\ufffd" in piece for piece in pieces)
    assert "" in pieces[:-1], "an emoji spans several tokens: some pushes must wait"


def test_batch_streamer_stops_each_row_at_its_own_stop_token(qwen_tokenizer: Any) -> None:
    import torch

    received: list[list[str]] = [[], []]
    targets = [
        StreamTarget(emit=received[row].append, abandoned=lambda: False) for row in range(2)
    ]
    stop_ids = [token_id(qwen_tokenizer, token) for token in STOP_TOKENS]
    streamer = streamer_class()(qwen_tokenizer, targets, stop_ids)
    im_end, pad = stop_ids
    first = qwen_tokenizer("да", add_special_tokens=False)["input_ids"]
    second = qwen_tokenizer("нет, потом", add_special_tokens=False)["input_ids"]
    # Row 0 says "да" and stops; generate then pads it while row 1 goes on.
    rows = [[*first, im_end], [*second[: len(first) + 1]]]
    rows[0] += [pad] * (len(second) - len(rows[0]))
    rows[1] += second[len(rows[1]) :]
    streamer.put(torch.zeros((2, 5), dtype=torch.long))  # the prompts: not part of the reply
    for step in range(len(second)):
        streamer.put(torch.tensor([rows[0][step], rows[1][step]]))
    streamer.end()
    assert "".join(received[0]) == "да"
    assert "".join(received[1]) == "нет, потом"


async def test_a_consumer_that_leaves_early_spares_the_rest_of_its_batch(
    engine: CloneEngine, adapter: Path
) -> None:
    expected = greedy_reply(adapter, QUESTIONS[1], max_new_tokens=10)

    async def leave_after_one_piece() -> str:
        async with aclosing(engine.stream(ask(QUESTIONS[0]))) as stream:
            return await anext(stream)

    _, first_piece, other = await asyncio.gather(
        engine.load_adapter(adapter), leave_after_one_piece(), engine.generate(ask(QUESTIONS[1]))
    )
    assert engine.batch_sizes == (2,)
    assert first_piece
    assert other == expected
    assert await engine.generate(ask(QUESTIONS[1])) == expected


async def test_full_queue_refuses_with_engine_busy(adapter: Path) -> None:
    engine = CloneEngine(device="cpu", queue_size=2, max_batch=1)
    try:
        loading = asyncio.ensure_future(engine.load_adapter(adapter))
        await asyncio.sleep(0)  # the load is queued; the worker is busy with it
        waiting = [asyncio.ensure_future(engine.generate(ask("one"))) for _ in range(2)]
        await asyncio.sleep(0)  # both requests are queued behind the load
        with pytest.raises(EngineBusyError):
            await engine.generate(ask("three"))
        await loading
        replies = await asyncio.gather(*waiting)
        assert all(isinstance(reply, str) for reply in replies)
        assert await engine.generate(ask("after")) is not None  # room again
    finally:
        await engine.close()


async def test_release_finishes_queued_requests_then_pauses_until_restore(
    engine: CloneEngine, adapter: Path
) -> None:
    expected = greedy_reply(adapter, QUESTIONS[0], max_new_tokens=10)
    await engine.load_adapter(adapter)
    queued = asyncio.ensure_future(engine.generate(ask(QUESTIONS[0])))
    await asyncio.sleep(0)  # queued before the release
    await engine.release()
    assert queued.done() and queued.result() == expected
    assert engine.paused and not engine.model_loaded
    assert engine.has_adapter, "the adapter is still the one to serve after restore"
    with pytest.raises(EnginePausedError):
        await engine.generate(ask(QUESTIONS[0]))
    await engine.restore()
    assert engine.model_loaded and not engine.paused
    assert await engine.generate(ask(QUESTIONS[0])) == expected


async def test_adapter_promoted_while_released_serves_after_restore(
    engine: CloneEngine, adapter: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    second = make_adapter(tiny_model_dir, tmp_path / "b", seed=2, system_prompt="You are me.")
    await engine.load_adapter(adapter)
    await engine.release()
    await engine.load_adapter(second)
    assert not engine.model_loaded, "nothing is loaded onto the accelerator while released"
    broken = tmp_path / "broken"
    broken.mkdir()
    with pytest.raises(ValueError, match=r"clone\.json"):
        await engine.load_adapter(broken)
    assert engine.adapter_dir == second
    await engine.restore()
    reply = await engine.generate(ask(QUESTIONS[0]))
    assert reply == greedy_reply(second, QUESTIONS[0], max_new_tokens=10)


async def test_unloadable_adapter_promoted_while_released_falls_back_on_restore(
    engine: CloneEngine, adapter: Path, tmp_path: Path
) -> None:
    broken = tmp_path / "broken-weights"
    shutil.copytree(adapter, broken)
    (broken / "adapter_model.safetensors").write_bytes(b"not safetensors")
    await engine.load_adapter(adapter)
    await engine.release()
    await engine.load_adapter(broken)  # clone.json and the LoRA config look fine
    with pytest.raises(SafetensorError, match="deserializing header"):
        await engine.restore()
    assert engine.adapter_dir == adapter, "the adapter that served before the release is back"
    reply = await engine.generate(ask(QUESTIONS[0]))
    assert reply == greedy_reply(adapter, QUESTIONS[0], max_new_tokens=10)


async def test_bad_history_fails_alone(engine: CloneEngine, adapter: Path) -> None:
    await engine.load_adapter(adapter)
    bad: list[Any] = [{"role": "user", "content": "hi"}, {"role": "system", "content": "late"}]
    good, failed = await asyncio.gather(
        engine.generate(ask(QUESTIONS[0])), engine.generate(bad), return_exceptions=True
    )
    assert good == greedy_reply(adapter, QUESTIONS[0], max_new_tokens=10)
    assert isinstance(failed, ValueError)


async def test_no_adapter_and_closed_engine_refuse() -> None:
    engine = CloneEngine(device="cpu")
    with pytest.raises(NoAdapterError):
        await engine.generate(ask("hi"))
    await engine.close()
    with pytest.raises(RuntimeError, match="closed"):
        await engine.generate(ask("hi"))
