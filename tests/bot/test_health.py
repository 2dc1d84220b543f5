"""GET /health: 200 while the bot runs and its loop answers, 503 when stalled or stopped."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from bot.telegram.health import HealthServer
from tests.bot.conftest import bot_settings, running_clone
from tests.bot.scripted_engine import ScriptedEngine
from tests.fake_telegram.server import FakeTelegramServer


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_health_of_the_running_bot(
    fake_telegram: FakeTelegramServer, tmp_path: Path
) -> None:
    port = free_port()
    settings = bot_settings(fake_telegram, tmp_path / "data", health_port=port)
    url = f"http://127.0.0.1:{port}"
    async with running_clone(settings, lambda _: ScriptedEngine()), httpx.AsyncClient() as client:
        health = await client.get(f"{url}/health")
        missing = await client.get(f"{url}/metrics")
        posted = await client.post(f"{url}/health")
    assert health.status_code == 200
    body = health.json()
    assert body["status"] == "ok" and body["adapter"] == "scripted"
    assert isinstance(body["loop_lag_ms"], float) and body["loop_lag_ms"] >= 0
    assert missing.status_code == 404
    assert posted.status_code == 405
    with pytest.raises(httpx.ConnectError):  # closed in post_shutdown
        async with httpx.AsyncClient() as client:
            await client.get(f"{url}/health")


async def test_no_endpoint_when_health_port_is_zero(
    fake_telegram: FakeTelegramServer, tmp_path: Path
) -> None:
    async with running_clone(bot_settings(fake_telegram, tmp_path / "data")) as app:
        assert "health_server" not in app.bot_data


async def test_a_stalled_loop_or_a_stopped_bot_answers_503() -> None:
    running = True
    server = HealthServer(
        "127.0.0.1",
        0,
        is_running=lambda: running,
        adapter=lambda: None,
        beat_seconds=0.02,
        stale_seconds=0.2,
    )
    await server.start()
    try:
        assert server.report()[0] == 200
        time.sleep(0.4)  # block the event loop, as a synchronous model call would
        status, body = server.report()
        assert (status, body["status"]) == (503, "stalled")
        assert body["loop_lag_ms"] >= 200
        for _ in range(100):  # the heartbeat catches up once the loop is free again
            if server.report()[0] == 200:
                break
            await asyncio.sleep(0.02)
        async with httpx.AsyncClient() as client:
            answer = await client.get(f"http://127.0.0.1:{server.port}/health")
        assert answer.status_code == 200 and answer.json()["adapter"] is None
        running = False
        async with httpx.AsyncClient() as client:
            answer = await client.get(f"http://127.0.0.1:{server.port}/health")
        assert (answer.status_code, answer.json()["status"]) == (503, "stopped")
    finally:
        await server.close()


ROOT = Path(__file__).resolve().parents[2]


def _compose() -> dict[str, Any]:
    loaded = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def _dockerfile_healthcheck() -> list[str]:
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8").replace("\\\n", " ")
    line = next(line for line in text.splitlines() if line.startswith("HEALTHCHECK"))
    command = json.loads(line[line.index("CMD") + 3 :].strip())
    assert isinstance(command, list)
    return [str(part) for part in command]


async def _exit_code(argv: list[str], env: dict[str, str]) -> int:
    # A child process, so the loop keeps serving /health while the check runs.
    process = await asyncio.create_subprocess_exec(
        *argv,
        env={**os.environ, **env},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    return await process.wait()


def test_compose_file_wires_bot_vllm_volume_and_healthchecks() -> None:
    compose = _compose()
    bot, vllm = compose["services"]["bot"], compose["services"]["vllm"]
    assert bot["build"] == "." and bot["env_file"] == ".env"
    assert bot["restart"] == "unless-stopped"
    assert "data:/data" in bot["volumes"]
    assert bot["environment"]["HEALTH_PORT"] == "8080"
    assert "http://127.0.0.1:8080/health" in bot["healthcheck"]["test"][-1]
    assert vllm["profiles"] == ["vllm"]
    assert vllm["image"].startswith("vllm/vllm-openai")
    command = " ".join(vllm["command"])
    assert "--enable-lora --max-lora-rank 64 --max-loras 2" in command
    assert vllm["command"][:2] == ["--model", "${BASE_MODEL:-Qwen/Qwen2.5-7B-Instruct}"]
    assert vllm["environment"]["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] == "True"
    assert "data:/data:ro" in vllm["volumes"]
    assert set(compose["volumes"]) >= {"data"}
    for service in (bot, vllm):
        [device] = service["deploy"]["resources"]["reservations"]["devices"]
        assert device["capabilities"] == ["gpu"]


async def test_container_healthchecks_pass_and_fail_with_the_endpoint() -> None:
    running = True
    server = HealthServer("127.0.0.1", 0, is_running=lambda: running, adapter=lambda: None)
    await server.start()
    port = str(server.port)
    compose_check = _compose()["services"]["bot"]["healthcheck"]["test"][1:]
    compose_check[-1] = compose_check[-1].replace("8080", port)
    docker_check = _dockerfile_healthcheck()
    checks = [[sys.executable, *compose_check[1:]], [sys.executable, *docker_check[1:]]]
    try:
        assert [await _exit_code(c, {"HEALTH_PORT": port}) for c in checks] == [0, 0]
        running = False  # 503
        assert [await _exit_code(c, {"HEALTH_PORT": port}) for c in checks] == [1, 1]
    finally:
        await server.close()
    assert [await _exit_code(c, {"HEALTH_PORT": port}) for c in checks] == [1, 1]
