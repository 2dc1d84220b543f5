"""Which GPUs a training run (or the judge) gets, and how the recipe's batch spreads over them.

The host's GPUs are what ``nvidia-smi`` lists (index, name, memory), or, where the process is
already limited by ``CUDA_VISIBLE_DEVICES``, those ids in that order. A run takes the first
``TRAIN_NUM_GPUS`` of the ones it may use (``TRAIN_GPU_IDS``, else all), and the child process
sees exactly those: ``CUDA_VISIBLE_DEVICES`` set to them, ``CUDA_DEVICE_ORDER=PCI_BUS_ID``.
Without that, CUDA numbers the GPUs fastest first while nvidia-smi (and so TRAIN_GPU_IDS,
VLLM_GPU_IDS and compose's device ids) numbers them by PCI bus, and on a host with mixed
cards "GPU 1" would be two different cards.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

NVIDIA_SMI_QUERY = (
    "nvidia-smi",
    "--query-gpu=index,uuid,name,memory.total",
    "--format=csv,noheader,nounits",
)
REMOTE_PROBE = (
    'printf "visible=%s\\n" "${CUDA_VISIBLE_DEVICES-<unset>}"; '
    + " ".join(NVIDIA_SMI_QUERY)
    + " 2>/dev/null || true"
)
"""Shell: the GPUs of a host (over SSH), read by ``parse_probe``."""
PROBE_SECONDS = 10.0
VISIBLE = "CUDA_VISIBLE_DEVICES"
NO_GPU_VALUES = ("", "-1", "none", "void", "NoDevFiles")
"""``CUDA_VISIBLE_DEVICES`` values that hide every GPU."""


class GpuSelectionError(ValueError):
    """The GPUs asked for are not there; the message names the settings and what was found."""


@dataclass(frozen=True)
class Gpu:
    """One GPU as nvidia-smi lists it."""

    index: str
    name: str
    memory_mib: int
    uuid: str = ""

    def known_as(self, gpu_id: str) -> bool:
        """True when ``gpu_id`` (an index or a UUID, as CUDA_VISIBLE_DEVICES has them) is it."""
        return gpu_id in (self.index, self.uuid)

    def describe(self) -> str:
        """``GPU 0: NVIDIA H100 80GB HBM3, 80 GB``."""
        return f"GPU {self.index}: {self.name}, {self.memory_mib / 1024:.0f} GB"


def parse_nvidia_smi(text: str) -> tuple[Gpu, ...]:
    """The GPUs of ``NVIDIA_SMI_QUERY``'s output (index, uuid, name, memory: csv, no units)."""
    gpus = []
    for line in text.splitlines():
        parts = [part.strip() for part in line.split(",")]
        if len(parts) < 4 or not parts[0].isdigit():
            continue
        try:
            memory = int(float(parts[-1]))
        except ValueError:
            continue
        gpus.append(Gpu(parts[0], ", ".join(parts[2:-1]), memory, uuid=parts[1]))
    return tuple(gpus)


def parse_probe(text: str) -> tuple[str | None, tuple[Gpu, ...]]:
    """``REMOTE_PROBE``'s output: the host's CUDA_VISIBLE_DEVICES (None: unset) and GPUs."""
    visible: str | None = None
    for line in text.splitlines():
        if line.startswith("visible="):
            value = line.removeprefix("visible=")
            visible = None if value == "<unset>" else value
    return visible, parse_nvidia_smi(text)


async def local_gpus(env: Mapping[str, str] | None = None) -> tuple[Gpu, ...]:
    """This machine's GPUs (none without nvidia-smi or a driver), found on ``env``'s PATH."""
    path = (env if env is not None else os.environ).get("PATH")
    executable = shutil.which(NVIDIA_SMI_QUERY[0], path=path)
    if executable is None:
        return ()
    try:
        process = await asyncio.create_subprocess_exec(
            executable,
            *NVIDIA_SMI_QUERY[1:],
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
            env=dict(env) if env is not None else None,
        )
        out, _ = await asyncio.wait_for(process.communicate(), PROBE_SECONDS)
    except (OSError, TimeoutError):
        return ()
    # nvidia-smi without a working driver exits non-zero and lists nothing.
    return parse_nvidia_smi(out.decode(errors="replace")) if process.returncode == 0 else ()


def usable_ids(gpus: Sequence[Gpu], visible: str | None) -> tuple[str, ...]:
    """The GPU ids a process may use: ``CUDA_VISIBLE_DEVICES`` when it is set, else all."""
    if visible is None:
        return tuple(gpu.index for gpu in gpus)
    if visible.strip() in NO_GPU_VALUES:
        return ()
    return tuple(part.strip() for part in visible.split(",") if part.strip())


