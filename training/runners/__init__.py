"""Where training runs: ``LocalRunner`` (this machine) and ``SshRunner`` (a GPU host)."""

from training.runners.base import RunDetachedError, RunHandle, Runner, RunOutcome, train_command
from training.runners.local import LocalRunner
from training.runners.ssh import SshRunner, SshTarget

__all__ = [
    "LocalRunner",
    "RunDetachedError",
    "RunHandle",
    "RunOutcome",
    "Runner",
    "SshRunner",
    "SshTarget",
    "train_command",
]
