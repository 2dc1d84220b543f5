"""SSH runner against a real OpenSSH server on 127.0.0.1, started by the test."""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.training.test_runner import stop_group, trained_a_step, write_run
from training.chat_format import ChatMessage
from training.config import DEFAULT_SYSTEM_PROMPT
from training.preference_data import PreferenceData, write_preference_data
from training.runners import RunDetachedError, RunHandle, SshRunner, SshTarget

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _keygen(path: Path) -> None:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)],
        check=True,
        stdin=subprocess.DEVNULL,
    )


@pytest.fixture
def ssh_host(tmp_path: Path) -> Iterator[SshTarget]:
    """sshd on a free 127.0.0.1 port, for the current user, with keys made for this test."""
    if not Path(SSHD).is_file() or shutil.which("ssh-keygen") is None:
        pytest.skip("OpenSSH server not installed (apt-get install openssh-server)")
    keys = tmp_path / "ssh"
    keys.mkdir()
    _keygen(keys / "host_key")
    _keygen(keys / "client_key")
    shutil.copyfile(keys / "client_key.pub", keys / "authorized_keys")
    port = _free_port()
    config = keys / "sshd_config"
    config.write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {keys / 'host_key'}\n"
        f"AuthorizedKeysFile {keys / 'authorized_keys'}\nPidFile {keys / 'sshd.pid'}\n"
        "StrictModes no\nUsePAM no\nPasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\n"
        # Nothing may come from a model hub in tests, on the "GPU host" either.
        "SetEnv HF_HUB_OFFLINE=1\n",
        encoding="utf-8",
    )
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege separation directory
    log = (keys / "sshd.log").open("wb")
    server = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stderr=log)
    try:
        for _ in range(200):
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            if server.poll() is not None:
                pytest.fail(f"sshd did not start: {(keys / 'sshd.log').read_text()}")
            time.sleep(0.05)  # polling the port: sshd has no readiness signal
        yield SshTarget(
            host="127.0.0.1",
            port=port,
            user=getpass.getuser(),
            key_path=keys / "client_key",
            known_hosts=tmp_path / "data" / "ssh_known_hosts",
            work_dir=str(tmp_path / "gpu-host"),
            python=sys.executable,
        )
    finally:
        server.terminate()
        server.wait(timeout=10)
        log.close()


async def test_training_runs_on_the_ssh_host_and_the_adapter_comes_home(
    tmp_path: Path, tiny_model_dir: Path, ssh_host: SshTarget
) -> None:
    feedback = tmp_path / "run-0001" / "preference.jsonl"
    feedback.parent.mkdir(parents=True)
    write_preference_data(feedback, _three_signals())
    config_path = write_run(tmp_path / "run-0001", tiny_model_dir, preference_file=feedback)
    events: list[dict[str, Any]] = []
    runner = SshRunner(ssh_host)
    outcome = await runner.run(config_path, tmp_path / "run-0001" / "train.log", events.append)
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
    # The host keeps nothing of the run; its key was remembered in our known_hosts.
    assert list((tmp_path / "gpu-host").iterdir()) == []
    assert ssh_host.known_hosts is not None and ssh_host.known_hosts.read_text().strip()


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
    target = SshTarget(host="127.0.0.1", port=_free_port(), known_hosts=tmp_path / "kh")
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


def _three_signals() -> PreferenceData:
    prompt: list[ChatMessage] = [
        {"role": "system", "content": DEFAULT_SYSTEM_PROMPT},
        {"role": "user", "content": "coming tonight?"},
    ]
    return PreferenceData(
        pairs=[{"prompt": prompt, "chosen": "sure, at 8", "rejected": "As an AI, no"}],
        unpaired=[
            {"prompt": prompt, "completion": "yes", "label": True},
            {"prompt": prompt, "completion": "Certainly! Here is", "label": False},
        ],
    )
