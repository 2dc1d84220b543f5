"""/stats shows eval_loss and the style figures of the last run and the serving adapter."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bot.retrain.figures import STYLE_LEGEND, format_style
from bot.settings import Settings
from storage.db import Database
from storage.runs import add_adapter, create_run, finish_run
from tests.bot.conftest import running_clone
from tests.bot.scripted_engine import ScriptedEngine
from tests.export_factory import OWNER_ID
from tests.fake_telegram import builders
from tests.fake_telegram.server import FakeTelegramServer
from training.chat_format import CloneSpec, save_clone_spec
from training.config import DatasetConfig

OWNER = builders.user(OWNER_ID, "Owner")

SERVING_METRICS = {
    "eval_loss": 2.5,
    "eval_mean_token_accuracy": 0.41,
    "style_length_distance": 0.3125,
    "style_emoji_rate_distance": 0.25,
    "style_assistant_share": 0.125,
    "style_distinct_2": 0.5,
    "style_distinct_2_owner": 0.875,
    "style_samples": 8.0,
}
CANDIDATE_METRICS = {
    "eval_loss": 2.25,
    "eval_mean_token_accuracy": 0.45,
    "gate_content_token_accuracy": 0.3,
    "style_length_distance": 1.5,
    "style_emoji_rate_distance": 0.0,
    "style_assistant_share": 0.0,
    "style_distinct_2": 0.75,
    "style_distinct_2_owner": 0.875,
    "style_samples": 8.0,
}


async def _record(settings: Settings, runs: list[tuple[dict[str, float], bool]]) -> None:
    """One finished run per entry, each with an adapter (promoted or kept as a candidate)."""
    db = await Database.open(settings.database_path)
    try:
        for metrics, promoted in runs:
            run_id = await create_run(db, "command")
            path = str(settings.data_dir / f"adapter-{run_id}")
            await add_adapter(db, run_id, path, metrics, promoted=promoted)
            await finish_run(db, run_id, "succeeded", metrics, None)
    finally:
        await db.close()


async def _stats(
    settings: Settings, server: FakeTelegramServer, engine: ScriptedEngine | None = None
) -> str:
    async with running_clone(settings, lambda _: engine or ScriptedEngine()):
        server.send_command(OWNER, "/stats")
        message: dict[str, Any] = await server.wait_for_message(
            OWNER_ID, lambda m: str(m.get("text", "")).startswith("Chats:")
        )
    return str(message["text"])


async def test_stats_shows_style_of_the_last_run_and_the_serving_adapter(
    settings: Settings, fake_telegram: FakeTelegramServer
) -> None:
    await _record(settings, [(SERVING_METRICS, True), (CANDIDATE_METRICS, False)])
    text = await _stats(settings, fake_telegram)
    lines = text.splitlines()
    last = lines.index(next(line for line in lines if line.startswith("Last run: #2 succeeded")))
    assert lines[last + 1] == (
        "  eval_loss 2.250, mean token accuracy 0.450, 0.300 on content tokens"
    )
    assert lines[last + 2] == (
        "  style: length gap 1.50, emoji gap 0%, assistant-like 0%, "
        "distinct-2 0.75 (yours 0.88), 8 replies"
    )
    serving = lines.index("Serving adapter: #1 (run #1)")
    assert lines[serving + 1] == "  eval_loss 2.500, mean token accuracy 0.410"
    assert lines[serving + 2] == (
        "  style: length gap 0.31, emoji gap 25%, assistant-like 12%, "
        "distinct-2 0.50 (yours 0.88), 8 replies"
    )
    assert lines[serving + 3] == "Precision: not recorded in its clone.json"
    assert lines[serving + 4 :] == list(STYLE_LEGEND)
    assert len(text) < 1500  # a glance, not a report


async def test_stats_without_style_figures_has_no_legend_and_no_repeats(
    settings: Settings, fake_telegram: FakeTelegramServer
) -> None:
    await _record(settings, [({"eval_loss": 1.75, "eval_mean_token_accuracy": 0.5}, True)])
    text = await _stats(settings, fake_telegram)
    lines = text.splitlines()
    assert "  eval_loss 1.750, mean token accuracy 0.500" in lines
    assert lines[-2] == "Serving adapter: #1 (run #1)"  # its figures are the run's, shown above
    assert lines[-1].startswith("Precision: ")
    assert not any("style" in line.lower() for line in lines)


def test_style_line_shows_only_the_figures_present() -> None:
    assert format_style({"eval_loss": 1.0}) is None
    assert format_style({"style_assistant_share": 0.5, "style_samples": 4.0}) == (
        "style: assistant-like 50%, 4 replies"
    )
    assert format_style({"style_distinct_2": 0.5}) == "style: distinct-2 0.50"


def _clone_json(adapter_dir: Path, precision: str) -> None:
    """The adapter's clone.json, recording the precision it was trained and judged on."""
    adapter_dir.mkdir(parents=True, exist_ok=True)
    spec = CloneSpec(
        base_model="Qwen/Qwen2.5-7B-Instruct",
        dataset=DatasetConfig(),
        chat_template="{{ messages }}",
        precision=precision,
    )
    save_clone_spec(adapter_dir, spec)


@pytest.mark.parametrize(
    ("engine_kind", "served", "line"),
    [
        ("transformers", "nf4", "Precision: nf4 (trained, judged and served)"),
        (
            "transformers",
            "fp32",
            "Precision: trained and judged on nf4, served on fp32 here (ENGINE_QUANTIZATION, "
            "or no CUDA GPU): replies may differ from what the gate judged",
        ),
        ("transformers", None, "Precision: trained and judged on nf4"),
        (
            "openai",
            None,
            "Precision: trained and judged on nf4; the model server must load the base the same "
            "way (vLLM: --quantization bitsandbytes for nf4, as docker-compose.yml starts it)",
        ),
    ],
)
async def test_stats_shows_the_precision_the_adapter_was_judged_on_and_is_served_with(
    settings: Settings,
    fake_telegram: FakeTelegramServer,
    engine_kind: str,
    served: str | None,
    line: str,
) -> None:
    await _record(settings, [({"eval_loss": 1.75}, True)])
    _clone_json(settings.data_dir / "adapter-1", "nf4")
    if engine_kind == "openai":
        settings = settings.model_copy(
            update={"engine": "openai", "openai_base_url": "http://vllm:8000/v1"}
        )
    engine = ScriptedEngine()
    engine.precision = served
    lines = (await _stats(settings, fake_telegram, engine)).splitlines()
    assert lines[lines.index("Serving adapter: #1 (run #1)") + 1] == line


def test_style_line_shows_memory_use_beside_the_owners() -> None:
    line = format_style({"style_memory_overlap": 0.25, "style_memory_overlap_owner": 0.5})
    assert line == "style: memory use 25% (yours 50%)"
