"""SSH runner against a real OpenSSH server on 127.0.0.1, started by the test."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest

from tests.adapters import make_adapter
from tests.training.conftest import free_port
from tests.training.feedback import signals
from tests.training.test_runner import stop_group, trained_a_step, write_run
from training.judge import judge
from training.preference_data import write_preference_data
from training.runners import RunDetachedError, RunHandle, SshRunner, SshTarget


@pytest.mark.slow
async def test_training_runs_on_the_ssh_host_is_judged_there_and_comes_home(
    tmp_path: Path, tiny_model_dir: Path, ssh_host: SshTarget
) -> None:
    feedback = tmp_path / "run-0001" / "preference.jsonl"
    feedback.parent.mkdir(parents=True)
    write_preference_data(feedback, signals(pairs=2, unpaired=1))
    config_path = write_run(tmp_path / "run-0001", tiny_model_dir, preference_file=feedback)
    events: list[dict[str, Any]] = []
    runner = SshRunner(ssh_host)
    handle = await runner.start(config_path, tmp_path / "run-0001" / "train.log")
    outcome = await runner.follow(handle, events.append)
    assert outcome.succeeded, outcome.error
    adapter = tmp_path / "run-0001" / "output" / "adapter"
    assert outcome.result is not None and outcome.result["adapter_dir"] == str(adapter)
    # The owner's feedback went over too (three signals: too few for the preference stage).
    assert "3 of the 20 signals" in outcome.result["preference"]["note"]
    for name in ("adapter_model.safetensors", "adapter_config.json", "clone.json"):
        assert (adapter / name).is_file(), name
    assert (tmp_path / "run-0001" / "output" / "result.json").is_file()
    assert "eval_loss" in (tmp_path / "run-0001" / "train.log").read_text(encoding="utf-8")
    kinds = [event["event"] for event in events]
    assert kinds.count("start") == 1 and kinds[-1] == "done" and "eval" in kinds
    # The run stays on the host until it is judged there; then the host keeps nothing of it.
    assert handle.remote_dir is not None and Path(handle.remote_dir).is_dir()
    remote = Path(handle.remote_dir)
    readable = [p for p in [remote, *remote.rglob("*")] if p.stat().st_mode & 0o077]
    assert {"train.jsonl", "eval.jsonl", "preference.jsonl"} <= {p.name for p in remote.iterdir()}
    assert not readable, "the run's files on the host are the owner's alone"
    # Judged there, with the serving adapter sent over: as a judge here finds on the same files.
    serving = make_adapter(tiny_model_dir, tmp_path / "serving", seed=2, system_prompt="Я.")
    remote_log = tmp_path / "run-0001" / "judge.log"
    eval_file = tmp_path / "run-0001" / "eval.jsonl"
    on_host = await runner.judge(
        handle, adapter, serving, eval_file, max_length=128, log_path=remote_log
    )
    assert (remote / "serving-adapter" / "clone.json").is_file()
    assert "loading base model" in remote_log.read_text("utf-8")  # the host's stderr came home
    await runner.finish(handle)
    assert list((tmp_path / "gpu-host").iterdir()) == []
    # The same judging here, in this process (a child would run this very function).
    here = await asyncio.to_thread(judge, adapter, serving, eval_file, max_length=128)
    assert on_host.serving is not None and here.serving is not None
    assert on_host.candidate["eval_loss"] == pytest.approx(here.candidate["eval_loss"], rel=1e-5)
    assert on_host.serving["eval_loss"] == pytest.approx(here.serving["eval_loss"], rel=1e-5)
    assert on_host.candidate["eval_loss"] != pytest.approx(on_host.serving["eval_loss"])
    # Its key was remembered in our known_hosts.
    assert ssh_host.known_hosts is not None and ssh_host.known_hosts.read_text().strip()


@pytest.mark.slow
async def test_a_new_runner_follows_the_remote_run_and_cancels_it(
    tmp_path: Path, tiny_model_dir: Path, ssh_host: SshTarget
) -> None:
    run_dir = tmp_path / "run-0002"
    config_path = write_run(run_dir, tiny_model_dir, max_steps=5000, eval_steps=1000)
    first = SshRunner(ssh_host)
    handle = await first.start(config_path, run_dir / "train.log")
    try:
        assert handle.host == ssh_host.label and handle.remote_dir is not None
        seen: list[dict[str, Any]] = []
        following = asyncio.create_task(first.follow(handle, seen.append))
        while not seen and not following.done():
            await asyncio.sleep(0.1)
        first.detach()  # the bot stops; the run goes on on the host
        with pytest.raises(RunDetachedError):
            await following
        os.kill(handle.pid, 0)  # the "remote" host is this machine: the job is alive

        second = SshRunner(ssh_host)
        events: list[dict[str, Any]] = []
        following = asyncio.create_task(second.follow(handle, events.append))
        while not trained_a_step(events) and not following.done():
            await asyncio.sleep(0.1)
        assert events[0] == seen[0]  # replayed from the start of the run
        second.cancel()
        outcome = await asyncio.wait_for(following, timeout=60)
    finally:
        stop_group(handle.pid)
    assert outcome.error == "cancelled" and not outcome.succeeded
    with pytest.raises(ProcessLookupError):
        os.kill(handle.pid, 0)
    assert not (run_dir / "output" / "adapter").exists()


async def test_an_unreachable_host_fails_the_run_with_the_reason(tmp_path: Path) -> None:
    config_path = write_run(tmp_path, "some/model")
    target = SshTarget(host="127.0.0.1", port=free_port(), known_hosts=tmp_path / "kh")
    runner = SshRunner(target, retries=1, retry_seconds=0.05)
    handle = RunHandle(
        "ssh", 4242, config_path, tmp_path / "train.log", host=target.label, remote_dir="/r/1"
    )
    outcome = await runner.follow(handle)
    assert outcome.returncode == 255 and not outcome.succeeded
    assert outcome.error is not None and "lost the connection" in outcome.error
    moved = SshTarget(host="127.0.0.2", port=target.port)
    outcome = await SshRunner(moved).follow(handle)
    assert outcome.error is not None and "TRAIN_SSH_HOST" in outcome.error
