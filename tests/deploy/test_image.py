"""The project's Dockerfile really builds and runs (issue #16).

Built with buildah from a debootstrapped Debian base that, like Ubuntu 24.04, already has a
uid-1000 user, with torch pointed at the CPU wheel through ``TORCH_INDEX_URL``; then the image
runs once with podman, as its own user, with a probe (image_probe.py) that runs the image's
command with ``--help`` and reports the user, /data, and what the image's HEALTHCHECK (and
docker-compose.yml's) get from the bot's own ``GET /health``. Everything is built, run and
removed in the module's fixture, so the storage (vfs copies whole images) is gone before the
assertions run, also after a failure.

Needs root and Debian's buildah, podman, runc and debootstrap, and reaches deb.debian.org and
PyPI: about 4 minutes on a 2-core machine (printed at the end of the pytest run).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
import yaml

from bot.telegram.health import HEALTH_PATH
from tests.deploy.image_build import (
    BASE_TAG,
    BASE_UID,
    BASE_USER,
    REPO,
    TIMINGS,
    TORCH_INDEX_MOUNT,
    ImageWorkspace,
    dockerfile_arg_default,
    missing_requirements,
    tail,
)

pytestmark = [pytest.mark.image, pytest.mark.timeout(1200)]

APP_UID = 1000  # the Dockerfile's default APP_UID / APP_GID


@dataclass
class BuiltImage:
    """What the fixture found out before it removed everything."""

    base_passwd: str
    config: dict[str, Any]
    probe: dict[str, Any]


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    return loaded


def exec_argv(test: list[str]) -> list[str]:
    """A Docker health check's test (["CMD", ...] or ["CMD-SHELL", "..."]) as an exec argv."""
    kind, *rest = test
    if kind == "CMD":
        return rest
    if kind == "CMD-SHELL":
        return ["/bin/sh", "-c", rest[0]]
    raise AssertionError(f"not a health check command: {test!r}")


def image_env(config: dict[str, Any]) -> dict[str, str]:
    pairs = (item.split("=", 1) for item in config["Config"]["Env"])
    return {name: value for name, value in pairs}


@pytest.fixture(scope="module")
def built_image() -> BuiltImage:
    reason = missing_requirements()
    if reason is not None:
        pytest.skip(reason)
    workspace = ImageWorkspace()
    try:
        with TIMINGS.phase("debootstrap"):
            workspace.debootstrap()
        with TIMINGS.phase("base import"):
            workspace.import_base()
        with TIMINGS.phase("torch index"):
            workspace.make_torch_index(dockerfile_arg_default("TORCH_VERSION"))
        with TIMINGS.phase("build"):
            build = workspace.build(
                {"BASE_IMAGE": BASE_TAG, "TORCH_INDEX_URL": f"file://{TORCH_INDEX_MOUNT}"}
            )
        if build.returncode != 0:
            pytest.fail(
                f"buildah bud failed (exit {build.returncode}):\n"
                f"{tail(build.stdout + build.stderr)}"
            )
        with TIMINGS.phase("runs"):
            config = workspace.image_config()
            bot = compose()["services"]["bot"]
            probe = workspace.probe(
                [config["Config"]["Cmd"][0], "--help"],
                {
                    "image": exec_argv(config["Healthcheck"]["Test"]),
                    "compose": exec_argv(bot["healthcheck"]["test"]),
                },
            )
        return BuiltImage(workspace.base_passwd, config, probe)
    finally:
        with TIMINGS.phase("cleanup"):
            workspace.cleanup()


def test_the_base_has_ubuntus_uid_1000_user(built_image: BuiltImage) -> None:
    # What made `useradd --uid 1000` fail on nvidia/cuda's Ubuntu 24.04.
    assert f"\n{BASE_USER}:x:{BASE_UID}:{BASE_UID}:" in "\n" + built_image.base_passwd


def test_its_command_runs_with_help(built_image: BuiltImage) -> None:
    assert built_image.config["Config"]["Cmd"] == ["tgclone", "run"]
    result = built_image.probe["help"]
    assert result["returncode"] == 0, tail(result["stdout"] + result["stderr"])
    assert result["stdout"].startswith("usage: tgclone")
    assert "{run,import,dataset,train}" in result["stdout"]


def test_it_runs_as_the_non_root_bot_user_who_owns_data(built_image: BuiltImage) -> None:
    probe = built_image.probe
    assert built_image.config["Config"]["User"] == "tgclone"
    assert (probe["uid"], probe["gid"]) == (APP_UID, APP_UID)
    assert (probe["user"], probe["group"]) == ("tgclone", "tgclone")
    # The base's uid-1000 user gave its ids up to the bot's.
    assert probe["uid_1000"] == "tgclone"
    assert not probe["has_ubuntu"]
    assert (probe["data_uid"], probe["data_gid"]) == (APP_UID, APP_UID)
    assert probe["data_writable"]
    assert "/data" in built_image.config["Config"]["Volumes"]
    assert image_env(built_image.config)["DATA_DIR"] == "/data"


def test_torch_came_from_the_index_build_arg(built_image: BuiltImage) -> None:
    # The CPU wheel of the test's index, not PyPI's CUDA build.
    assert built_image.probe["torch"] == dockerfile_arg_default("TORCH_VERSION") + "+cpu"


def test_the_healthcheck_is_the_bots_health_endpoint(built_image: BuiltImage) -> None:
    healthcheck = built_image.config["Healthcheck"]
    assert HEALTH_PATH in " ".join(healthcheck["Test"])
    # Against the bot's health server on the port the image's settings give: healthy while the bot
    # runs, unhealthy on its 503 and with nothing listening.
    assert built_image.probe["health"]["image"] == {"serving": 0, "stopped": 1, "absent": 1}


def test_compose_matches_the_image(built_image: BuiltImage) -> None:
    bot = compose()["services"]["bot"]
    env = image_env(built_image.config)
    assert str(bot["environment"]["HEALTH_PORT"]) == env["HEALTH_PORT"]
    assert str(bot["environment"]["DATA_DIR"]) == env["DATA_DIR"]
    assert "data:/data" in bot["volumes"]
    assert built_image.probe["health"]["compose"] == {"serving": 0, "stopped": 1, "absent": 1}
