"""A model hub that cannot be reached, for the preflight's tests: an HF_ENDPOINT on 127.0.0.1
that refuses connections or accepts them and never answers (a firewall that drops packets)."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
HUB_MODEL = "Qwen/Qwen2.5-7B-Instruct"


def refused_endpoint() -> str:
    """A port nothing listens on: connections are refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


@pytest.fixture(params=["refused", "silent"])
def unreachable_hub(request: pytest.FixtureRequest) -> Iterator[str]:
    """HF_ENDPOINT of a hub that refuses connections, or accepts them and never answers."""
    if request.param == "refused":
        yield refused_endpoint()
        return
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


QUICK_PROBE_SECONDS = "1"
"""The hub request's limit in these children (HF_HUB_ETAG_TIMEOUT): a silent hub then costs 1 s,
not the default 3 s (tests/training/test_preflight.py runs the default once)."""


def hub_env(
    tmp_path: Path, endpoint: str, probe_seconds: str | None = QUICK_PROBE_SECONDS, **extra: str
) -> dict[str, str]:
    """A child's environment: the hub at ``endpoint``, an HF cache of its own, not offline;
    ``probe_seconds`` as HF_HUB_ETAG_TIMEOUT (None: unset)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    if probe_seconds is not None:
        env["HF_HUB_ETAG_TIMEOUT"] = probe_seconds
    return {
        **env,
        "HF_ENDPOINT": endpoint,
        "HF_HOME": str(tmp_path / "hf-home"),
        "PYTHONPATH": str(ROOT),
        **extra,
    }


def assert_says_how_to_provide(message: str, name: str) -> None:
    """One line that names the model and both ways to provide it."""
    assert name in message
    assert f"hf download {name}" in message  # into the cache...
    assert "BASE_MODEL=/models/" in message  # ...or a folder of its own
    assert "\n" not in message
