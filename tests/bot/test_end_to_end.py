"""The whole loop through the real app: upload an export, /retrain, and talk to the clone."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.replies.pipeline import LEARNING_TEXT
from tests.adapters import greedy_reply
from tests.bot.conftest import ALLOWED_ID, bot_settings, running_clone
from tests.export_factory import OWNER_ID, full_export
from tests.fake_telegram import builders
from tests.fake_telegram.server import FakeTelegramServer

OWNER = builders.user(OWNER_ID, "Owner")
FRIEND = builders.user(ALLOWED_ID, "Friend")
QUESTION = "Привет! Что нового?"


@pytest.mark.slow
async def test_export_retrain_and_reply(
    fake_telegram: FakeTelegramServer, tmp_path: Path, tiny_model_dir: Path
) -> None:
    settings = bot_settings(fake_telegram, tmp_path / "data", base_model=str(tiny_model_dir))
    export = json.dumps(full_export(conversations=14), ensure_ascii=False).encode()
    async with running_clone(settings):
        # Before any adapter, the clone says so instead of answering.
        fake_telegram.send_text(FRIEND, QUESTION)
        await fake_telegram.wait_for_message(
            ALLOWED_ID, lambda m: "owner has not trained me" in m.get("text", "")
        )

        fake_telegram.send_document(OWNER, export, "result.json", mime_type="application/json")
        report = await fake_telegram.wait_for_message(
            OWNER_ID, lambda m: m.get("text", "").startswith("Import finished"), timeout=30
        )
        assert "Messages: 58 (30 yours)" in report["text"]
        assert "New: 58, already present: 0" in report["text"]

        fake_telegram.send_command(OWNER, "/retrain")
        await fake_telegram.wait_for_message(OWNER_ID, lambda m: "started" in m.get("text", ""))
        fake_telegram.send_command(OWNER, "/retrain")
        await fake_telegram.wait_for_message(
            OWNER_ID, lambda m: "already in progress" in m.get("text", "")
        )
        # While the first adapter is trained and judged, the clone is learning, not untrained.
        fake_telegram.send_text(FRIEND, QUESTION)
        await fake_telegram.wait_for_message(ALLOWED_ID, lambda m: m.get("text") == LEARNING_TEXT)
        done = await fake_telegram.wait_for_message(
            OWNER_ID,
            lambda m: "finished" in m.get("text", "") or "failed" in m.get("text", ""),
            timeout=240,
        )
        assert "finished: eval_loss" in done["text"], done["text"]
        assert "mean token accuracy" in done["text"]
        assert "accumulation × 1 process)" in done["text"]  # the batch as the run made it
        # Style checks of the new adapter on held-out conversations, and the loss curve.
        assert "style: length gap" in done["text"] and done["text"].count("style:") == 1
        [photo] = await fake_telegram.wait_until(lambda: fake_telegram.calls_to("sendPhoto"))
        assert str(photo["chat_id"]) == str(OWNER_ID)
        assert "train and eval loss" in photo["caption"]

        fake_telegram.send_text(FRIEND, QUESTION)
        reply = await fake_telegram.wait_for_message(
            ALLOWED_ID, lambda m: "owner has not trained me" not in m.get("text", ""), timeout=60
        )
    adapters = [p.parent for p in (tmp_path / "data" / "runs").rglob("clone.json")]
    assert len(adapters) == 1
    assert reply["text"] == greedy_reply(adapters[0], QUESTION, max_new_tokens=12)
    assert reply["text"] != "…", "the trained tiny model should produce some text"
