"""What every runner shares: the run handle, the outcome, the command line and its wrapper.

A training process never talks to the bot through a pipe. A small ``sh`` wrapper starts
``python -m training.train`` with its stdout (the JSON events) appended to ``events.jsonl``,
its stderr to ``train.log``, and writes its exit status to ``exit_code`` when it ends. So a
run outlives the bot: a restarted bot finds the process by its pid, checks it is ours, and
follows the same files again.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from training.config import TrainConfig

if TYPE_CHECKING:
    from training.judge import Judgement

EVENTS_FILE = "events.jsonl"
EXIT_CODE_FILE = "exit_code"
PID_FILE = "train.pid"
# $1 events, $2 log, $3 exit-status file, $4 pid file, then the command. The wrapper's own pid
# is the process group (it is started as a session leader), so killing the group stops all.
WRAPPER_SCRIPT = (
    'events=$1 log=$2 status=$3; echo $$ >"$4"; shift 4; '
    '"$@" >>"$events" 2>>"$log" </dev/null; code=$?; echo $code >"$status"; exit $code'
)
EventCallback = Callable[[dict[str, Any]], Awaitable[None] | None]
RunnerKind = Literal["local", "ssh"]


class RunDetachedError(Exception):
    """``follow`` stopped because the bot is shutting down; the training keeps running."""


@dataclass(frozen=True)
class RunHandle:
    """Where a started training process lives: enough to follow it again after a restart.

    ``pid`` is the wrapper's process id on the machine that runs it (this one for ``local``,
    ``host`` for ``ssh``, where ``remote_dir`` holds the run's files).
    """

    runner: RunnerKind
    pid: int
    config_path: Path
    log_path: Path
    host: str | None = None
    remote_dir: str | None = None


@dataclass(frozen=True)
class RunOutcome:
    """How a training process ended.

    ``result`` is the parsed result.json (None when the child wrote none); ``error`` says why
    it failed: the child's one-line error from result.json, else the tail of its stderr.
    """

    returncode: int
    result: dict[str, Any] | None
    error: str | None

    @property
    def succeeded(self) -> bool:
        """True when the process exited 0 and reported success."""
        return (
            self.returncode == 0
            and self.result is not None
            and self.result.get("status") == "succeeded"
        )


class Runner(Protocol):
    """Starts ``training.train`` somewhere, follows it to the end, and judges what it trained
    there (the judge needs that host's accelerator and base model)."""

    kind: RunnerKind

    async def start(self, config_path: Path, log_path: Path) -> RunHandle:
        """Start the training process detached from this one; return where it runs."""
        ...

    async def follow(self, handle: RunHandle, on_event: EventCallback | None = None) -> RunOutcome:
        """Stream its events to ``on_event`` until it ends (also one started by another bot
        process); raises RunDetachedError after ``detach``."""
        ...

    def cancel(self) -> None:
        """Stop the followed process (and everything it started); ``follow`` then returns."""
        ...

    def detach(self) -> None:
        """Stop following without stopping the process (the bot is shutting down)."""
        ...

    async def judge(
        self,
        handle: RunHandle,
        candidate: Path,
        serving: Path | None,
        eval_file: Path,
        *,
        max_length: int,
        log_path: Path,
    ) -> Judgement:
        """Score ``candidate`` (and ``serving``) on the run's eval set where the run trained
        (``training.judge``); JudgeError when the candidate cannot be scored."""
        ...

    async def finish(self, handle: RunHandle) -> None:
        """The run is settled (judged, failed or cancelled): clean up what it left there."""
        ...


def train_command(
    python: str, config_path: str, num_gpus: int = 1, accelerate: bool | None = None
) -> list[str]:
    """The training entry point; through ``accelerate launch`` for more than one GPU (or when
    ``accelerate`` asks for it, e.g. one process on CPU in a test)."""
    if num_gpus < 1:
        raise ValueError(f"num_gpus must be at least 1, got {num_gpus}")
    entry = ["-m", "training.train", "--config", config_path]
    if not (num_gpus > 1 if accelerate is None else accelerate):
        return [python, *entry]
    launch = [python, "-m", "accelerate.commands.launch", "--num_processes", str(num_gpus)]
    launch += ["--num_machines", "1", "--dynamo_backend", "no"]
    if num_gpus > 1:
        launch.append("--multi_gpu")
    return [*launch, *entry]


def wrapped(command: list[str], events: str, log: str, exit_code: str, pid: str) -> list[str]:
    """``command`` under the wrapper that writes events, log, exit status and pid to files."""
    return ["sh", "-c", WRAPPER_SCRIPT, "sh", events, log, exit_code, pid, *command]


def output_dir_of(config_path: Path) -> Path:
    """The run's output directory (adapter, result.json) as its config names it."""
    data = json.loads(Path(config_path).read_text(encoding="utf-8"))
    return TrainConfig.from_dict(data).output_dir
