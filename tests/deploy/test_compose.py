"""docker-compose.yml: GPUs reserved by id for each service, and vLLM serving the NF4 base the
adapters are trained and judged on."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import yaml

from bot.settings import Settings

REPO = Path(__file__).resolve().parents[2]


def services() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((REPO / "docker-compose.yml").read_text("utf-8"))
    return dict(loaded["services"])


def gpu_reservation(service: dict[str, Any]) -> dict[str, Any]:
    [device] = service["deploy"]["resources"]["reservations"]["devices"]
    return dict(device)


def test_each_service_reserves_its_gpus_by_id_not_all_of_them() -> None:
    bot, vllm = services()["bot"], services()["vllm"]
    assert gpu_reservation(bot) == {
        "driver": "nvidia",
        "device_ids": ["${TRAIN_GPU_IDS:-0}"],
        "capabilities": ["gpu"],
    }
    assert gpu_reservation(vllm)["device_ids"] == ["${VLLM_GPU_IDS:-0}"]
    assert "count" not in gpu_reservation(vllm)


def test_inside_the_bot_container_every_reserved_gpu_is_the_bots() -> None:
    """The host's ids are renumbered from 0 in the container: the host's list must not apply."""
    environment = services()["bot"]["environment"]
    assert environment["TRAIN_GPU_IDS"] == ""
    # Empty means "any" to the bot, whatever .env says of the host's ids.
    settings = Settings(_env_file=None, train_gpu_ids=environment["TRAIN_GPU_IDS"])  # type: ignore[call-arg]
    assert settings.gpu_ids == ()


def test_vllm_serves_the_base_in_nf4_with_lora() -> None:
    command = [str(part) for part in services()["vllm"]["command"]]
    pairs = dict(itertools.pairwise(command))
    assert pairs["--quantization"] == "bitsandbytes" and pairs["--dtype"] == "bfloat16"
    assert "--enable-lora" in command


def test_the_gpu_settings_are_documented() -> None:
    example = (REPO / ".env.example").read_text("utf-8")
    assert "# TRAIN_GPU_IDS=" in example and "# VLLM_GPU_IDS=" in example
