"""Training runs and the adapters they produce; at most one adapter is promoted (served)."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import cast

import aiosqlite

from storage.db import Database, from_unix, now_unix
from storage.models import AdapterRecord, RunStatus, TrainingRun

logger = logging.getLogger(__name__)

FINISHED_STATUSES: frozenset[str] = frozenset({"succeeded", "failed", "cancelled"})

RUN_COLUMNS = """
    run_id, status, "trigger", created_at, started_at, finished_at, pid, run_dir, metrics, error
"""

INSERT_RUN = """
    INSERT INTO training_runs (status, "trigger", created_at)
    VALUES ('queued', ?, ?)
"""

MARK_RUN_RUNNING = """
    UPDATE training_runs
    SET status = 'running', started_at = COALESCE(started_at, ?), pid = ?, run_dir = ?
    WHERE run_id = ?
"""

FINISH_RUN = """
    UPDATE training_runs
    SET status = ?, finished_at = ?, metrics = ?, error = ?
    WHERE run_id = ?
"""

SELECT_RUN = f"""
    SELECT {RUN_COLUMNS}
    FROM training_runs
    WHERE run_id = ?
"""

SELECT_LATEST_RUN = f"""
    SELECT {RUN_COLUMNS}
    FROM training_runs
    ORDER BY run_id DESC
    LIMIT 1
"""

SELECT_ACTIVE_RUN = f"""
    SELECT {RUN_COLUMNS}
    FROM training_runs
    WHERE status IN ('queued', 'running')
    ORDER BY run_id DESC
    LIMIT 1
"""

SELECT_UNFINISHED_RUNS = f"""
    SELECT {RUN_COLUMNS}
    FROM training_runs
    WHERE status IN ('queued', 'running')
    ORDER BY run_id
"""

RECORD_RUN_LOCATION = """
    UPDATE training_runs
    SET runner = ?, pid = ?, host = ?, remote_dir = ?
    WHERE run_id = ?
"""

SELECT_RUN_LOCATION = """
    SELECT runner, pid, host, remote_dir
    FROM training_runs
    WHERE run_id = ?
"""

ADAPTER_COLUMNS = """
    adapter_id, run_id, path, promoted, created_at, metrics
"""

INSERT_ADAPTER = """
    INSERT INTO adapters (run_id, path, promoted, created_at, metrics)
    VALUES (?, ?, 0, ?, ?)
"""

UNPROMOTE_ALL = """
    UPDATE adapters SET promoted = 0 WHERE promoted = 1
"""

PROMOTE = """
    UPDATE adapters SET promoted = 1 WHERE adapter_id = ?
"""

SELECT_CURRENT_ADAPTER = f"""
    SELECT {ADAPTER_COLUMNS}
    FROM adapters
    WHERE promoted = 1
"""

SELECT_ADAPTER = f"""
    SELECT {ADAPTER_COLUMNS}
    FROM adapters
    WHERE adapter_id = ?
"""

SELECT_ADAPTERS = f"""
    SELECT {ADAPTER_COLUMNS}
    FROM adapters
    ORDER BY adapter_id DESC
    LIMIT ?
"""

INSERT_EVAL = """
    INSERT OR REPLACE INTO training_evals (run_id, step, metrics, created_at)
    VALUES (?, ?, ?, ?)
"""

SELECT_EVALS = """
    SELECT step, metrics FROM training_evals WHERE run_id = ? ORDER BY step
