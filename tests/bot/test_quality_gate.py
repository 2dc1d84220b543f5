"""The quality gate and adapter switching: a worse adapter serves only if the owner says so."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from telegram.ext import Application

from bot.context import Services
from bot.retrain.service import OwnerHooks
from bot.settings import Settings
from storage.corrections import ContextTurn
from storage.db import Database
from storage.reply_labels import ReplyLabel, set_label
from storage.runs import add_adapter, current_adapter, list_adapters, run_evals
from tests.adapters import make_adapter
from tests.bot.conftest import running_clone
from tests.export_factory import OWNER_ID
from tests.fake_telegram import builders
from tests.fake_telegram.server import FakeTelegramServer
from tests.trained_clone import TrainedClone, recipe
from training.pipeline import TrainingPipeline

OWNER = builders.user(OWNER_ID, "Owner")
NOW = datetime(2026, 12, 1, tzinfo=UTC)


def _services(app: Application) -> Services:  # type: ignore[type-arg]
    services = app.bot_data["services"]
    assert isinstance(services, Services)
    return services


async def test_promote_rollback_and_list(
    settings: Settings, fake_telegram: FakeTelegramServer, tiny_model_dir: Path, tmp_path: Path
) -> None:
    first = make_adapter(tiny_model_dir, tmp_path / "a1", seed=1, system_prompt="one")
    second = make_adapter(tiny_model_dir, tmp_path / "a2", seed=2, system_prompt="two")
    async with running_clone(settings) as app:
        services = _services(app)
        await add_adapter(services.db, None, str(first), {"eval_loss": 2.0}, promoted=True)
        await add_adapter(services.db, None, str(second), {"eval_loss": 2.5}, promoted=False)

        async def ask(command: str) -> str:
            fake_telegram.send_command(OWNER, command)
            reply = await fake_telegram.wait_for_message(OWNER_ID, timeout=30)
            return str(reply["text"])

        listing = await ask("/adapters")
        assert len(listing.splitlines()) == 2
        assert listing.startswith("#2 candidate — eval_loss 2.500")
        assert "#1 serving — eval_loss 2.000" in listing
        assert await ask("/promote 2") == "Adapter #2 is live."
        assert services.engine.adapter_dir == second
        assert (await current_adapter(services.db)).adapter_id == 2  # type: ignore[union-attr]
        assert await ask("/promote 2") == "Adapter #2 is already serving."
        assert await ask("/rollback") == "Adapter #1 is live."
        assert services.engine.adapter_dir == first
        assert (await ask("/promote 9")).startswith("There is no adapter #9.")
        assert await ask("/rollback") == "There is no earlier adapter to roll back to."


@pytest.mark.slow
async def test_a_worse_run_is_kept_as_a_candidate(
    tmp_path: Path, tiny_model_dir: Path, trained_clone: TrainedClone
) -> None:
    # The first adapter was trained on this export through the real pipeline and promoted.
    data_dir = trained_clone.copy_to(tmp_path / "data")
    assert "no adapter was serving" in trained_clone.said[-1]
    first = trained_clone.run
    db = await Database.open(data_dir / "tgclone.sqlite3")
    said: list[str] = []

    async def notify(text: str) -> None:
        said.append(text)

    try:
        # Figures stored with the serving adapter come from an older eval set: a gate that
        # read them (99) instead of scoring it again would promote the weak run below.
        async with db.transaction() as conn:
            await conn.execute(
                "UPDATE adapters SET metrics = json_set(metrics, '$.eval_loss', 99.0, "
                "'$.gate_eval_loss', 99.0) WHERE promoted = 1"
            )
        # A run that barely moves from the base model cannot beat the trained adapter.
        weak = recipe(
            data_dir,
            tiny_model_dir,
            train_max_steps=2,
            train_eval_steps=2,
            train_learning_rate=1e-9,
        )
        await _rate_replies(db, 3)
        second = await TrainingPipeline(weak, db, OwnerHooks(notify)).run("command")
        assert second is not None and second.status == "succeeded", said
        # Three rated replies: too few for the preference stage, and the owner is told.
        assert said[-1].endswith(
            "\nPreference stage skipped: 3 of the 20 signals it needs (/fix corrections and "
            "replies you rated); the supervised adapter is used."
        )
        assert second.metrics["preference_unpaired"] == 3.0
        adapters = await list_adapters(db)
        serving = await current_adapter(db)
        curve = await run_evals(db, first.run_id)
    finally:
        await db.close()
    assert serving is not None and serving.run_id == first.run_id
    assert [step for step, _ in curve] == [4, 8]
    assert all("eval_loss" in metrics for _, metrics in curve)
    assert 0.0 <= serving.metrics["gate_content_token_accuracy"] <= 1.0
    assert [a.promoted for a in adapters] == [False, True]
    kept = adapters[0].metrics
    assert kept["gate_eval_loss"] > kept["gate_serving_eval_loss"]
    assert f"candidate #{adapters[0].adapter_id}" in said[-1]
    assert f"/promote {adapters[0].adapter_id}" in said[-1]


async def _rate_replies(db: Database, count: int) -> None:
    """The owner marked ``count`` clone replies (through storage, as the handlers do)."""
    for turn_id in range(count):
        context: list[ContextTurn] = [{"role": "user", "content": f"are you in, {turn_id}?"}]
        label = ReplyLabel(OWNER_ID, turn_id, "good", "reaction", context, "sure", NOW)
        await set_label(db, label)
