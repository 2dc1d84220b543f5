"""Runs inside the built image, as the image's user, fed to ``python -`` by test_image.py.

argv[1] is JSON: ``{"help": the image's command with --help, "health": {name: exec argv of
each health-check command to try}}`` (one container for all: vfs copies the whole image for
each). Prints one JSON object: what the help command printed and its exit status, who runs,
who owns /data and whether the user can write there, what holds uid 1000 and the base's
``ubuntu`` name, the installed torch, and the exit status of each health-check command
against the bot's own liveness server (``bot.telegram.health.HealthServer`` on the address and port
that the bot's settings read from the image's environment): while the bot counts as running
("serving"), while it does not (503, "stopped"), and with nothing listening ("absent").
"""

from __future__ import annotations

import asyncio
import grp
import importlib.metadata
import json
import os
import pwd
import subprocess
import sys
from pathlib import Path
from typing import Any

DATA = Path("/data")
CHECK_TIMEOUT_S = 60.0


def user_name(uid: int) -> str | None:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return None


def has_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def data_writable() -> bool:
    probe = DATA / ".image-probe"
    try:
        probe.write_text("ok")
        probe.unlink()
    except OSError:
        return False
    return True


async def exit_status(argv: list[str]) -> int:
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
    )
    return await asyncio.wait_for(proc.wait(), CHECK_TIMEOUT_S)


async def health_statuses(commands: dict[str, list[str]]) -> dict[str, dict[str, int]]:
    from bot.settings import load_settings
    from bot.telegram.health import HealthServer

    settings = load_settings()
    state = {"running": True}
    server = HealthServer(
        settings.health_listen,
        settings.health_port,
        is_running=lambda: state["running"],
        adapter=lambda: None,
    )
    results: dict[str, dict[str, int]] = {name: {} for name in commands}
    await server.start()
    try:
        for name, argv in commands.items():
            results[name]["serving"] = await exit_status(argv)
        state["running"] = False
        for name, argv in commands.items():
            results[name]["stopped"] = await exit_status(argv)
    finally:
        await server.close()
    for name, argv in commands.items():
        results[name]["absent"] = await exit_status(argv)
    return results


def main() -> None:
    request: dict[str, Any] = json.loads(sys.argv[1])
    help_run = subprocess.run(
        request["help"], capture_output=True, text=True, timeout=CHECK_TIMEOUT_S, check=False
    )
    data = DATA.stat()
    report: dict[str, Any] = {
        "help": {
            "returncode": help_run.returncode,
            "stdout": help_run.stdout,
            "stderr": help_run.stderr,
        },
        "uid": os.getuid(),
        "gid": os.getgid(),
        "user": user_name(os.getuid()),
        "group": grp.getgrgid(os.getgid()).gr_name,
        "uid_1000": user_name(1000),
        "has_ubuntu": has_user("ubuntu"),
        "data_uid": data.st_uid,
        "data_gid": data.st_gid,
        "data_writable": data_writable(),
        "torch": importlib.metadata.version("torch"),
        "health": asyncio.run(health_statuses(request["health"])),
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
