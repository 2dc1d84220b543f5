"""Watching and stopping a real training run from Telegram."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.context import Services
from storage.runs import current_adapter, latest_run
from tests.bot.conftest import bot_settings, running_clone
from tests.export_factory import OWNER_ID, full_export
from tests.fake_telegram import builders
from tests.fake_telegram.server import FakeTelegramServer

OWNER = builders.user(OWNER_ID, "Owner")


def _text(message: dict[str, object]) -> str:
    return str(message.get("text", ""))


@pytest.mark.slow
async def test_status_shows_evals_and_cancel_keeps_the_adapter(
    fake_telegram: FakeTelegramServer, tmp_path: Path, tiny_model_dir: Path
) -> None:
    settings = bot_settings(
        fake_telegram,
        tmp_path / "data",
        base_model=str(tiny_model_dir),
        train_max_steps=5000,
        train_eval_steps=1,
        train_early_stopping_patience=10_000,  # a run that goes on until cancelled
    )
    export = json.dumps(full_export(conversations=6), ensure_ascii=False).encode()
    async with running_clone(settings) as app:
        services = app.bot_data["services"]
        assert isinstance(services, Services)
        fake_telegram.send_document(OWNER, export, "result.json")
        await fake_telegram.wait_for_message(
            OWNER_ID, lambda m: _text(m).startswith("Import finished"), timeout=30
        )
        fake_telegram.send_command(OWNER, "/cancel")
        await fake_telegram.wait_for_message(OWNER_ID, lambda m: "No training run" in _text(m))

        fake_telegram.send_command(OWNER, "/retrain")
        status = await fake_telegram.wait_for_message(
            OWNER_ID, lambda m: "eval_loss" in _text(m) and "/5000" in _text(m), timeout=120
        )
        assert "ETA" in status["text"] and "epoch" in status["text"]
        fake_telegram.send_command(OWNER, "/cancel")
        await fake_telegram.wait_for_message(
            OWNER_ID, lambda m: "was cancelled" in _text(m), timeout=60
        )
        run = await latest_run(services.db)
        assert run is not None and run.status == "cancelled"
        assert await current_adapter(services.db) is None

        fake_telegram.send_command(OWNER, "/retrain")
        await fake_telegram.wait_for_message(
            OWNER_ID, lambda m: "Training run #2 started" in _text(m), timeout=30
        )
        fake_telegram.send_command(OWNER, "/cancel")
        await fake_telegram.wait_for_message(
            OWNER_ID, lambda m: "#2 was cancelled" in _text(m), timeout=120
        )
