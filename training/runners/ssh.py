"""Train on a GPU host over SSH: copy the run over, start it detached, follow it, fetch it home,
judge it there, then remove it from the host.

Only the OpenSSH command-line client is used (``BatchMode``, ``accept-new`` host keys kept in
a known_hosts file of our own), and ``sh``, ``tar``, ``tail`` and ``setsid`` on the host. The
host needs a Python with tgclone installed (``TRAIN_SSH_PYTHON``). A base model given as a
local directory must exist at the same path on the host; a hub id is fetched there. The judge
runs on the host too (its GPU, its copy of the base model, the precision the adapter was trained
in), with the serving adapter copied over beside the new one. Training and judge see the GPUs
``training.gpus`` chooses among the host's (nvidia-smi there).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import shlex
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from storage.private_files import open_private
from training.config import TrainConfig
from training.gpus import REMOTE_PROBE, gpu_environment, parse_probe, select_gpus, usable_ids
from training.quiz_set import QUIZ_FILE
from training.runners.base import (
    EVENTS_FILE,
    EXIT_CODE_FILE,
    PID_FILE,
    EventCallback,
    RunDetachedError,
    RunHandle,
    RunnerKind,
    RunOutcome,
    train_command,
    wrapped,
)
from training.runners.events import (
    EventReader,
    deliver,
    failure_reason,
    last_json_line,
    read_exit_code,
)
from training.runners.transfer import (
    EVAL_NAME,
    TRAIN_NAME,
    pack_directory,
    pack_run,
    unpack_run,
)
from training.train import ADAPTER_DIRNAME, RESULT_FILE

if TYPE_CHECKING:
    from training.judge import Judgement

logger = logging.getLogger(__name__)

CONFIG_NAME = "train_config.json"
LOG_NAME = "train.log"
SERVING_DIR = "serving-adapter"  # the serving adapter, copied beside the new one to judge both
JUDGE_PID = "judge.pid"
REMOTE_GONE = 97  # our own exit status: the run directory on the host does not exist
SSH_FAILED = 255  # ssh's exit status when it could not connect or lost the connection
RETRIES = 3
RETRY_SECONDS = 5.0


class SshError(RuntimeError):
    """An ssh command failed; the message names the host and what ssh said."""


@dataclass(frozen=True)
class SshTarget:
    """How to reach the GPU host and where tgclone lives there."""

    host: str
    port: int = 22
    user: str = ""
    key_path: Path | None = None
    known_hosts: Path | None = None
    """Host keys are accepted on first use and kept here (None: ssh's own file)."""
    work_dir: str = "tgclone-runs"
    """Run directories go under this directory on the host (relative: the login's home)."""
    python: str = "python3"

    @property
    def label(self) -> str:
        """``user@host:port``: names the host in messages and in the runs table."""
        user = f"{self.user}@" if self.user else ""
        return f"{user}{self.host}:{self.port}"

    def command(self, remote: str) -> list[str]:
        """The ssh command line that runs the shell command ``remote`` on the host."""
        args = ["ssh", "-p", str(self.port), "-o", "BatchMode=yes"]
        args += ["-o", "StrictHostKeyChecking=accept-new", "-o", "ConnectTimeout=20"]
        args += ["-o", "ServerAliveInterval=15", "-o", "ServerAliveCountMax=4"]
        if self.known_hosts is not None:
            args += ["-o", f"UserKnownHostsFile={self.known_hosts}"]
        if self.key_path is not None:
            args += ["-i", str(self.key_path), "-o", "IdentitiesOnly=yes"]
        if self.user:
            args += ["-l", self.user]
        return [*args, self.host, f"umask 077; {remote}"]  # the run's files are the owner's alone


def _is_ours(pid: int, config: str) -> str:
    """Shell test: ``pid`` still runs training with this config (pids get reused)."""
    args = f"tr '\\000' '\\n' </proc/{pid}/cmdline 2>/dev/null"
    return f"{args} | grep -qxF -- {shlex.quote(config)}"


class SshRunner:
    """Runs ``training.train`` on an SSH host; survives the bot restarting (``follow``)."""

    kind: RunnerKind = "ssh"

    def __init__(
        self,
        target: SshTarget,
        num_gpus: int = 1,
        accelerate: bool | None = None,
        retries: int = RETRIES,
        retry_seconds: float = RETRY_SECONDS,
        gpu_ids: Sequence[str] = (),
    ) -> None:
        """``retries`` reconnections, ``retry_seconds`` apart, before the host counts as lost;
        ``gpu_ids``: the host's GPUs a run may use (TRAIN_GPU_IDS; empty: all)."""
        self.target = target
        self._gpu_ids = tuple(gpu_ids)
        self._num_gpus = num_gpus
        self._accelerate = accelerate
        self._retries = retries
        self._retry_seconds = retry_seconds
        self._handle: RunHandle | None = None
        self._cancelled = False
        self._detached = False
        self._wake = asyncio.Event()

    @property
    def pid(self) -> int | None:
        """The training wrapper's pid on the host; None before it starts."""
        return self._handle.pid if self._handle is not None else None

    async def run(
        self, config_path: Path, log_path: Path, on_event: EventCallback | None = None
    ) -> RunOutcome:
        """Run one training to completion on the host, streaming events to ``on_event``."""
        return await self.follow(await self.start(config_path, log_path), on_event)

    async def start(self, config_path: Path, log_path: Path) -> RunHandle:
        """Copy dataset and config to the host and start training there, detached."""
        config_path = Path(config_path).resolve()
        run_dir = config_path.parent
        config = TrainConfig.from_dict(json.loads(config_path.read_text(encoding="utf-8")))
        if self.target.known_hosts is not None:
            self.target.known_hosts.parent.mkdir(parents=True, exist_ok=True)
        work = shlex.quote(f"{self.target.work_dir.rstrip('/')}/{run_dir.name}")
        out = await self._ssh(f'mkdir -p {work} && cd {work} && echo "dir=$(pwd)"; {REMOTE_PROBE}')
        probe = out.decode(errors="replace")
        remote_dir = [line[4:] for line in probe.splitlines() if line.startswith("dir=")][-1]
        gpus = self._gpu_env(probe, self._num_gpus)
        remote_config = dataclasses.replace(
            config,
            train_file=Path(remote_dir) / TRAIN_NAME,
            eval_file=Path(remote_dir) / EVAL_NAME,
            output_dir=Path(remote_dir) / "output",
            preference_file=_remote_preference_file(config, remote_dir),
        )
        bundle = run_dir / "upload.tar"
        await asyncio.to_thread(pack_run, bundle, config, remote_config, CONFIG_NAME)
        try:
            await self._ssh(f"tar -C {shlex.quote(remote_dir)} -xf -", stdin=bundle)
        finally:
            bundle.unlink(missing_ok=True)
        remote_config_path = f"{remote_dir}/{CONFIG_NAME}"
        command = gpus + train_command(
            self.target.python, remote_config_path, self._num_gpus, self._accelerate
        )
        job = shlex.join(wrapped(command, EVENTS_FILE, LOG_NAME, EXIT_CODE_FILE, PID_FILE))
        stale = f"{EVENTS_FILE} {EXIT_CODE_FILE} {PID_FILE} {LOG_NAME} output/{RESULT_FILE}"
        script = (
            f"cd {shlex.quote(remote_dir)} && rm -f {stale} && "
            f"(setsid {job} >/dev/null 2>&1 </dev/null &) && i=0; "
            f"while [ ! -s {PID_FILE} ] && [ $i -lt 200 ]; do sleep 0.1; i=$((i+1)); done; "
            f"cat {PID_FILE}"
        )
        out = await self._ssh(script)
        try:
            pid = int(out.decode().strip())
        except ValueError as exc:
            raise SshError(f"training did not start on {self.target.label}") from exc
        self._handle = RunHandle(
            "ssh", pid, config_path, log_path, host=self.target.label, remote_dir=remote_dir
        )
        logger.info("training started on %s, pid %s", self.target.label, pid)
        return self._handle

    async def follow(self, handle: RunHandle, on_event: EventCallback | None = None) -> RunOutcome:
        """Stream events from the host until training ends, then fetch log, result, adapter."""
        self._handle = handle
        if handle.host != self.target.label or handle.remote_dir is None:
            return RunOutcome(
                -1,
                None,
                f"the run was started on {handle.host}, but the training host is now "
                f"{self.target.label} (TRAIN_SSH_HOST/PORT/USER changed)",
            )
        reader = EventReader()
        failures = 0
        while True:
            code, stderr = await self._stream(handle, reader, on_event)
            if code == REMOTE_GONE:
                return RunOutcome(-1, None, f"the run directory on {handle.host} is gone")
            if code != SSH_FAILED:
                break
            failures += 1
            if failures > self._retries:
                return RunOutcome(SSH_FAILED, None, self._lost(stderr))
            logger.warning("lost %s (%s); reconnecting", handle.host, stderr)
            await asyncio.sleep(self._retry_seconds)
        return await self._collect(handle)

    def cancel(self) -> None:
        """Stop the training on the host (its whole process group); ``follow`` then returns."""
        self._cancelled = True
        self._wake.set()

    def detach(self) -> None:
        """Stop following; the training on the host keeps running."""
        self._detached = True
        self._wake.set()

    async def _stream(
        self, handle: RunHandle, reader: EventReader, on_event: EventCallback | None
    ) -> tuple[int, str]:
        """One ``tail`` of events.jsonl over ssh, from where the last one stopped."""
        config = f"{handle.remote_dir}/{CONFIG_NAME}"
        offset = reader.consumed + 1
        script = (
            f"cd {shlex.quote(str(handle.remote_dir))} 2>/dev/null || exit {REMOTE_GONE}; "
            f"if {_is_ours(handle.pid, config)}; then "
            f"exec tail --pid={handle.pid} -c +{offset} -F {EVENTS_FILE} 2>/dev/null; fi; "
            f"[ -f {EVENTS_FILE} ] && exec tail -c +{offset} {EVENTS_FILE}; exit 0"
        )
        process = await asyncio.create_subprocess_exec(
            *self.target.command(script),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        pump = asyncio.create_task(self._pump(process, reader, on_event))
        killed = False
        try:
            while not pump.done():
                if self._cancelled and not killed:
                    killed = True
                    await self._kill(handle)
                if self._detached:
                    raise RunDetachedError(f"stopped following training on {handle.host}")
                wake = asyncio.create_task(self._wake.wait())
                await asyncio.wait({pump, wake}, return_when=asyncio.FIRST_COMPLETED)
                wake.cancel()
                self._wake.clear()
            await pump
        finally:
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pump
            await process.wait()
        assert process.stderr is not None
        stderr = (await process.stderr.read()).decode(errors="replace").strip()
        return int(process.returncode or 0), stderr

    @staticmethod
    async def _pump(
        process: asyncio.subprocess.Process, reader: EventReader, on_event: EventCallback | None
    ) -> None:
        assert process.stdout is not None
        while chunk := await process.stdout.read(65536):
            await deliver(reader.feed(chunk), on_event)

    async def _kill(self, handle: RunHandle) -> None:
        config = f"{handle.remote_dir}/{CONFIG_NAME}"
        with contextlib.suppress(SshError):
            # The wrapper leads its own process group: the group is the whole training.
            group = f"kill -TERM -{handle.pid}"
            await self._ssh(f"if {_is_ours(handle.pid, config)}; then {group}; fi")

    async def _collect(self, handle: RunHandle) -> RunOutcome:
        """Fetch exit status, log, result.json and adapter; then remove the run on the host."""
        assert handle.remote_dir is not None
        run_dir = handle.config_path.parent
        staging = run_dir / "from-host"
        archive = run_dir / "from-host.tar"
        names = f"{EXIT_CODE_FILE} {LOG_NAME} output/{RESULT_FILE} output/{ADAPTER_DIRNAME}"
        script = (
            f"cd {shlex.quote(handle.remote_dir)} || exit {REMOTE_GONE}; set --; "
            f'for f in {names}; do [ -e "$f" ] && set -- "$@" "$f"; done; tar -cf - "$@"'
        )
        for attempt in range(self._retries + 1):
            try:
                await self._ssh(script, stdout=archive)
                break
            except SshError as exc:
                if attempt == self._retries:
                    return RunOutcome(SSH_FAILED, None, self._lost(str(exc)))
                await asyncio.sleep(self._retry_seconds)
        output_dir = TrainConfig.from_dict(
            json.loads(handle.config_path.read_text(encoding="utf-8"))
        ).output_dir
        result = await asyncio.to_thread(
            unpack_run, archive, staging, handle.log_path, output_dir, LOG_NAME
        )
        returncode = read_exit_code(staging / EXIT_CODE_FILE)
        shutil.rmtree(staging, ignore_errors=True)
        archive.unlink(missing_ok=True)
        logger.info("training on %s finished, returncode %s", handle.host, returncode)
        if self._cancelled and returncode != 0:
            return RunOutcome(returncode or -1, result, "cancelled")
        error = None
        if returncode != 0:
            error = failure_reason(returncode, result, handle.log_path, str(handle.host))
        return RunOutcome(-1 if returncode is None else returncode, result, error)

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
        """Judge the new adapter on the host, where it was trained (the run's files are still
        there until ``finish``); the serving adapter goes over first. ``eval_file`` is the
        host's copy of the run's (uploaded at ``start``)."""
        from training.judge import judge_args, judgement_of

        assert handle.remote_dir is not None
        remote = shlex.quote(handle.remote_dir)
        gpus = self._gpu_env((await self._ssh(f"cd {remote} && {REMOTE_PROBE}")).decode(), 1)
        serving_arg = None
        if serving is not None:
            bundle = handle.config_path.parent / "serving-adapter.tar"
            await asyncio.to_thread(pack_directory, serving, bundle)
            target = f"{remote}/{SERVING_DIR}"
            try:
                await self._ssh(
                    f"rm -rf {target} && mkdir {target} && tar -C {target} -xf -", bundle
                )
            finally:
                bundle.unlink(missing_ok=True)
            serving_arg = SERVING_DIR
        args = judge_args(f"output/{ADAPTER_DIRNAME}", serving_arg, EVAL_NAME, max_length)
        command = shlex.join([*gpus, self.target.python, "-m", "training.judge", *args])
        script = f"cd {remote} || exit {REMOTE_GONE}; echo $$ >{JUDGE_PID}; exec {command}"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("ab") as log:
            process = await asyncio.create_subprocess_exec(
                *self.target.command(script),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=log,
            )
            try:
                stdout, _ = await process.communicate()
            except asyncio.CancelledError:
                with contextlib.suppress(SshError):  # ssh gone is not the judge gone
                    await self._ssh(f'cd {remote} && kill -TERM "$(cat {JUDGE_PID})"')
                raise
        returncode = process.returncode if process.returncode is not None else -1
        judgement = judgement_of(last_json_line(stdout), returncode, log_path, candidate.name)
        # The new adapter's quiz set is written beside the host's copy of it: bring it home.
        quiz = shlex.quote(f"{handle.remote_dir}/output/{ADAPTER_DIRNAME}/{QUIZ_FILE}")
        with contextlib.suppress(SshError):
            await self._ssh(f"cat {quiz}", stdout=candidate / QUIZ_FILE)
        return judgement

    async def finish(self, handle: RunHandle) -> None:
        """Remove the run from the host (it was fetched and judged, or it failed)."""
        if handle.remote_dir is not None:
            with contextlib.suppress(SshError):
                await self._ssh(f"rm -rf {shlex.quote(handle.remote_dir)}")

    def _gpu_env(self, probe: str, count: int) -> list[str]:
        """``env VAR=…`` that shows a command exactly the host GPUs it gets (none: empty)."""
        visible, gpus = parse_probe(probe)
        selected = select_gpus(usable_ids(gpus, visible), self._gpu_ids, count)
        assignments = [f"{key}={value}" for key, value in gpu_environment(selected).items()]
        return ["env", *assignments] if assignments else []

    def _lost(self, detail: str) -> str:
        detail = detail.strip().splitlines()[-1] if detail.strip() else "no answer"
        return f"lost the connection to the training host {self.target.label}: {detail}"

    async def _ssh(
        self, remote: str, stdin: Path | None = None, stdout: Path | None = None
    ) -> bytes:
        """Run one command on the host and return its stdout; SshError unless it exits 0."""
        with contextlib.ExitStack() as files:
            pipe = asyncio.subprocess
            source = files.enter_context(stdin.open("rb")) if stdin else pipe.DEVNULL
            sink: Any = files.enter_context(open_private(stdout, "wb")) if stdout else pipe.PIPE
            process = await asyncio.create_subprocess_exec(
                *self.target.command(remote),
                stdin=source,
                stdout=sink,
                stderr=asyncio.subprocess.PIPE,
            )
            out, err = await process.communicate()
        if process.returncode != 0:
            message = err.decode(errors="replace").strip()[-500:]
            raise SshError(
                f"ssh {self.target.label} exited {process.returncode}: {message or 'no output'}"
            )
        return out or b""


def _remote_preference_file(config: TrainConfig, remote_dir: str) -> Path | None:
    """Where the owner's feedback goes on the host (None: the run has none to send)."""
    local = config.preference_file
    if local is None or not local.exists():
        return None
    return Path(remote_dir) / local.name
