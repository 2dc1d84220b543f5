"""Prints how long the image build test took, phase by phase, at the end of the pytest run."""

from __future__ import annotations

import pytest

from tests.deploy.image_build import TIMINGS


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if TIMINGS.phases:
        terminalreporter.write_line(f"image build test (tests/deploy): {TIMINGS.summary()}")
