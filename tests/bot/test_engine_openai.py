"""ENGINE=openai against a fake vLLM: our prompt byte for byte, streaming, LoRA swaps, failures."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.engine.base import EngineUnavailableError, NoAdapterError
from bot.engine.openai_server import AdapterRejectedError, OpenAIEngine
from storage.db import Database
from storage.runs import add_adapter
from tests.adapters import make_adapter
from tests.bot.conftest import ALLOWED_ID, bot_settings, running_clone
from tests.fake_openai import FakeOpenAIServer
from tests.fake_telegram import builders
from tests.fake_telegram.server import FakeTelegramServer
from training.chat_format import ChatMessage, load_clone_spec, render_prompt
from training.modeling import load_adapter_tokenizer

HISTORY: list[ChatMessage] = [
    {"role": "user", "content": "Привет! Как дела?"},
    {"role": "assistant", "content": "норм"},
    {"role": "user", "content": "что делаешь вечером?"},
]


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(completion=["При", "вет", ", как ", "ты?"]) as server:
        yield server


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def first(tiny_model_dir: Path, data_dir: Path) -> Path:
    return make_adapter(
        tiny_model_dir, data_dir / "runs" / "1" / "adapter", seed=1, system_prompt="Ты — я."
    )


@pytest.fixture
def second(tiny_model_dir: Path, data_dir: Path) -> Path:
    return make_adapter(
        tiny_model_dir, data_dir / "runs" / "2" / "adapter", seed=2, system_prompt="You are me."
    )


@pytest.fixture
async def engine(fake_openai: FakeOpenAIServer, data_dir: Path) -> AsyncIterator[OpenAIEngine]:
    engine = OpenAIEngine(fake_openai.url, data_dir=data_dir, timeout=10)
    try:
        yield engine
    finally:
        await engine.close()


def prompt_text(body: dict[str, Any], adapter: Path) -> str:
    """The prompt a completion request carried, as text (it is sent as token ids)."""
    ids = body["prompt"]
    assert isinstance(ids, list) and all(isinstance(i, int) for i in ids)
    return str(load_adapter_tokenizer(adapter, "").decode(ids))


async def test_sends_our_rendered_prompt_as_token_ids_with_settings_and_stop_tokens(
    engine: OpenAIEngine, fake_openai: FakeOpenAIServer, first: Path
) -> None:
    await engine.load_adapter(first)
    reply = await engine.generate(HISTORY)
    assert reply == "Привет, как ты?"
    [body] = fake_openai.bodies("completions")
    tokenizer = load_adapter_tokenizer(first, "")
    expected = render_prompt(tokenizer, load_clone_spec(first), HISTORY)
    assert body["prompt"] == tokenizer(expected, add_special_tokens=False)["input_ids"]
    assert prompt_text(body, first).encode("utf-8") == expected.encode("utf-8")
    assert prompt_text(body, first).endswith("<|im_start|>assistant\n")
    assert body["model"] == engine.model_name
    assert body["stop"] == ["<|im_end|>", "<|endoftext|>"]
    # vLLM matches stop strings in text without special tokens: the ids are what stops it.
    assert body["stop_token_ids"] == tokenizer.convert_tokens_to_ids(
        ["<|im_end|>", "<|endoftext|>"]
    )
    assert body["stream"] is True
    # clone.json of make_adapter: greedy, 10 new tokens, Qwen's repetition penalty.
    assert body["temperature"] == 0.0
    assert body["max_tokens"] == 10
    assert body["repetition_penalty"] == 1.05


async def test_text_prompt_format_sends_the_rendered_string(
    fake_openai: FakeOpenAIServer, data_dir: Path, first: Path
) -> None:
    engine = OpenAIEngine(fake_openai.url, data_dir=data_dir, prompt_format="text")
    try:
        await engine.load_adapter(first)
        await engine.generate(HISTORY)
    finally:
        await engine.close()
    [body] = fake_openai.bodies("completions")
    expected = render_prompt(load_adapter_tokenizer(first, ""), load_clone_spec(first), HISTORY)
    assert body["prompt"] == expected


async def test_overrides_reach_the_request(
    fake_openai: FakeOpenAIServer, data_dir: Path, first: Path
) -> None:
    overrides = {
        "do_sample": True, "temperature": 0.9, "top_p": 0.5, "top_k": 7,
        "repetition_penalty": 1.3, "max_new_tokens": 33,
    }  # fmt: skip
    engine = OpenAIEngine(fake_openai.url, data_dir=data_dir, overrides=overrides)
    try:
        await engine.load_adapter(first)
        await engine.generate(HISTORY)
    finally:
        await engine.close()
    [body] = fake_openai.bodies("completions")
    assert (body["temperature"], body["top_p"], body["top_k"]) == (0.9, 0.5, 7)
    assert (body["repetition_penalty"], body["max_tokens"]) == (1.3, 33)


async def test_pieces_stream_in_order_before_the_reply_is_complete(
    engine: OpenAIEngine, fake_openai: FakeOpenAIServer, first: Path
) -> None:
    await engine.load_adapter(first)
    fake_openai.hold = threading.Event()
    stream = engine.stream(HISTORY)
    first_piece = await asyncio.wait_for(anext(stream), 5)
    assert first_piece == "При", "the first piece arrives while the server still holds the rest"
    fake_openai.hold.set()
    rest = [piece async for piece in stream]
    assert [first_piece, *rest] == ["При", "вет", ", как ", "ты?"]


async def test_swap_loads_the_new_lora_then_switches_and_unloads_the_old(
    engine: OpenAIEngine, fake_openai: FakeOpenAIServer, first: Path, second: Path
) -> None:
    await engine.load_adapter(first)
    old_name = engine.model_name
    await engine.generate(HISTORY)
    await engine.load_adapter(second)
    new_name = engine.model_name
    await engine.generate(HISTORY)
    assert old_name and new_name and old_name != new_name
    assert engine.adapter_dir == second
    loads = fake_openai.bodies("load_lora_adapter")
    assert [b["lora_name"] for b in loads] == [old_name, new_name]
    assert [b["lora_path"] for b in loads] == [str(first.resolve()), str(second.resolve())]
    assert fake_openai.bodies("unload_lora_adapter") == [{"lora_name": old_name}]
    assert [b["model"] for b in fake_openai.bodies("completions")] == [old_name, new_name]
    assert list(fake_openai.loaded) == [new_name]
    prompt = prompt_text(fake_openai.bodies("completions")[-1], second)
    assert "You are me." in prompt, "the new adapter's own system prompt is used"


async def test_rejected_load_keeps_the_old_adapter(
    engine: OpenAIEngine, fake_openai: FakeOpenAIServer, first: Path, data_dir: Path
) -> None:
    await engine.load_adapter(first)
    name = engine.model_name
    vanished = make_adapter_dir_without_weights(data_dir / "runs" / "3" / "adapter", first)
    with pytest.raises(AdapterRejectedError, match="could not load"):
        await engine.load_adapter(vanished)
    assert engine.adapter_dir == first and engine.model_name == name
    fake_openai.fail_status = 503
    with pytest.raises(EngineUnavailableError, match="503"):
        await engine.load_adapter(vanished)
    fake_openai.fail_status = None
    await engine.generate(HISTORY)
    assert fake_openai.bodies("completions")[-1]["model"] == name


def make_adapter_dir_without_weights(path: Path, source: Path) -> Path:
    """clone.json and tokenizer files, but no adapter for the server to load."""
    path.mkdir(parents=True)
    for item in source.iterdir():
        if not item.name.startswith("adapter_"):
            (path / item.name).write_bytes(item.read_bytes())
    return path


async def test_server_down_gives_engine_unavailable_and_keeps_the_adapter(
    fake_openai: FakeOpenAIServer, data_dir: Path, first: Path, second: Path
) -> None:
    engine = OpenAIEngine(fake_openai.url, data_dir=data_dir, timeout=5)
    try:
        await engine.load_adapter(first)
        fake_openai.stop()
        with pytest.raises(EngineUnavailableError, match="unreachable"):
            await engine.generate(HISTORY)
        with pytest.raises(EngineUnavailableError, match="unreachable"):
            await engine.load_adapter(second)
        assert engine.adapter_dir == first
    finally:
        await engine.close()


async def test_server_down_at_start_serves_the_adapter_once_it_is_up(
    data_dir: Path, first: Path
) -> None:
    with FakeOpenAIServer() as not_yet:
        url, port = not_yet.url, not_yet.bound_port
    engine = OpenAIEngine(url, data_dir=data_dir, timeout=5)
    try:
        with pytest.raises(EngineUnavailableError, match="unreachable"):
            await engine.load_adapter(first)
        assert engine.has_adapter, "the adapter waits for the server, it is not forgotten"
        with pytest.raises(EngineUnavailableError, match="unreachable"):
            await engine.generate(HISTORY)
        with FakeOpenAIServer(port=port) as server:
            assert await engine.generate(HISTORY) == "Hello, world"
            assert engine.adapter_dir == first
            assert len(server.bodies("load_lora_adapter")) == 1
    finally:
        await engine.close()


async def test_server_error_mid_request_is_engine_unavailable(
    engine: OpenAIEngine, fake_openai: FakeOpenAIServer, first: Path
) -> None:
    await engine.load_adapter(first)
    fake_openai.fail_status = 500
    with pytest.raises(EngineUnavailableError, match="500"):
        await engine.generate(HISTORY)


async def test_restarted_server_gets_the_adapter_again(
    engine: OpenAIEngine, fake_openai: FakeOpenAIServer, first: Path
) -> None:
    await engine.load_adapter(first)
    fake_openai.forget_adapters()
    assert await engine.generate(HISTORY) == "Привет, как ты?"
    assert len(fake_openai.bodies("load_lora_adapter")) == 2
    assert len(fake_openai.bodies("completions")) == 2  # the 404, then the retry


async def test_server_sees_data_dir_under_its_own_path(data_dir: Path, first: Path) -> None:
    with FakeOpenAIServer(api_key="s3cret", mounts={"/srv/tgclone": data_dir}) as server:
        engine = OpenAIEngine(
            server.url, data_dir=data_dir, server_data_dir="/srv/tgclone", api_key="s3cret"
        )
        try:
            await engine.load_adapter(first)
            assert await engine.generate(HISTORY) == "Hello, world"
        finally:
            await engine.close()
        [load] = server.bodies("load_lora_adapter")
    assert load["lora_path"] == "/srv/tgclone/runs/1/adapter"
    with pytest.raises(AdapterRejectedError, match="outside DATA_DIR"):
        engine.server_path(Path("/elsewhere/adapter"))


async def test_no_adapter_refuses(engine: OpenAIEngine) -> None:
    assert not engine.has_adapter
    with pytest.raises(NoAdapterError):
        await engine.generate(HISTORY)


async def test_requests_wait_for_the_first_adapter(
    engine: OpenAIEngine, fake_openai: FakeOpenAIServer, first: Path
) -> None:
    loading = asyncio.ensure_future(engine.load_adapter(first))
    await asyncio.sleep(0)
    assert engine.has_adapter
    reply = await engine.generate(HISTORY)
    await loading
    assert reply == "Привет, как ты?"


async def test_the_bot_answers_through_the_model_server(
    fake_telegram: FakeTelegramServer, fake_openai: FakeOpenAIServer, data_dir: Path, first: Path
) -> None:
    settings = bot_settings(
        fake_telegram, data_dir, engine="openai", openai_base_url=fake_openai.url
    )
    db = await Database.open(settings.database_path)
    await add_adapter(db, None, str(first), {"eval_loss": 1.0}, promoted=True)
    await db.close()
    async with running_clone(settings):
        fake_telegram.send_text(builders.user(ALLOWED_ID, "Friend"), "Привет! Как дела?")
        reply = await fake_telegram.wait_for_message(
            ALLOWED_ID, lambda m: m.get("text") == "Привет, как ты?", timeout=30
        )
    assert reply["text"] == "Привет, как ты?"
    [body] = fake_openai.bodies("completions")
    assert "Привет! Как дела?" in prompt_text(body, first)
    assert [b["lora_path"] for b in fake_openai.bodies("load_lora_adapter")] == [
        str(first.resolve())
    ]
