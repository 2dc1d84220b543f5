"""Training runs and adapters: lifecycle, stale runs, and exactly one promoted adapter."""

from __future__ import annotations

from pathlib import Path

import pytest

from storage.db import Database
from storage.migrations import MIGRATIONS
from storage.runs import (
    RunLocation,
    active_run,
    add_adapter,
    add_run_eval,
    create_run,
    current_adapter,
    finish_run,
    get_adapter,
    get_run,
    latest_run,
    mark_run_running,
    promote_adapter,
    record_run_location,
    run_evals,
    run_location,
    unfinished_runs,
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


async def test_a_run_remembers_where_its_training_process_lives(db: Database) -> None:
    queued = await create_run(db, "schedule")
    local = await create_run(db, "command")
    remote = await create_run(db, "command")
    await mark_run_running(db, remote, None, "/data/runs/run-0003")
    assert await run_location(db, remote) is None  # no process started yet
    await record_run_location(db, local, RunLocation("local", 4321))
    where = RunLocation("ssh", 77, "me@gpu:2222", "/home/me/tgclone-runs/run-0003")
    await record_run_location(db, remote, where)
    assert await run_location(db, local) == RunLocation("local", 4321, None, None)
    assert await run_location(db, remote) == where
    run = await get_run(db, remote)
    assert run is not None and (run.pid, run.run_dir) == (77, "/data/runs/run-0003")
    with pytest.raises(LookupError):
        await record_run_location(db, remote + 1, where)

    await finish_run(db, local, "failed", {}, "killed")
    assert [run.run_id for run in await unfinished_runs(db)] == [queued, remote]


async def test_m006_adds_run_locations_to_an_older_database(tmp_path: Path) -> None:
    path = tmp_path / "older.sqlite3"
    older = await Database.open(path, migrations=MIGRATIONS[:5])
    try:
        run_id = await create_run(older, "command")
        await mark_run_running(older, run_id, 999, "/runs/run-0001")
    finally:
        await older.close()
    db = await Database.open(path)
    try:
        # A run from before m006 was local: its pid is all there is.
        assert await run_location(db, run_id) == RunLocation("local", 999)
        await record_run_location(db, run_id, RunLocation("ssh", 5, "gpu:22", "/r"))
        assert await run_location(db, run_id) == RunLocation("ssh", 5, "gpu:22", "/r")
    finally:
        await db.close()
