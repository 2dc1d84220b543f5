"""Which GPUs a run gets: the environment the local and SSH runners give training on hosts with
1, 2 and 4 GPUs (a fake nvidia-smi lists them), and how the recipe's batch spreads over them."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import stat
from collections.abc import Sequence
from pathlib import Path

import pytest

from tests.training.test_runner import write_run
from training.gpus import (
    GpuSelectionError,
    batch_plan,
    local_gpus,
    parse_probe,
    select_gpus,
)
from training.runners import LocalRunner, SshRunner, SshTarget

# What `nvidia-smi --query-gpu=index,uuid,name,memory.total --format=csv,noheader,nounits`
# prints on a host with four H100s.
H100_LINES = [
    f"{index}, GPU-{index}a5e41c7-0000-4000-8000-00000000000{index}, NVIDIA H100 80GB HBM3, 81559"
    for index in range(4)
]


def fake_nvidia_smi(folder: Path, lines: Sequence[str]) -> Path:
    """An ``nvidia-smi`` in ``folder`` that prints ``lines`` whatever it is asked."""
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "nvidia-smi"
    body = "".join(f"echo '{line}'\n" for line in lines)
    script.write_text(f"#!/bin/sh\n{body}", encoding="utf-8")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


def recording_python(folder: Path) -> Path:
    """A stand-in for the training host's Python: it records its environment and arguments."""
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "python"
    script.write_text(
        f'#!/bin/sh\nenv >"{folder}/env.txt"\nprintf "%s\\n" "$@" >"{folder}/args.txt"\n',
        encoding="utf-8",
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


def recorded(folder: Path) -> tuple[dict[str, str], list[str]]:
    env = dict(
        line.split("=", 1)
        for line in (folder / "env.txt").read_text("utf-8").splitlines()
        if "=" in line
    )
    return env, (folder / "args.txt").read_text("utf-8").splitlines()


def test_nvidia_smi_lines_become_gpus_with_index_uuid_name_and_memory() -> None:
    visible, gpus = parse_probe("visible=<unset>\n" + "\n".join(H100_LINES[:2]) + "\n")
    assert visible is None
    assert [(g.index, g.name, g.memory_mib) for g in gpus] == [
        ("0", "NVIDIA H100 80GB HBM3", 81559),
        ("1", "NVIDIA H100 80GB HBM3", 81559),
    ]
    assert gpus[1].known_as("1") and gpus[1].known_as(H100_LINES[1].split(", ")[1])
    assert gpus[0].describe() == "GPU 0: NVIDIA H100 80GB HBM3, 80 GB"
    assert parse_probe("visible=2,3\nNVIDIA-SMI has failed\n") == ("2,3", ())


def test_a_run_takes_the_first_gpus_it_may_use() -> None:
    four = ("0", "1", "2", "3")
    assert select_gpus(four, (), 1) == ("0",)
    assert select_gpus(four, (), 2) == ("0", "1")
    assert select_gpus(four, (), 4) == four
    assert select_gpus(four, ("2", "3"), 1) == ("2",)
    assert select_gpus(four, ("3", "1"), 2) == ("3", "1")
    assert select_gpus((), (), 1) == ()  # no GPU: one process trains on the CPU


@pytest.mark.parametrize(
    ("usable", "allowed", "count", "words"),
    [
        (("0", "1"), (), 4, ["TRAIN_NUM_GPUS=4", "2 GPU(s) (0,1)"]),
        ((), (), 2, ["TRAIN_NUM_GPUS=2", "0 GPU(s)"]),
        (("0", "1"), ("1", "5"), 1, ["TRAIN_GPU_IDS", "GPU 5", "0,1"]),
        (("0", "1", "2"), ("2",), 2, ["TRAIN_GPU_IDS allows 1 GPU(s) (2)"]),
    ],
)
def test_gpus_that_are_not_there_are_refused_saying_what_is(
    usable: tuple[str, ...], allowed: tuple[str, ...], count: int, words: list[str]
) -> None:
    with pytest.raises(GpuSelectionError) as caught:
        select_gpus(usable, allowed, count)
    for word in words:
        assert word in str(caught.value)


@pytest.mark.parametrize(
    ("gpus", "accumulation", "effective"),
    [(1, 4, 16), (2, 2, 16), (4, 1, 16), (3, 1, 12), (8, 1, 32)],
)
def test_the_recipe_batch_is_kept_by_dividing_accumulation(
    gpus: int, accumulation: int, effective: int
) -> None:
    plan = batch_plan(per_device=4, accumulation=4, gpus=gpus)
    assert plan.accumulation == accumulation and plan.recipe == 16
    # Samples per optimiser step: per-device batch on every GPU, accumulated.
    assert plan.effective == effective == 4 * accumulation * gpus
    assert plan.to_dict()["effective_batch"] == effective


async def test_local_gpus_are_read_from_nvidia_smi_on_the_path(tmp_path: Path) -> None:
    fake_nvidia_smi(tmp_path / "bin", H100_LINES[:2])
    gpus = await local_gpus({"PATH": f"{tmp_path / 'bin'}:/usr/bin:/bin"})
    assert [g.index for g in gpus] == ["0", "1"]
    assert await local_gpus({"PATH": str(tmp_path / "empty")}) == ()


@pytest.mark.parametrize(
    ("host_gpus", "num_gpus", "gpu_ids", "visible", "launcher"),
    [
        (4, 1, (), "0", None),
        (4, 1, ("2", "3"), "2", None),
        (4, 2, (), "0,1", "2"),
        (4, 4, (), "0,1,2,3", "4"),
        (2, 2, ("1", "0"), "1,0", "2"),
    ],
)
async def test_the_local_runner_shows_training_exactly_its_gpus(
    tmp_path: Path,
    host_gpus: int,
    num_gpus: int,
    gpu_ids: tuple[str, ...],
    visible: str,
    launcher: str | None,
) -> None:
    fake_nvidia_smi(tmp_path / "bin", H100_LINES[:host_gpus])
    python = recording_python(tmp_path / "py")
    env = {**os.environ, "PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}"}
    env.pop("CUDA_VISIBLE_DEVICES", None)
    runner = LocalRunner(python=str(python), env=env, num_gpus=num_gpus, gpu_ids=gpu_ids)
    config_path = write_run(tmp_path / "run", "some/model")
    handle = await runner.start(config_path, tmp_path / "run" / "train.log")
    await asyncio.wait_for(runner.follow(handle), timeout=30)
    child_env, args = recorded(tmp_path / "py")
    assert child_env["CUDA_VISIBLE_DEVICES"] == visible
    assert child_env["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"  # the ids mean what nvidia-smi says
    _assert_launch(args, launcher, str(config_path))


async def test_gpus_already_hidden_from_the_bot_stay_hidden(tmp_path: Path) -> None:
    fake_nvidia_smi(tmp_path / "bin", H100_LINES)
    python = recording_python(tmp_path / "py")
    env = {**os.environ, "PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}"}
    runner = LocalRunner(python=str(python), env={**env, "CUDA_VISIBLE_DEVICES": "3,1"})
    handle = await runner.start(write_run(tmp_path / "run", "m/m"), tmp_path / "run" / "log")
    await asyncio.wait_for(runner.follow(handle), timeout=30)
    assert recorded(tmp_path / "py")[0]["CUDA_VISIBLE_DEVICES"] == "3"


async def test_a_cpu_machine_trains_on_the_cpu_and_refuses_more_processes(
    tmp_path: Path,
) -> None:
    python = recording_python(tmp_path / "py")
    env = {**os.environ, "PATH": "/usr/bin:/bin"}  # no nvidia-smi
    env.pop("CUDA_VISIBLE_DEVICES", None)
    runner = LocalRunner(python=str(python), env=env)
    handle = await runner.start(write_run(tmp_path / "run", "m/m"), tmp_path / "run" / "log")
    await asyncio.wait_for(runner.follow(handle), timeout=30)
    assert "CUDA_VISIBLE_DEVICES" not in recorded(tmp_path / "py")[0]
    with pytest.raises(GpuSelectionError, match="TRAIN_NUM_GPUS=2"):
        await LocalRunner(python=str(python), env=env, num_gpus=2).start(
            write_run(tmp_path / "run2", "m/m"), tmp_path / "run2" / "log"
        )


@pytest.mark.parametrize(
    ("num_gpus", "gpu_ids", "visible", "launcher"),
    [(1, (), "0", None), (2, (), "0,1", "2"), (4, (), "0,1,2,3", "4"), (1, ("3",), "3", None)],
)
async def test_the_ssh_runner_shows_training_exactly_its_gpus_on_the_host(
    tmp_path: Path,
    ssh_host: SshTarget,
    host_bin: Path,
    num_gpus: int,
    gpu_ids: tuple[str, ...],
    visible: str,
    launcher: str | None,
) -> None:
    fake_nvidia_smi(host_bin, H100_LINES)
    python = recording_python(tmp_path / "host-py")
    target = dataclasses.replace(ssh_host, python=str(python))
    runner = SshRunner(target, num_gpus=num_gpus, gpu_ids=gpu_ids)
    config_path = write_run(tmp_path / "run-0001", "some/model")
    handle = await runner.start(config_path, tmp_path / "run-0001" / "train.log")
    await asyncio.wait_for(runner.follow(handle), timeout=60)
    await runner.finish(handle)
    child_env, args = recorded(tmp_path / "host-py")
    assert child_env["CUDA_VISIBLE_DEVICES"] == visible
    assert child_env["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"
    assert handle.remote_dir is not None
    _assert_launch(args, launcher, f"{handle.remote_dir}/train_config.json")


def _assert_launch(args: list[str], processes: str | None, config: str) -> None:
    """``-m training.train`` alone, or under ``accelerate launch`` with ``processes``."""
    assert args[-4:] == ["-m", "training.train", "--config", config]
    if processes is None:
        assert args == ["-m", "training.train", "--config", config]
        return
    assert args[:2] == ["-m", "accelerate.commands.launch"]
    assert args[args.index("--num_processes") + 1] == processes and "--multi_gpu" in args
