"""The loss-curve PNG drawn from a trainer's log_history."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import pytest

from training.loss_curve import NothingToPlotError, loss_points, save_loss_curve

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# The shape of transformers' trainer.state.log_history (train logs, evals, the final summary).
HISTORY: list[dict[str, Any]] = [
    {"loss": 11.9, "grad_norm": 3.1, "learning_rate": 0.005, "epoch": 0.2, "step": 2},
    {"loss": 10.4, "grad_norm": 2.7, "learning_rate": 0.004, "epoch": 0.4, "step": 4},
    {"eval_loss": 10.9, "eval_runtime": 0.3, "epoch": 0.4, "step": 4},
    {"loss": 8.8, "grad_norm": 2.2, "learning_rate": 0.003, "epoch": 0.6, "step": 6},
    {"loss": 7.5, "grad_norm": 2.0, "learning_rate": 0.002, "epoch": 0.8, "step": 8},
    {"eval_loss": 8.1, "eval_runtime": 0.3, "epoch": 0.8, "step": 8},
    {"train_runtime": 5.0, "train_loss": 9.6, "epoch": 0.8, "step": 8},
]


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_both_series_are_drawn_into_a_png(tmp_path: Path) -> None:
    curve = save_loss_curve(HISTORY, tmp_path / "plots" / "loss.png")
    assert curve.path == tmp_path / "plots" / "loss.png"
    assert (curve.train_points, curve.eval_points) == (4, 2)
    assert _png_size(curve.path) == (800, 450)


def test_points_are_read_by_step_and_the_summary_is_ignored() -> None:
    train, evals = loss_points(list(reversed(HISTORY)))
    assert train == [(2, 11.9), (4, 10.4), (6, 8.8), (8, 7.5)]
    assert evals == [(4, 10.9), (8, 8.1)]


def test_unusable_entries_are_skipped() -> None:
    history = [
        {"loss": float("nan"), "step": 1},
        {"loss": "3.0", "step": 2},
        {"loss": 2.0},
        {"eval_loss": True, "step": 3},
        {"loss": 1.5, "step": 4},
        "not an entry",
    ]
    assert loss_points(history) == ([(4, 1.5)], [])


@pytest.mark.parametrize(
    ("history", "counts"),
    [
        ([{"eval_loss": 2.0, "step": 5}, {"eval_loss": 1.8, "step": 10}], (0, 2)),
        ([{"loss": 2.0, "step": 1}, {"loss": 1.0, "step": 2}], (2, 0)),
        ([{"loss": 2.0, "step": 1}], (1, 0)),
    ],
)
def test_one_series_or_one_point_still_makes_a_plot(
    tmp_path: Path, history: list[dict[str, Any]], counts: tuple[int, int]
) -> None:
    curve = save_loss_curve(history, tmp_path / "loss.png")
    assert (curve.train_points, curve.eval_points) == counts
    assert _png_size(curve.path) == (800, 450)


def test_nothing_to_draw_is_a_clear_error_and_writes_no_file(tmp_path: Path) -> None:
    target = tmp_path / "loss.png"
    with pytest.raises(NothingToPlotError, match="nothing to draw"):
        save_loss_curve([{"train_loss": 1.0, "step": 3}], target)
    with pytest.raises(ValueError, match="nothing to draw"):
        save_loss_curve([], target)
    assert not target.exists()
