"""Training runs and adapters: lifecycle, stale runs, and exactly one promoted adapter."""

from __future__ import annotations

from pathlib import Path

import pytest

from storage.db import Database
from storage.runs import (
    active_run,
    add_adapter,
    add_run_eval,
    create_run,
    current_adapter,
    fail_stale_runs,
    finish_run,
    get_adapter,
    get_run,
    latest_run,
    mark_run_running,
    promote_adapter,
    run_evals,
)


async def test_run_lifecycle(db: Database) -> None:
    assert await latest_run(db) is None
    run_id = await create_run(db, "command")
    run = await get_run(db, run_id)
    assert run is not None
    assert (run.status, run.trigger, run.started_at, run.metrics) == (
        "queued",
        "command",
        None,
        {},
    )
    assert run.created_at.tzinfo is not None
    assert await active_run(db) == run

    await mark_run_running(db, run_id, 4321, "/data/runs/1")
    run = await get_run(db, run_id)
    assert run is not None
    assert (run.status, run.pid, run.run_dir) == ("running", 4321, "/data/runs/1")
    assert run.started_at is not None

    await finish_run(db, run_id, "succeeded", {"eval_loss": 1.25, "train_loss": 0.5}, None)
    run = await get_run(db, run_id)
    assert run is not None
    assert (run.status, run.metrics, run.error) == (
        "succeeded",
        {"eval_loss": 1.25, "train_loss": 0.5},
        None,
    )
    assert run.finished_at is not None
    assert await active_run(db) is None
    assert await latest_run(db) == run


async def test_finish_run_checks_status_and_id(db: Database) -> None:
    run_id = await create_run(db, "cli")
    with pytest.raises(ValueError, match="finish_run takes"):
        await finish_run(db, run_id, "running", {}, None)
    with pytest.raises(LookupError):
        await finish_run(db, run_id + 1, "failed", {}, "x")
    with pytest.raises(LookupError):
        await mark_run_running(db, run_id + 1, None, "d")
    assert await get_run(db, run_id + 1) is None


async def test_latest_run_is_the_newest(db: Database) -> None:
    first = await create_run(db, "schedule")
    second = await create_run(db, "command")
    latest = await latest_run(db)
    assert latest is not None and latest.run_id == second > first


async def test_fail_stale_runs(db: Database) -> None:
    queued = await create_run(db, "schedule")
    running = await create_run(db, "command")
    await mark_run_running(db, running, None, "/runs/2")
    done = await create_run(db, "cli")
    await finish_run(db, done, "succeeded", {}, None)

    assert await fail_stale_runs(db, "the bot restarted") == 2
    for run_id in (queued, running):
        run = await get_run(db, run_id)
        assert run is not None
        assert (run.status, run.error) == ("failed", "the bot restarted")
        assert run.finished_at is not None
    finished = await get_run(db, done)
    assert finished is not None and finished.status == "succeeded"
    assert await active_run(db) is None
    assert await fail_stale_runs(db, "again") == 0


async def test_promotion_unpromotes_the_others(db: Database) -> None:
    run_id = await create_run(db, "command")
    assert await current_adapter(db) is None
    first = await add_adapter(db, run_id, "/a/1", {"eval_loss": 2.0}, promoted=True)
    second = await add_adapter(db, run_id, "/a/2", {"eval_loss": 1.0}, promoted=False)
    current = await current_adapter(db)
    assert current is not None and (current.adapter_id, current.path) == (first, "/a/1")
    assert current.metrics == {"eval_loss": 2.0}

    third = await add_adapter(db, None, "/a/3", {}, promoted=True)
    current = await current_adapter(db)
    assert current is not None and current.adapter_id == third
    old = await get_adapter(db, first)
    assert old is not None and not old.promoted

    await promote_adapter(db, second)
    current = await current_adapter(db)
    assert current is not None and current.adapter_id == second
    async with (
        db.read() as conn,
        conn.execute("SELECT COUNT(*) FROM adapters WHERE promoted = 1") as cursor,
    ):
        assert (await cursor.fetchone())[0] == 1  # type: ignore[index]


async def test_promoting_a_missing_adapter_changes_nothing(db: Database) -> None:
    kept = await add_adapter(db, None, "/a/1", {}, promoted=True)
    with pytest.raises(LookupError):
        await promote_adapter(db, kept + 100)
    current = await current_adapter(db)
    assert current is not None and current.adapter_id == kept


async def test_evaluations_of_a_run_are_kept_in_step_order(tmp_path: Path) -> None:
    db = await Database.open(tmp_path / "evals.sqlite3")
    try:
        run_id = await create_run(db, "command")
        await add_run_eval(db, run_id, 100, {"eval_loss": 1.9})
        await add_run_eval(db, run_id, 50, {"eval_loss": 2.4, "eval_mean_token_accuracy": 0.5})
        await add_run_eval(db, run_id, 100, {"eval_loss": 1.8})  # a re-sent step replaces
        assert await run_evals(db, run_id) == [
            (50, {"eval_loss": 2.4, "eval_mean_token_accuracy": 0.5}),
            (100, {"eval_loss": 1.8}),
        ]
        assert await run_evals(db, run_id + 1) == []
    finally:
        await db.close()
