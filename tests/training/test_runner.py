"""Local runner: the command line, and a run that outlives the process that started it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from training.chat_format import ChatMessage
from training.config import DEFAULT_SYSTEM_PROMPT, DatasetConfig, TrainConfig
from training.dataset import write_jsonl
from training.runners import LocalRunner, RunDetachedError, train_command
from training.runners.base import EXIT_CODE_FILE
from training.runners.local import PROJECT_ROOT, is_our_process

OFFLINE_ENV = {**os.environ, "HF_HUB_OFFLINE": "1"}


def write_run(tmp_path: Path, base_model: str | Path, **overrides: Any) -> Path:
    """Train/eval JSONL and a short CPU TrainConfig in ``tmp_path``; return the config path."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    samples: list[list[ChatMessage]] = [
        [
            {"role": "system", "content": DEFAULT_SYSTEM_PROMPT},
            {"role": "user", "content": f"question {index} about the weekend?"},
            {"role": "assistant", "content": "sure thing, see you at the old cafe"},
        ]
        for index in range(20)
    ]
    write_jsonl(tmp_path / "train.jsonl", samples[:16])
    write_jsonl(tmp_path / "eval.jsonl", samples[16:])
    values: dict[str, Any] = {
        "base_model": str(base_model),
        "train_file": tmp_path / "train.jsonl",
        "eval_file": tmp_path / "eval.jsonl",
        "output_dir": tmp_path / "output",
        "learning_rate": 5e-3,
        "warmup_ratio": 0.0,
        "max_steps": 4,
        "eval_steps": 2,
        "logging_steps": 1,
        "per_device_train_batch_size": 2,
        "per_device_eval_batch_size": 2,
        "gradient_accumulation_steps": 1,
        "early_stopping_patience": 10,
        "dataset": DatasetConfig(max_seq_tokens=128),
    }
    values.update(overrides)
    config = TrainConfig(**values)
    config.validate()
    path = tmp_path / "train_config.json"
    path.write_text(json.dumps(config.to_dict()), encoding="utf-8")
    return path


def test_a_child_leaves_everything_written_and_skips_the_teardown(tmp_path: Path) -> None:
    """What the training and judging processes end with: their parent reads it all."""
    script = (
        "import atexit, logging, sys\n"
        "from pathlib import Path\n"
        "from training.child_exit import exit_child\n"
        "logging.basicConfig(filename=sys.argv[1], level=logging.INFO)\n"
        "atexit.register(lambda: print('teardown', file=sys.stderr))\n"
        "logging.getLogger('run').info('the log line')\n"
        'sys.stdout.write(\'{"event": "done"}\')  # buffered: a pipe, no newline\n'
        "exit_child(3)\n"
    )
    log = tmp_path / "child.log"
    buffered = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    done = subprocess.run(
        [sys.executable, "-c", script, str(log)],
        cwd=PROJECT_ROOT,
        env=buffered,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 3
    assert done.stdout == '{"event": "done"}' and "the log line" in log.read_text("utf-8")
    assert "teardown" not in done.stderr


def test_one_gpu_runs_the_module_more_go_through_accelerate_launch() -> None:
    plain = ["py", "-m", "training.train", "--config", "/r/c.json"]
    assert train_command("py", "/r/c.json") == plain
    command = train_command("py", "/r/c.json", num_gpus=4)
    assert command[:3] == ["py", "-m", "accelerate.commands.launch"]
    assert command[command.index("--num_processes") + 1] == "4" and "--multi_gpu" in command
    assert command[-4:] == ["-m", "training.train", "--config", "/r/c.json"]
    single = train_command("py", "/r/c.json", accelerate=True)
    assert single[single.index("--num_processes") + 1] == "1" and "--multi_gpu" not in single


def test_only_a_training_process_with_this_config_counts_as_ours(tmp_path: Path) -> None:
    assert not is_our_process(os.getpid(), tmp_path / "train_config.json")
    assert not is_our_process(2**22 + 12345, tmp_path / "train_config.json")


@pytest.mark.slow
async def test_a_new_runner_follows_a_run_through_accelerate_launch(
    tmp_path: Path, tiny_model_dir: Path, request: pytest.FixtureRequest
) -> None:
    """The bot that started the run goes away; a fresh runner (not its parent) follows it."""
    config_path = write_run(tmp_path, tiny_model_dir)
    first = LocalRunner(env=OFFLINE_ENV, accelerate=True)
    handle = await first.start(config_path, tmp_path / "train.log")
    request.addfinalizer(lambda: stop_group(handle.pid))
    seen: list[dict[str, Any]] = []
    first_follow = asyncio.create_task(first.follow(handle, seen.append))
    while not seen and not first_follow.done():
        await asyncio.sleep(0.1)
    first.detach()
    try:
        await first_follow
        raise AssertionError("follow should stop once detached")
    except RunDetachedError:
        pass
    assert is_our_process(handle.pid, handle.config_path)

    events: list[dict[str, Any]] = []
    outcome = await LocalRunner(env=OFFLINE_ENV).follow(handle, events.append)
    assert outcome.succeeded, outcome.error
    assert outcome.returncode == 0 and (tmp_path / EXIT_CODE_FILE).read_text().strip() == "0"
    assert outcome.result is not None
    assert Path(outcome.result["adapter_dir"]) == tmp_path / "output" / "adapter"
    assert (tmp_path / "output" / "adapter" / "adapter_model.safetensors").is_file()
    kinds = [event["event"] for event in events]
    # One process under accelerate launch: every event exactly once, from the start.
    assert kinds.count("start") == 1 and kinds[-1] == "done" and kinds.count("done") == 1
    assert kinds.index("start") < kinds.index("eval")
    assert "eval" in kinds


def stop_group(pid: int) -> None:
    """Test cleanup: a run the test left behind must not go on training."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def trained_a_step(events: list[dict[str, Any]]) -> bool:
    return any(event.get("step", 0) >= 1 for event in events)


@pytest.mark.slow
async def test_a_killed_training_process_fails_with_the_reason(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    config_path = write_run(tmp_path, tiny_model_dir, max_steps=5000, eval_steps=1000)
    runner = LocalRunner(env=OFFLINE_ENV)
    handle = await runner.start(config_path, tmp_path / "train.log")
    try:
        events: list[dict[str, Any]] = []
        follow = asyncio.create_task(LocalRunner(env=OFFLINE_ENV).follow(handle, events.append))
        while not trained_a_step(events) and not follow.done():
            await asyncio.sleep(0.1)
        assert not follow.done(), follow.result()
        # What the kernel's OOM killer does: SIGKILL to the python process, not its wrapper.
        children = Path(f"/proc/{handle.pid}/task/{handle.pid}/children").read_text().split()
        assert len(children) == 1
        os.kill(int(children[0]), signal.SIGKILL)
        outcome = await asyncio.wait_for(follow, timeout=60)
    finally:
        stop_group(handle.pid)
    assert not outcome.succeeded and outcome.returncode == 137
    assert outcome.error is not None and "killed" in outcome.error and "memory" in outcome.error
    assert not (tmp_path / "output" / "adapter").exists()
