"""A training run outlives the bot: the next start follows it again, or fails it with why."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.context import Services
from bot.retrain.service import OwnerHooks
from bot.settings import Settings
from storage.db import Database
from storage.importer import import_export
from storage.runs import (
    add_adapter,
    create_run,
    current_adapter,
    get_run,
    latest_run,
    run_location,
)
from tests.bot.conftest import bot_settings, running_clone
from tests.bot.scripted_engine import ScriptedEngine
from tests.export_factory import OWNER_ID, full_export, write_full_export
from tests.fake_telegram import builders
from tests.fake_telegram.server import FakeTelegramServer
from training.judge import JUDGE_PID_NAME
from training.pipeline import JUDGE_LOG_NAME, TrainingPipeline

OWNER = builders.user(OWNER_ID, "Owner")


def _text(message: dict[str, object]) -> str:
    return str(message.get("text", ""))


def _stop_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


@pytest.mark.slow
async def test_the_restarted_bot_follows_the_run_and_promotes_it(
    fake_telegram: FakeTelegramServer, tmp_path: Path, tiny_model_dir: Path
) -> None:
    settings = bot_settings(
        fake_telegram,
        tmp_path / "data",
        base_model=str(tiny_model_dir),
        # Long enough to outlast the throttled progress message and the bot's stop, on a
        # step of about 0.2 s here.
        train_max_steps=40,
        train_eval_steps=20,
    )
    engine = ScriptedEngine()
    export = json.dumps(full_export(conversations=6), ensure_ascii=False).encode()
    async with running_clone(settings, lambda _: engine) as app:
        services = app.bot_data["services"]
        assert isinstance(services, Services)
        fake_telegram.send_document(OWNER, export, "result.json")
        await fake_telegram.wait_for_message(
            OWNER_ID, lambda m: _text(m).startswith("Import finished"), timeout=30
        )
        fake_telegram.send_command(OWNER, "/retrain")
        await fake_telegram.wait_for_message(OWNER_ID, lambda m: "/40" in _text(m), timeout=120)
        assert engine.released  # a local run gets the GPU of the serving model
        run = await latest_run(services.db)
        assert run is not None
        location = await run_location(services.db, run.run_id)
        assert location is not None and location.runner == "local"
    # The bot stopped; its training did not.
    try:
        os.kill(location.pid, 0)
        db = await Database.open(settings.database_path)
        stopped = await get_run(db, run.run_id)
        await db.close()
        assert stopped is not None and stopped.status == "running"

        restarted = ScriptedEngine()
        async with running_clone(settings, lambda _: restarted) as app:
            services = app.bot_data["services"]
            await fake_telegram.wait_for_message(
                OWNER_ID, lambda m: "following it again" in _text(m), timeout=30
            )
            await fake_telegram.wait_for_message(
                OWNER_ID, lambda m: "Training run #1 finished" in _text(m), timeout=300
            )
            finished = await get_run(services.db, run.run_id)
            adapter = await current_adapter(services.db)
            serving, released = restarted.adapter_dir, restarted.released
    finally:
        _stop_group(location.pid)
    assert finished is not None and finished.status == "succeeded", finished
    assert adapter is not None and adapter.run_id == run.run_id
    assert serving == Path(adapter.path) and not released


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = await Database.open(tmp_path / "data" / "tgclone.sqlite3")
    yield database
    await database.close()


class Inbox:
    def __init__(self) -> None:
        self.texts: list[str] = []

    async def __call__(self, text: str) -> None:
        self.texts.append(text)


def _settings(tmp_path: Path, base_model: Path, **values: Any) -> Settings:
    defaults: dict[str, Any] = {
        "data_dir": tmp_path / "data",
        "base_model": str(base_model),
        "train_max_steps": 2,
        "train_eval_steps": 1,
        "train_batch_size": 2,
        "train_max_length": 256,
    }
    return Settings(_env_file=None, **{**defaults, **values})  # type: ignore[call-arg]


@pytest.mark.slow
async def test_a_run_killed_while_the_bot_was_down_fails_and_the_next_one_is_judged_once(
    db: Database, tmp_path: Path, tiny_model_dir: Path
) -> None:
    await import_export(db, write_full_export(tmp_path / "result.json", conversations=6))
    serving_run = await create_run(db, "cli")
    serving = tmp_path / "serving"
    await add_adapter(db, serving_run, str(serving), {"eval_loss": 9.0}, promoted=True)
    long_run = _settings(tmp_path, tiny_model_dir, train_max_steps=5000, train_eval_steps=1000)
    stepped = asyncio.Event()

    async def on_event(event: dict[str, Any]) -> None:
        if event.get("step", 0) >= 1:
            stepped.set()

    first = TrainingPipeline(long_run, db, OwnerHooks(Inbox(), on_event=on_event))
    running = asyncio.create_task(first.run("command"))
    await asyncio.wait_for(stepped.wait(), timeout=300)
    await first.shutdown()  # the bot stops ...
    assert (await running) is not None
    run = await latest_run(db)
    assert run is not None and run.status == "running"
    location = await run_location(db, run.run_id)
    assert location is not None
    _stop_group(location.pid)  # ... and its training dies with the machine

    inbox = Inbox()
    settings = _settings(tmp_path, tiny_model_dir)
    second = TrainingPipeline(settings, db, OwnerHooks(inbox))
    await second.resume()
    failed = await get_run(db, run.run_id)
    assert failed is not None and failed.status == "failed"
    assert failed.error is not None and "without an exit status" in failed.error
    adapter = await current_adapter(db)
    assert adapter is not None and adapter.path == str(serving)
    assert "failed" in inbox.texts[-1] and "keeps its current adapter" in inbox.texts[-1]

    # The next run trains; the bot stops while its adapter is being judged.
    following = asyncio.create_task(second.run("command"))
    next_dir = settings.runs_dir / f"run-{run.run_id + 1:04d}"
    pid_path = next_dir / JUDGE_PID_NAME
    while not pid_path.exists():
        assert not following.done(), "the run ended before its adapter was judged"
        await asyncio.sleep(0.02)
    judge_pid = int(pid_path.read_text())
    await second.shutdown()
    await asyncio.wait_for(following, timeout=30)
    assert not Path(f"/proc/{judge_pid}/cmdline").exists(), "the judge did not outlive the bot"
    run = await latest_run(db)
    assert run is not None and run.status == "running", "left for the next start"
    assert next_dir.name == f"run-{run.run_id:04d}"

    await TrainingPipeline(settings, db, OwnerHooks(inbox)).resume()
    judged = await get_run(db, run.run_id)
    assert judged is not None and judged.status == "succeeded", judged
    judge_log = (next_dir / JUDGE_LOG_NAME).read_text("utf-8")
    # The first judge was stopped as it started (loading torch takes seconds): one verdict.
    assert judge_log.count("candidate scored") == 1
    # The serving adapter's files are gone, so the new one cannot be compared with it on the
    # same eval set: it is kept as a candidate (its stored 9.0 from an older set is no bar).
    adapter = await current_adapter(db)
    assert adapter is not None and adapter.path == str(serving)
    assert f"Training run #{run.run_id} finished" in inbox.texts[-1]
    assert "could not be scored on the same eval set" in inbox.texts[-1]
    assert "/promote 2" in inbox.texts[-1]


async def test_a_run_that_never_started_its_process_fails_on_resume(
    db: Database, tmp_path: Path, tiny_model_dir: Path
) -> None:
    queued = await create_run(db, "schedule")
    inbox = Inbox()
    await TrainingPipeline(_settings(tmp_path, tiny_model_dir), db, OwnerHooks(inbox)).resume()
    run = await get_run(db, queued)
    assert run is not None and run.status == "failed"
    assert run.error is not None and "before this run's training process started" in run.error
    assert inbox.texts == [
        f"Training run #{queued} failed (the bot stopped before this run's training process "
        "started); the clone keeps its current adapter. Details are in the bot's log."
    ], "the owner hears of it"
