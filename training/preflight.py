"""Before anything loads a model: is BASE_MODEL here, and can this machine train it?

``locate_model`` answers in well under a second, without the network when the model is a local
folder or complete in the Hugging Face cache, and with one request of at most
``PROBE_SECONDS`` to the hub otherwise: without it, a missing model on a host with no internet
costs a minute of the hub client's retries before a vague error. What it finds is where to load
from (``ModelSource.path``: a folder, so nothing asks the network again, or the hub id to
download). A missing model stops a training run, the judge and the in-process engine with one
message that names the model and the two ways to provide it; a dataset build goes on with
estimated token counts.

``check_training_hardware`` refuses a base model this machine cannot train (a 7B without a CUDA
GPU, or with too little GPU memory for it in 4-bit), saying what it found and the ways out.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from training.config import TrainConfig
from training.gpus import Gpu, local_selection
from training.settings import PipelineSettings, knob_fields

Needs = Literal["tokenizer", "weights", "all"]
Where = Literal["folder", "cache", "hub"]

PROBE_SECONDS = 3.0
"""Limit of the one hub request's wait (to connect, or for the answer): a firewall that drops
packets costs 3 s, while the hub answers in a fraction of a second. ``HF_HUB_ETAG_TIMEOUT``, the
hub client's own limit for such metadata requests, replaces it where it is set (a slow link)."""
TOKENIZER_FILES = ("tokenizer.json", "vocab.json", "tokenizer.model")
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
WEIGHT_INDEXES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")

QLORA_BYTES_PER_PARAMETER = 0.75
"""4-bit linear layers (0.5 byte) plus the 16-bit embedding and output layers of a Qwen2.5."""
BF16_BYTES_PER_PARAMETER = 2.2
TRAINING_OVERHEAD_GIB = 6.0
"""The recipe's micro-batch (4 × 1,024 tokens): logits over a 152k vocabulary and their
gradient, checkpointed activations, LoRA and optimizer states, the CUDA context."""
CPU_MAX_PARAMETERS = 2_000_000_000
"""Larger bases are refused without a CUDA GPU: days per epoch, and float32 weights in RAM."""
CPU_TRIAL_MODEL = "Qwen/Qwen2.5-0.5B-Instruct"
CPU_TRIAL_TOKENS_PER_SECOND = 5.0
"""Training tokens per second of the recipe on CPU_TRIAL_MODEL's shapes, measured by
benchmarks/cpu_train.py on CPU_TRIAL_CORES shared cores (4.6 and 6 in two runs)."""
CPU_TRIAL_CORES = 2


class PreflightError(RuntimeError):
    """A model or machine that cannot do what is asked; the message says what to change."""


class ModelUnavailableError(PreflightError):
    """BASE_MODEL is neither here nor downloadable now."""


class HardwareError(PreflightError):
    """This machine cannot train BASE_MODEL."""


@dataclass(frozen=True)
class ModelSource:
    """Where a model is: ``path`` is what ``from_pretrained`` gets."""

    name: str
    """The model as configured (BASE_MODEL, or clone.json's base_model)."""
    path: str
    """A folder (local, or the cache's snapshot), or the hub id when it must be downloaded."""
    where: Where
    parameters: int | None = None
    """Its size when known (safetensors headers, or the hub's figure)."""


def probe_seconds() -> float:
    """How long the hub request may wait: ``HF_HUB_ETAG_TIMEOUT`` if set, else PROBE_SECONDS."""
    value = os.environ.get("HF_HUB_ETAG_TIMEOUT", "").strip()
    if not value:
        return PROBE_SECONDS
    try:
        seconds = float(value)
    except ValueError:
        seconds = 0.0
    if not seconds > 0:
        raise ValueError(f"HF_HUB_ETAG_TIMEOUT must be a number of seconds above 0, not {value!r}")
    return seconds


def locate_model(name: str, needs: Needs = "all", *, timeout: float | None = None) -> ModelSource:
    """Where ``name`` can be loaded from for ``needs``; ModelUnavailableError says why not.
    ``timeout`` None: ``probe_seconds()``."""
    folder = Path(name).expanduser()
    if folder.is_dir():
        missing = missing_files(folder, needs)
        if missing:
            raise ModelUnavailableError(
                f"BASE_MODEL folder {folder} lacks {', '.join(missing)}. " + _ways(name)
            )
        return ModelSource(name, str(folder), "folder", count_parameters(folder))
    if name.startswith((".", "/", "~")) or name.count("/") > 1:
        raise ModelUnavailableError(f"BASE_MODEL folder {folder} does not exist. " + _ways(name))
    return _locate_on_hub(name, needs, probe_seconds() if timeout is None else timeout)


