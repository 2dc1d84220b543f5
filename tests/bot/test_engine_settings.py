"""Generation settings and engine choice: from clone.json, overridden by settings, validated."""

from __future__ import annotations

import json
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.engine.factory import build_engine
from bot.engine.local import CloneEngine
from bot.engine.openai_server import OpenAIEngine
from bot.settings import Settings, SettingsError, load_settings
from tests.adapters import greedy_reply, make_adapter
from training.chat_format import ChatMessage
from training.modeling import ServingQuantization, load_base_model, resolve_precision
from training.settings import with_fields

QUESTION = "Как дела?"
HISTORY: list[ChatMessage] = [{"role": "user", "content": QUESTION}]
# Sampling wide open: without a setting that narrows it, replies of a random model vary.
HOT = {"do_sample": True, "temperature": 1.5, "top_p": 1.0, "top_k": 0}


def settings(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture
def adapter(tiny_model_dir: Path, tmp_path: Path) -> Path:
    return make_adapter(tiny_model_dir, tmp_path / "a", seed=1, system_prompt="Ты — владелец.")


async def replies(adapter: Path, overrides: dict[str, Any], count: int) -> list[str]:
    engine = CloneEngine(device="cpu", overrides=overrides, max_batch=1)
    try:
        await engine.load_adapter(adapter)
        return [await engine.generate(HISTORY) for _ in range(count)]
    finally:
        await engine.close()


# --- settings ------------------------------------------------------------------------------


def test_generation_settings_become_overrides() -> None:
    chosen = settings(
        generation_do_sample="true",
        generation_max_new_tokens="64",
        generation_temperature="0.9",
        generation_top_p="0.5",
        generation_top_k="7",
        generation_repetition_penalty="1.2",
    )
    assert chosen.generation_overrides() == {
        "do_sample": True,
        "max_new_tokens": 64,
        "temperature": 0.9,
        "top_p": 0.5,
        "top_k": 7,
        "repetition_penalty": 1.2,
    }
    assert settings().generation_overrides() == {}


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({"generation_top_p": "0"}, "GENERATION_TOP_P"),
        ({"generation_top_p": "1.5"}, "GENERATION_TOP_P"),
        ({"generation_top_k": "-1"}, "GENERATION_TOP_K"),
        ({"generation_repetition_penalty": "0"}, "GENERATION_REPETITION_PENALTY"),
        ({"generation_max_new_tokens": "0"}, "GENERATION_MAX_NEW_TOKENS"),
        ({"generation_temperature": "0"}, "set do_sample=False.*GENERATION_TEMPERATURE"),
        ({"engine": "openai"}, "OPENAI_BASE_URL"),
        ({"engine": "llama"}, "ENGINE"),
        ({"engine_quantization": "8bit"}, "ENGINE_QUANTIZATION"),
        ({"engine_queue_size": "0"}, "ENGINE_QUEUE_SIZE"),
        ({"engine_max_batch": "0"}, "ENGINE_MAX_BATCH"),
    ],
)
def test_bad_serving_settings_are_named(values: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError, match=named):
        load_settings(_env_file=None, **values)


def test_greedy_temperature_zero_is_accepted() -> None:
    chosen = settings(generation_do_sample="false", generation_temperature="0")
    assert chosen.generation_overrides()["temperature"] == 0


async def test_factory_builds_the_chosen_engine(tmp_path: Path) -> None:
    local = build_engine(settings(engine_queue_size=3, engine_max_batch=2))
    assert isinstance(local, CloneEngine)
    await local.close()
    remote = build_engine(settings(engine="openai", openai_base_url="http://127.0.0.1:9/v1"))
    assert isinstance(remote, OpenAIEngine)
    await remote.close()


def test_overrides_that_contradict_each_other_are_refused(adapter: Path) -> None:
    from training.chat_format import load_clone_spec

    spec = load_clone_spec(adapter)
    with pytest.raises(ValueError, match="temperature is 0 while do_sample is on"):
        with_fields(spec.generation, {"do_sample": True, "temperature": 0.0})


# --- each setting reaches generation -------------------------------------------------------


async def test_max_new_tokens_bounds_the_reply(adapter: Path) -> None:
    [short] = await replies(adapter, {"max_new_tokens": 3}, 1)
    assert short == greedy_reply(adapter, QUESTION, max_new_tokens=3)
    assert short != greedy_reply(adapter, QUESTION, max_new_tokens=10)


