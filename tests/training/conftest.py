"""Fixtures of the training tests: a real OpenSSH server on 127.0.0.1 as the "GPU host"."""

from __future__ import annotations

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

import pytest

from tests.tiny_model import torch_env
from training.runners import SshTarget

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _keygen(path: Path) -> None:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)],
        check=True,
        stdin=subprocess.DEVNULL,
    )


def _torch_settings() -> str:
    """The suite's torch settings (``tests.tiny_model.torch_env``) as ``SetEnv`` words."""
    return "".join(f" {name}={value}" for name, value in torch_env().items())


@pytest.fixture
def host_bin(tmp_path: Path) -> Path:
    """A folder first on the SSH host's PATH (empty unless a test puts commands there)."""
    folder = tmp_path / "host-bin"
    folder.mkdir(exist_ok=True)
    return folder


@pytest.fixture
def ssh_host(tmp_path: Path, host_bin: Path) -> Iterator[SshTarget]:
    """sshd on a free 127.0.0.1 port, for the current user, with keys made for this test."""
    if not Path(SSHD).is_file() or shutil.which("ssh-keygen") is None:
        pytest.skip("OpenSSH server not installed (apt-get install openssh-server)")
    keys = tmp_path / "ssh"
    keys.mkdir()
    _keygen(keys / "host_key")
    _keygen(keys / "client_key")
    shutil.copyfile(keys / "client_key.pub", keys / "authorized_keys")
    port = free_port()
    config = keys / "sshd_config"
    config.write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {keys / 'host_key'}\n"
        f"AuthorizedKeysFile {keys / 'authorized_keys'}\nPidFile {keys / 'sshd.pid'}\n"
        "StrictModes no\nUsePAM no\nPasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\n"
        # Nothing may come from a model hub in tests, on the "GPU host" either; its own bin
        # folder comes first (a test may put a fake nvidia-smi there, see ``host_bin``). The
        # host is this machine: its torch processes are set up as the suite's are.
        f"SetEnv HF_HUB_OFFLINE=1 PATH={host_bin}:/usr/local/bin:/usr/bin:/bin"
        f"{_torch_settings()}\n",
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