def _locate_on_hub(repo_id: str, needs: Needs, timeout: float) -> ModelSource:
    from huggingface_hub import constants, try_to_load_from_cache
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError as exc:
        raise ModelUnavailableError(
            f"BASE_MODEL {repo_id!r} is neither a folder here nor a hub model id ({exc}). "
            + _ways(repo_id)
        ) from exc
    snapshot = None
    for anchor in ("tokenizer_config.json", "config.json"):
        cached = try_to_load_from_cache(repo_id, anchor)
        if isinstance(cached, str):
            snapshot = Path(cached).parent
            break
    if snapshot is not None and not missing_files(snapshot, needs):
        return ModelSource(repo_id, str(snapshot), "cache", count_parameters(snapshot))
    in_cache = "partly in" if snapshot is not None else "not in"
    cache = constants.HF_HUB_CACHE
    here = f"{repo_id} is not a folder here and {in_cache} the Hugging Face cache ({cache})"
    if constants.HF_HUB_OFFLINE:
        raise ModelUnavailableError(f"{here}, and HF_HUB_OFFLINE is set. " + _ways(repo_id))
    return ModelSource(repo_id, repo_id, "hub", _hub_parameters(repo_id, here, timeout))


def _hub_parameters(repo_id: str, here: str, timeout: float) -> int | None:
    """Ask the hub about ``repo_id`` once, through the hub client's own session (its proxy and
    certificates, HF_TOKEN): its size, or why it cannot be downloaded."""
    from huggingface_hub import constants, get_token
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError
    from huggingface_hub.utils import get_session, hf_raise_for_status, httpx

    token = get_token()
    # Not build_hf_headers(): its user agent first fetches a registry from the hub, 3 s more.
    headers = {"authorization": f"Bearer {token}"} if token else {}
    try:
        response = get_session().get(
            f"{constants.ENDPOINT}/api/models/{repo_id}",
            headers=headers,
            params={"expand[]": "safetensors"},
            timeout=httpx.Timeout(timeout),
        )
        hf_raise_for_status(response)
        info = response.json()
    except GatedRepoError as exc:
        raise ModelUnavailableError(
            f"{here}, and the hub lets only approved accounts download it: accept its terms "
            "on huggingface.co and set HF_TOKEN. " + _ways(repo_id)
        ) from exc
    except RepositoryNotFoundError as exc:
        raise ModelUnavailableError(
            f"{repo_id} is not a model on the hub ({constants.ENDPOINT}); check BASE_MODEL."
        ) from exc
    except (httpx.HTTPError, ValueError) as exc:
        reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise ModelUnavailableError(
            f"{here}, and the hub ({constants.ENDPOINT}) cannot be reached: {reason}. "
            + _ways(repo_id)
        ) from exc
    safetensors = info.get("safetensors") if isinstance(info, dict) else None
    total = safetensors.get("total") if isinstance(safetensors, dict) else None
    return int(total) if isinstance(total, int) else None


def _ways(name: str) -> str:
    """The two ways to provide a model, for any message that says it is missing."""
    short = name.rstrip("/").split("/")[-1] or "model"
    return (
        f"Provide it either way: download it into the Hugging Face cache on a machine with "
        f"internet (`hf download {name}`; `huggingface-cli download` in older releases) and "
        f"copy the cache here (HF_HOME; HF_HUB_OFFLINE=1 then keeps the hub out of it), or put "
        f"it in a folder (`hf download {name} --local-dir /models/{short}`) and set "
        f"BASE_MODEL=/models/{short}."
    )


def missing_files(folder: Path, needs: Needs) -> list[str]:
    """What ``folder`` lacks of a model's tokenizer and/or weights (empty: complete)."""
    missing = []
    if needs in ("tokenizer", "all"):
        if not (folder / "tokenizer_config.json").is_file():
            missing.append("tokenizer_config.json")
        if not any((folder / name).is_file() for name in TOKENIZER_FILES):
            missing.append(" or ".join(TOKENIZER_FILES))
    if needs in ("weights", "all"):
        if not (folder / "config.json").is_file():
            missing.append("config.json")
        missing += _missing_weights(folder)
    return missing


def _missing_weights(folder: Path) -> list[str]:
    if any((folder / name).is_file() for name in WEIGHT_FILES):
        return []
    for index in WEIGHT_INDEXES:
        if (folder / index).is_file():
            shards = sorted(set(_weight_map(folder / index).values()))
            return [shard for shard in shards if not (folder / shard).is_file()]
    return ["the weights (" + " or ".join(WEIGHT_FILES + WEIGHT_INDEXES) + ")"]