"""


async def create_run(db: Database, trigger: str) -> int:
    """Queue a new training run; return its id."""
    async with db.transaction() as conn:
        cursor = await conn.execute(INSERT_RUN, (trigger, now_unix()))
        run_id = cursor.lastrowid
    assert run_id is not None
    logger.info("Queued training run %d (trigger %s)", run_id, trigger)
    return run_id


async def mark_run_running(db: Database, run_id: int, pid: int | None, run_dir: str) -> None:
    """Record that a run started, in which process and directory (again once the pid is known)."""
    async with db.transaction() as conn:
        await _update_one(conn, MARK_RUN_RUNNING, (now_unix(), pid, run_dir, run_id), run_id)


async def finish_run(
    db: Database,
    run_id: int,
    status: RunStatus,
    metrics: dict[str, float],
    error: str | None,
) -> None:
    """Record the end of a run: ``succeeded``, ``failed`` or ``cancelled``."""
    if status not in FINISHED_STATUSES:
        raise ValueError(f"finish_run takes one of {sorted(FINISHED_STATUSES)}, got {status!r}")
    params = (status, now_unix(), json.dumps(metrics), error, run_id)
    async with db.transaction() as conn:
        await _update_one(conn, FINISH_RUN, params, run_id)


async def get_run(db: Database, run_id: int) -> TrainingRun | None:
    """The run with this id, or None."""
    return await _fetch_run(db, SELECT_RUN, (run_id,))


async def latest_run(db: Database) -> TrainingRun | None:
    """The most recently created run, or None when there was none."""
    return await _fetch_run(db, SELECT_LATEST_RUN, ())


async def active_run(db: Database) -> TrainingRun | None:
    """The newest run still queued or running, or None."""
    return await _fetch_run(db, SELECT_ACTIVE_RUN, ())


@dataclass(frozen=True)
class RunLocation:
    """Where a run's training process lives, so a restarted bot can find it again.

    ``runner`` is ``local`` or ``ssh``; ``pid`` is the process id on that machine, ``host``
    the SSH host (``user@host:port``) and ``remote_dir`` the run's directory there.
    """

    runner: str
    pid: int
    host: str | None = None
    remote_dir: str | None = None


async def record_run_location(db: Database, run_id: int, location: RunLocation) -> None:
    """Remember which process (on which host) trains this run."""
    params = (location.runner, location.pid, location.host, location.remote_dir, run_id)
    async with db.transaction() as conn:
        await _update_one(conn, RECORD_RUN_LOCATION, params, run_id)


async def run_location(db: Database, run_id: int) -> RunLocation | None:
    """The recorded training process of a run; None before one was started."""
    async with db.read() as conn, conn.execute(SELECT_RUN_LOCATION, (run_id,)) as cursor:
        row = await cursor.fetchone()
    if row is None or row["pid"] is None:
        return None
    return RunLocation(
        runner=row["runner"] or "local",
        pid=int(row["pid"]),
        host=row["host"],
        remote_dir=row["remote_dir"],
    )


async def unfinished_runs(db: Database) -> list[TrainingRun]:
    """Runs still queued or running (after a restart: left by the previous bot), oldest first."""
    async with db.read() as conn, conn.execute(SELECT_UNFINISHED_RUNS) as cursor:
        rows = await cursor.fetchall()
    return [_training_run(row) for row in rows]


async def add_adapter(
    db: Database,
    run_id: int | None,
    path: str,
    metrics: dict[str, float],
    promoted: bool,
) -> int:
    """Record an adapter directory; when ``promoted``, it replaces the served one. Return id."""
    async with db.transaction() as conn:
        cursor = await conn.execute(
            INSERT_ADAPTER, (run_id, path, now_unix(), json.dumps(metrics))
        )
        adapter_id = cursor.lastrowid
        assert adapter_id is not None
        if promoted:
            await _promote(conn, adapter_id)
    return adapter_id


async def promote_adapter(db: Database, adapter_id: int) -> None:
    """Make this adapter the served one (and no other); LookupError if it does not exist."""
    async with db.transaction() as conn:
        await _promote(conn, adapter_id)
    logger.info("Promoted adapter %d", adapter_id)


async def current_adapter(db: Database) -> AdapterRecord | None:
    """The promoted adapter, or None when none was promoted yet."""
    async with db.read() as conn, conn.execute(SELECT_CURRENT_ADAPTER) as cursor:
        row = await cursor.fetchone()
    return None if row is None else _adapter_record(row)


async def get_adapter(db: Database, adapter_id: int) -> AdapterRecord | None:
    """The adapter with this id, or None."""
    async with db.read() as conn, conn.execute(SELECT_ADAPTER, (adapter_id,)) as cursor:
        row = await cursor.fetchone()
    return None if row is None else _adapter_record(row)


async def list_adapters(db: Database, limit: int = 20) -> list[AdapterRecord]:
    """The newest adapters first, promoted or not."""
    async with db.read() as conn, conn.execute(SELECT_ADAPTERS, (limit,)) as cursor:
        rows = await cursor.fetchall()
    return [_adapter_record(row) for row in rows]


async def _promote(conn: aiosqlite.Connection, adapter_id: int) -> None:
    async with conn.execute(SELECT_ADAPTER, (adapter_id,)) as cursor:
        if await cursor.fetchone() is None:
            raise LookupError(f"no adapter with id {adapter_id}")
    # Un-promote first: the partial unique index allows one promoted row at a time.
    await conn.execute(UNPROMOTE_ALL)
    await conn.execute(PROMOTE, (adapter_id,))


async def _update_one(
    conn: aiosqlite.Connection, sql: str, params: tuple[object, ...], run_id: int
) -> None:
    cursor = await conn.execute(sql, params)
    if cursor.rowcount != 1:
        raise LookupError(f"no training run with id {run_id}")


async def _fetch_run(db: Database, sql: str, params: tuple[object, ...]) -> TrainingRun | None:
    async with db.read() as conn, conn.execute(sql, params) as cursor:
        row = await cursor.fetchone()
    return None if row is None else _training_run(row)


def _training_run(row: aiosqlite.Row) -> TrainingRun:
    return TrainingRun(
        run_id=row["run_id"],
        status=cast(RunStatus, row["status"]),
        trigger=row["trigger"],
        created_at=from_unix(row["created_at"]),
        started_at=_maybe_time(row["started_at"]),
        finished_at=_maybe_time(row["finished_at"]),
        pid=row["pid"],
        run_dir=row["run_dir"],
        metrics=_metrics(row["metrics"]),
        error=row["error"],
    )


def _adapter_record(row: aiosqlite.Row) -> AdapterRecord:
    return AdapterRecord(
        adapter_id=row["adapter_id"],
        run_id=row["run_id"],
        path=row["path"],
        promoted=bool(row["promoted"]),
        created_at=from_unix(row["created_at"]),
        metrics=_metrics(row["metrics"]),
    )


def _maybe_time(seconds: int | None) -> datetime | None:
    return None if seconds is None else from_unix(seconds)


def _metrics(text: str) -> dict[str, float]:
    return {str(key): float(value) for key, value in json.loads(text).items()}


async def add_run_eval(db: Database, run_id: int, step: int, metrics: dict[str, float]) -> None:
    """Record one evaluation of a running training run."""
    async with db.transaction() as conn:
        await conn.execute(INSERT_EVAL, (run_id, step, json.dumps(metrics), now_unix()))


async def run_evals(db: Database, run_id: int) -> list[tuple[int, dict[str, float]]]:
    """The run's evaluations so far, as (step, metrics), in step order."""
    async with db.read() as conn, conn.execute(SELECT_EVALS, (run_id,)) as cursor:
        rows = await cursor.fetchall()
    return [(int(row[0]), _metrics(row[1])) for row in rows]
