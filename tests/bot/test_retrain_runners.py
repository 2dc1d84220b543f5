"""Which runner the settings choose, and what a misconfigured SSH runner tells the owner."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bot.settings import Settings
from training.prepare import RunSetupError
from training.runners import LocalRunner, SshRunner
from training.runners.factory import make_runner


def _settings(tmp_path: Path, **values: Any) -> Settings:
    return Settings(_env_file=None, data_dir=tmp_path / "data", **values)  # type: ignore[call-arg]


def test_local_is_the_default_runner(tmp_path: Path) -> None:
    assert isinstance(make_runner(_settings(tmp_path)), LocalRunner)


def test_the_ssh_runner_is_built_from_the_train_ssh_settings(tmp_path: Path) -> None:
    runner = make_runner(
        _settings(
            tmp_path,
            train_runner="ssh",
            train_ssh_host="gpu.example.org",
            train_ssh_port=2222,
            train_ssh_user="trainer",
            train_ssh_key_path=tmp_path / "id_ed25519",
            train_ssh_python="/opt/tgclone/bin/python",
            train_num_gpus=2,
        )
    )
    assert isinstance(runner, SshRunner)
    target = runner.target
    assert target.label == "trainer@gpu.example.org:2222"
    assert target.known_hosts == tmp_path / "data" / "ssh_known_hosts"
    command = target.command("true")
    assert command[0] == "ssh" and "BatchMode=yes" in command
    assert "StrictHostKeyChecking=accept-new" in command
    assert f"UserKnownHostsFile={tmp_path / 'data' / 'ssh_known_hosts'}" in command
    assert command[-2:] == ["gpu.example.org", "umask 077; true"]  # owner-only files there


def test_ssh_without_a_host_says_which_setting_is_missing(tmp_path: Path) -> None:
    with pytest.raises(RunSetupError, match="TRAIN_SSH_HOST"):
        make_runner(_settings(tmp_path, train_runner="ssh"))


def test_bad_runner_settings_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="train_runner"):
        _settings(tmp_path, train_runner="slurm")
    with pytest.raises(ValueError, match="train_num_gpus"):
        _settings(tmp_path, train_num_gpus=0)