def _weight_map(index: Path) -> dict[str, str]:
    try:
        data = json.loads(index.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    weight_map = data.get("weight_map") if isinstance(data, dict) else None
    return {str(k): str(v) for k, v in weight_map.items()} if isinstance(weight_map, dict) else {}


def count_parameters(folder: Path) -> int | None:
    """Parameters of the safetensors weights in ``folder``, from their headers alone."""
    files = [folder / "model.safetensors"]
    if not files[0].is_file():
        index = folder / "model.safetensors.index.json"
        files = [folder / shard for shard in sorted(set(_weight_map(index).values()))]
    if not files or not all(path.is_file() for path in files):
        return None
    total = 0
    for path in files:
        try:
            with path.open("rb") as handle:
                (length,) = struct.unpack("<Q", handle.read(8))
                header = json.loads(handle.read(length))
        except (OSError, ValueError, struct.error):
            return None
        for key, tensor in header.items():
            if key != "__metadata__" and isinstance(tensor, dict):
                total += math.prod(int(d) for d in tensor.get("shape", []))
    return total


def training_memory_gib(parameters: int, quantized: bool) -> float:
    """GPU memory the recipe needs to train a base of ``parameters`` (an estimate)."""
    per_parameter = QLORA_BYTES_PER_PARAMETER if quantized else BF16_BYTES_PER_PARAMETER
    return parameters * per_parameter / 2**30 + TRAINING_OVERHEAD_GIB


def check_training_hardware(model: ModelSource, gpus: Sequence[Gpu], quantized: bool) -> None:
    """Refuse a base that the GPUs a run gets (none: the CPU) cannot train; HardwareError says
    what was found and the ways out. A model of unknown size passes."""
    if model.parameters is None:
        return
    size = f"{model.name} ({model.parameters / 1e9:.1f}B parameters)"
    over_ssh = "train on a GPU host over SSH (TRAIN_RUNNER=ssh, TRAIN_SSH_HOST; README: GPU hosts)"
    if not gpus:
        if model.parameters <= CPU_MAX_PARAMETERS:
            return
        raise HardwareError(
            f"{size} cannot be trained here: this machine has no CUDA GPU (nvidia-smi lists "
            f"none). Either {over_ssh}, or try the clone on this CPU with a small base: "
            f"{cpu_trial_estimate()}"
        )
    need = training_memory_gib(model.parameters, quantized)
    small = [gpu for gpu in gpus if gpu.memory_mib / 1024 < need]
    if small:
        precision = "4-bit" if quantized else "bf16"
        raise HardwareError(
            f"{size} needs a CUDA GPU with about {need:.0f} GB to train in {precision}; this run "
            f"would get {'; '.join(gpu.describe() for gpu in small)}. Either {over_ssh} with "
            f"a bigger GPU, or choose a smaller BASE_MODEL (Qwen/Qwen2.5-3B-Instruct needs about "
            f"{training_memory_gib(3_090_000_000, quantized):.0f} GB, "
            f"{CPU_TRIAL_MODEL} about {training_memory_gib(494_000_000, quantized):.0f} GB)."
        )


def cpu_trial_estimate(train_tokens: int = 100_000, epochs: float = 5.0) -> str:
    """How long the recipe takes on a CPU with CPU_TRIAL_MODEL (measured, see its constants)."""
    hours = train_tokens * epochs / CPU_TRIAL_TOKENS_PER_SECOND / 3600
    return (
        f"BASE_MODEL={CPU_TRIAL_MODEL} trains at about {CPU_TRIAL_TOKENS_PER_SECOND:.0f} tokens/s "
        f"on {CPU_TRIAL_CORES} CPU cores (benchmarks/cpu_train.py), so {epochs:.0f} epochs of "
        f"{train_tokens:,} training tokens take about {hours:.1f} hours there (more cores: "
        "proportionally less)."
    )


async def preflight_run(
    settings: PipelineSettings, runner: Literal["local", "ssh"]
) -> ModelSource:
    """Before a run starts: BASE_MODEL where the dataset is built (its tokenizer) and, for a
    local run, trained (everything), and the GPUs a local run gets can train it.

    Raises PreflightError (or ``GpuSelectionError``) with what to change.
    """
    needs: Needs = "all" if runner == "local" else "tokenizer"
    model = await asyncio.to_thread(locate_model, settings.base_model_id(), needs)
    if runner == "local":
        selected, gpus = await local_selection(None, settings.gpu_ids, settings.train_num_gpus)
        quantization = knob_fields(settings, TrainConfig).get("quantization", "auto")
        if not selected or gpus:  # GPUs it cannot tell apart (no nvidia-smi) pass
            check_training_hardware(model, gpus, quantized=quantization != "none")
    return model
