"""The bot-latency benchmark's core on 10 chats, so that it cannot rot.

Latency targets are the benchmark's business (this machine may be busy); here every update
must be answered, completely and in order, and the figures must be there.
"""

from __future__ import annotations

import math

import pytest

from benchmarks.bot_latency import run_variant


@pytest.mark.slow
async def test_ten_chats_are_all_answered_in_order_with_figures() -> None:
    report = await run_variant(
        chats=10, messages_per_chat=2, engine_delay=0.05, piece_delay=0.005, streaming=True
    )
    assert report.complete, (report.lost, report.wrong_chats)
    assert len(report.overheads_ms) == 20
    assert all(math.isfinite(ms) and ms > -5 for ms in report.overheads_ms)
    assert report.percentile(50) <= report.percentile(99)
    # From the push the wait for getUpdates counts too: never less than from the hand-out.
    assert len(report.pushed_overheads_ms) == 20
    pairs = zip(report.pushed_overheads_ms, report.overheads_ms, strict=True)
    assert all(p >= h for p, h in pairs)
    assert 0 <= report.worst_lag_ms < 10_000
    assert "streaming" in report.row()
    # The single-process floor is measured in the bot's process once the chats are answered.
    assert 0 < report.parse_cpu_ms < 1000 and 0 < report.request_cpu_ms < 1000
    assert report.floor_p99_ms == 10 * (report.parse_cpu_ms + report.request_cpu_ms)