def select_gpus(usable: Sequence[str], allowed: Sequence[str], count: int) -> tuple[str, ...]:
    """The first ``count`` of the GPUs a run may use (``allowed`` = TRAIN_GPU_IDS, else all).

    None at all is fine for one process (it trains on the CPU); asking for more GPUs than
    there are, or for ids the host does not have, is an error that says what was found.
    """
    found = ",".join(usable) if usable else "none"
    if allowed:
        unknown = [gpu for gpu in allowed if gpu not in usable]
        if unknown:
            raise GpuSelectionError(
                f"TRAIN_GPU_IDS names GPU {','.join(unknown)}, but the GPUs here are {found} "
                "(nvidia-smi's ids); fix TRAIN_GPU_IDS or leave it empty to use any"
            )
    pool = tuple(allowed) if allowed else tuple(usable)
    if not pool and count == 1:
        return ()
    if len(pool) < count:
        source = "TRAIN_GPU_IDS allows" if allowed else "this machine has"
        raise GpuSelectionError(
            f"TRAIN_NUM_GPUS={count}, but {source} {len(pool)} GPU(s) ({','.join(pool) or found})"
            "; lower TRAIN_NUM_GPUS or give more ids in TRAIN_GPU_IDS"
        )
    return pool[:count]


def gpu_environment(selected: Sequence[str]) -> dict[str, str]:
    """The environment that shows a child process exactly ``selected`` (none: unchanged)."""
    if not selected:
        return {}
    return {VISIBLE: ",".join(selected), "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}


def chosen(gpus: Sequence[Gpu], selected: Sequence[str]) -> list[Gpu]:
    """The ``gpus`` that ``selected`` names (by index or UUID)."""
    return [gpu for gpu in gpus if any(gpu.known_as(gpu_id) for gpu_id in selected)]


async def local_selection(
    env: Mapping[str, str] | None, allowed: Sequence[str], count: int
) -> tuple[tuple[str, ...], list[Gpu]]:
    """The ids a local child of ``count`` processes gets, and those GPUs as nvidia-smi lists
    them (fewer when it cannot tell: ids from CUDA_VISIBLE_DEVICES without nvidia-smi)."""
    base = env if env is not None else os.environ
    gpus = await local_gpus(base)
    selected = select_gpus(usable_ids(gpus, base.get(VISIBLE)), allowed, count)
    return selected, chosen(gpus, selected)


async def run_environment(
    env: Mapping[str, str] | None, allowed: Sequence[str], count: int
) -> dict[str, str]:
    """``env`` (None: this process's) with the GPUs a local child of ``count`` processes gets."""
    selected, _gpus = await local_selection(env, allowed, count)
    return {**(env if env is not None else os.environ), **gpu_environment(selected)}


@dataclass(frozen=True)
class BatchPlan:
    """How the recipe's batch is made on ``gpus`` processes."""

    gpus: int
    per_device: int
    accumulation: int
    recipe: int
    """The effective batch the recipe asks for (per-device batch × accumulation, one GPU)."""

    @property
    def effective(self) -> int:
        """Samples per optimiser step, over every GPU."""
        return self.per_device * self.accumulation * self.gpus

    def to_dict(self) -> dict[str, int]:
        return {
            "gpus": self.gpus,
            "per_device_batch": self.per_device,
            "gradient_accumulation_steps": self.accumulation,
            "effective_batch": self.effective,
            "recipe_batch": self.recipe,
        }


def batch_plan(per_device: int, accumulation: int, gpus: int) -> BatchPlan:
    """The recipe's effective batch kept on ``gpus`` processes by dividing accumulation.

    When it does not divide evenly (16 on 3 GPUs of 4 samples) the nearest effective batch is
    taken, at least one micro-batch per GPU; ``BatchPlan.effective`` says what it became.
    """
    if min(per_device, accumulation, gpus) < 1:
        raise ValueError("per-device batch, accumulation and GPUs must all be >= 1")
    recipe = per_device * accumulation
    steps = max(1, round(recipe / (per_device * gpus)))
    return BatchPlan(gpus=gpus, per_device=per_device, accumulation=steps, recipe=recipe)


def process_count() -> int:
    """Processes of this training run: ``accelerate launch``'s count, else 1."""
    from accelerate import PartialState

    return int(PartialState().num_processes)


def process_gpu() -> list[Gpu]:
    """The CUDA GPU this process uses (its rank's under ``accelerate launch``)."""
    import torch

    index = torch.cuda.current_device()
    props = torch.cuda.get_device_properties(index)
    return [Gpu(str(index), str(props.name), int(props.total_memory) // 2**20)]