async def test_sampling_varies_and_each_narrowing_setting_makes_it_greedy(adapter: Path) -> None:
    greedy = greedy_reply(adapter, QUESTION, max_new_tokens=10)
    sampled = await replies(adapter, HOT, 3)
    assert len(set(sampled)) > 1, "do_sample with a hot temperature must vary"
    assert greedy not in sampled
    # Each of these alone narrows sampling down to the likeliest token.
    for narrowed in (
        {**HOT, "top_k": 1},
        {**HOT, "top_p": 1e-6},
        {**HOT, "temperature": 1e-4},
    ):
        assert await replies(adapter, narrowed, 2) == [greedy, greedy], narrowed


async def test_repetition_penalty_reaches_generation(adapter: Path, tmp_path: Path) -> None:
    # The reference: the same adapter with the penalty written into its clone.json. A
    # penalty below 1 rewards tokens already present (the prompt's), so the reply changes.
    strong = tmp_path / "strong"
    shutil.copytree(adapter, strong)
    spec = json.loads((strong / "clone.json").read_text("utf-8"))
    spec["generation"]["repetition_penalty"] = 0.05
    (strong / "clone.json").write_text(json.dumps(spec), "utf-8")
    expected = greedy_reply(strong, QUESTION, max_new_tokens=10)
    assert expected != greedy_reply(adapter, QUESTION, max_new_tokens=10)
    [reply] = await replies(adapter, {"repetition_penalty": 0.05}, 1)
    assert reply == expected


# --- precision -----------------------------------------------------------------------------


def test_quantization_choices_on_cpu(tiny_model_dir: Path) -> None:
    import torch

    assert load_base_model(str(tiny_model_dir), "cpu", "auto").dtype == torch.float32
    assert load_base_model(str(tiny_model_dir), "cpu", "bf16").dtype == torch.bfloat16
    with pytest.raises(ValueError, match=r"4-bit \(nf4\) weights need a CUDA GPU"):
        load_base_model(str(tiny_model_dir), "cpu", "4bit")
    # auto: the precision the adapter records, where the CPU can run it (NF4 it cannot).
    assert load_base_model(str(tiny_model_dir), "cpu", recorded="bf16").dtype == torch.bfloat16
    assert load_base_model(str(tiny_model_dir), "cpu", recorded="nf4").dtype == torch.float32


@pytest.mark.parametrize(
    ("quantization", "target", "recorded", "precision"),
    [
        ("auto", "cuda", "nf4", "nf4"),
        ("auto", "cuda", "", "nf4"),
        ("auto", "cuda", "bf16", "bf16"),
        ("auto", "cpu", "nf4", "fp32"),
        ("auto", "cpu", "bf16", "bf16"),
        ("auto", "cpu", "", "fp32"),
        ("bf16", "cuda", "nf4", "bf16"),
        ("4bit", "cpu", "fp32", "nf4"),
    ],
)
def test_the_precision_served_is_the_recorded_one_unless_told_or_impossible(
    quantization: ServingQuantization, target: Any, recorded: str, precision: str
) -> None:
    assert resolve_precision(quantization, target, recorded) == precision


@pytest.mark.parametrize(("recorded", "served"), [("bf16", "bf16"), ("nf4", "fp32"), ("", "fp32")])
async def test_the_engine_says_which_precision_it_serves(
    tmp_path: Path, adapter: Path, recorded: str, served: str
) -> None:
    spec = json.loads((adapter / "clone.json").read_text("utf-8"))
    (adapter / "clone.json").write_text(json.dumps({**spec, "precision": recorded}), "utf-8")
    engine = CloneEngine(device="cpu")
    try:
        assert engine.precision is None
        await engine.load_adapter(adapter)
        assert await engine.generate(HISTORY)
        assert engine.precision == served
    finally:
        await engine.close()


@pytest.fixture
async def bf16_engine() -> AsyncIterator[CloneEngine]:
    engine = CloneEngine(device="cpu", quantization="bf16")
    try:
        yield engine
    finally:
        await engine.close()


async def test_bf16_engine_serves_and_4bit_on_cpu_keeps_nothing_loaded(
    bf16_engine: CloneEngine, adapter: Path
) -> None:
    await bf16_engine.load_adapter(adapter)
    assert await bf16_engine.generate(HISTORY)
    engine = CloneEngine(device="cpu", quantization="4bit")
    try:
        with pytest.raises(ValueError, match="CUDA"):
            await engine.load_adapter(adapter)
        assert not engine.has_adapter
    finally:
        await engine.close()
