"""Training runs as the bot starts them: recorded, one at a time, never harming what serves."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, JobExecutionEvent

from bot.retrain.schedule import build_scheduler, schedule_retrain
from bot.retrain.service import OwnerHooks
from bot.settings import Settings
from storage.db import Database
from storage.importer import import_export
from storage.runs import add_adapter, create_run, current_adapter, latest_run
from tests.export_factory import write_full_export
from tests.tiny_model import TOKENIZER_DIR
from tests.training.test_preflight import seven_b_folder
from training.pipeline import RunAlreadyActiveError, TrainingPipeline


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = await Database.open(tmp_path / "data" / "tgclone.sqlite3")
    yield database
    await database.close()


def _settings(tmp_path: Path, **values: object) -> Settings:
    return Settings(  # type: ignore[call-arg]
        _env_file=None,
        data_dir=tmp_path / "data",
        train_max_steps=2,
        train_eval_steps=1,
        **values,
    )


class Inbox:
    def __init__(self) -> None:
        self.texts: list[str] = []

    async def __call__(self, text: str) -> None:
        self.texts.append(text)


async def test_empty_corpus_fails_with_advice(db: Database, tmp_path: Path) -> None:
    inbox = Inbox()
    run = await TrainingPipeline(_settings(tmp_path), db, OwnerHooks(inbox)).run("command")
    assert run is not None and run.status == "failed"
    assert run.error is not None and "Not enough conversations" in run.error
    assert "export" in inbox.texts[-1]


@pytest.mark.slow
async def test_failed_training_keeps_the_serving_adapter(db: Database, tmp_path: Path) -> None:
    await import_export(db, write_full_export(tmp_path / "result.json", conversations=6))
    serving_run = await create_run(db, "cli")
    await add_adapter(db, serving_run, str(tmp_path / "serving"), {"eval_loss": 2.0}, True)
    # Its tokenizer loads (the dataset is built), its weights are there but do not load: the
    # child process fails.
    broken_model = tmp_path / "broken-weights-model"
    shutil.copytree(TOKENIZER_DIR, broken_model)
    (broken_model / "config.json").write_text('{"model_type": "qwen2"}', "utf-8")
    (broken_model / "model.safetensors").write_bytes(b"\x00" * 64)
    settings = _settings(tmp_path, base_model=str(broken_model), train_logging_steps=1)
    inbox = Inbox()
    run = await TrainingPipeline(settings, db, OwnerHooks(inbox)).run("command")
    assert run is not None and run.status == "failed"
    assert run.error and run.error.startswith("SafetensorError")  # the child's own error
    adapter = await current_adapter(db)
    assert adapter is not None and adapter.path == str(tmp_path / "serving")
    assert "failed" in inbox.texts[-1] and "keeps its current adapter" in inbox.texts[-1]
    assert run.run_dir is not None and (Path(run.run_dir) / "train.log").exists()


async def test_a_base_this_machine_cannot_train_is_refused_before_anything(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """/retrain of a 7B on a machine without a GPU: no dataset, no download, no process."""
    await import_export(db, write_full_export(tmp_path / "result.json", conversations=6))
    monkeypatch.setenv("PATH", str(tmp_path / "no-nvidia-smi"))
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    settings = _settings(tmp_path, base_model=str(seven_b_folder(tmp_path / "7b")))
    inbox = Inbox()
    run = await TrainingPipeline(settings, db, OwnerHooks(inbox)).run("command")
    assert run is not None and run.status == "failed" and run.run_dir is None
    assert not settings.runs_dir.exists()
    assert inbox.texts[-1].startswith(f"Training run #{run.run_id} did not start: ")
    assert "no CUDA GPU (nvidia-smi lists none)" in inbox.texts[-1]
    assert "TRAIN_RUNNER=ssh" in inbox.texts[-1] and "tokens/s" in inbox.texts[-1]


async def test_active_run_blocks_a_second_one(db: Database, tmp_path: Path) -> None:
    await create_run(db, "schedule")
    service = TrainingPipeline(_settings(tmp_path), db, OwnerHooks(Inbox()))
    with pytest.raises(RunAlreadyActiveError):
        await service.ensure_idle()


async def _busy_while_resuming(pipeline: TrainingPipeline) -> list[bool]:
    """``busy`` at each turn of the event loop while the pipeline looks for runs to follow."""
    task = pipeline.resume_in_background()
    seen = []
    while not task.done():
        seen.append(pipeline.busy)
        await asyncio.sleep(0)
    await task
    return seen


async def test_looking_for_runs_to_follow_is_not_a_run(db: Database, tmp_path: Path) -> None:
    """At start-up, with nothing to follow, users are not told the clone is learning."""
    pipeline = TrainingPipeline(_settings(tmp_path), db, OwnerHooks(Inbox()))
    seen = await _busy_while_resuming(pipeline)
    assert len(seen) > 1 and not any(seen)


async def test_failing_a_run_left_queued_is_a_run(db: Database, tmp_path: Path) -> None:
    run_id = await create_run(db, "schedule")
    inbox = Inbox()
    pipeline = TrainingPipeline(_settings(tmp_path), db, OwnerHooks(inbox))
    seen = await _busy_while_resuming(pipeline)
    assert any(seen) and not pipeline.busy
    run = await latest_run(db)
    assert run is not None and run.run_id == run_id and run.status == "failed"


async def test_cron_schedules_the_retrain_job(db: Database, tmp_path: Path) -> None:
    settings = _settings(tmp_path, retrain_cron="0 4 * * 0", timezone="Europe/Moscow")
    service = TrainingPipeline(settings, db, OwnerHooks(Inbox()))
    scheduler = build_scheduler(settings)
    schedule_retrain(scheduler, settings, service.run)
    scheduler.start(paused=True)
    try:
        job = scheduler.get_job("retrain-cron")
        assert job is not None and job.args == ("schedule",)
        wednesday = datetime(2026, 11, 25, 12, 0, tzinfo=ZoneInfo("Europe/Moscow"))
        fire = job.trigger.get_next_fire_time(None, wednesday)
        assert fire == datetime(2026, 11, 29, 4, 0, tzinfo=ZoneInfo("Europe/Moscow"))
        assert fire.strftime("%A") == "Sunday"
    finally:
        scheduler.shutdown(wait=False)
    assert await latest_run(db) is None


async def test_a_cron_firing_during_a_command_run_is_skipped_not_queued(
    db: Database, tmp_path: Path
) -> None:
    settings = _settings(tmp_path, retrain_cron="0 4 * * 0")
    release = asyncio.Event()
    said: list[str] = []

    async def say(text: str) -> None:
        said.append(text)
        if len(said) == 1:
            await release.wait()  # the first run holds the pipeline at its start

    service = TrainingPipeline(settings, db, OwnerHooks(say))
    scheduler = build_scheduler(settings)
    schedule_retrain(scheduler, settings, service.run)
    outcomes: list[object] = []
    fired = asyncio.Event()

    def on_job(event: JobExecutionEvent) -> None:
        outcomes.append(event.retval if event.exception is None else event.exception)
        fired.set()

    scheduler.add_listener(on_job, EVENT_JOB_EXECUTED | EVENT_JOB_ERROR)
    scheduler.start()
    command = asyncio.create_task(service.run("command"))
    try:
        await asyncio.wait_for(_until(lambda: bool(said)), timeout=30)
        job = scheduler.get_job("retrain-cron")
        assert job is not None
        job.modify(next_run_time=datetime.now(UTC))
        await asyncio.wait_for(fired.wait(), timeout=30)  # a queued run would still wait here
        release.set()
        first = await asyncio.wait_for(command, timeout=60)
    finally:
        release.set()
        scheduler.shutdown(wait=False)
    assert outcomes == [None], "the cron run returned at once, without a run of its own"
    latest = await latest_run(db)
    assert first is not None and latest is not None and latest.run_id == first.run_id
    assert sum("started" in text for text in said) == 1


async def _until(condition: Callable[[], bool]) -> None:
    while not condition():
        await asyncio.sleep(0.01)
