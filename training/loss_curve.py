"""The train/eval loss curves of a finished run, as a PNG for the owner.

Reads the trainer's ``state.log_history`` (saved as ``"log_history"`` in result.json): a list
of dicts, each with a ``step`` and either ``loss`` (a training log) or ``eval_loss`` (an
evaluation); other entries, such as the final ``train_loss`` summary, are ignored.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

Point = tuple[int, float]


class NothingToPlotError(ValueError):
    """The log history holds no loss values with a step."""


@dataclass(frozen=True)
class LossCurve:
    """A drawn loss curve: the PNG and how many points each series got."""

    path: Path
    train_points: int
    eval_points: int


def _point(entry: Mapping[str, Any], key: str) -> Point | None:
    if not isinstance(entry, Mapping):
        return None  # read from result.json, so not guaranteed to be a dict
    step, value = entry.get("step"), entry.get(key)
    if not isinstance(step, int) or isinstance(step, bool):
        return None
    if not isinstance(value, int | float) or isinstance(value, bool):
        return None
    if not math.isfinite(value):
        return None  # a diverged step (nan/inf) would squash the rest of the plot
    return (step, float(value))


def loss_points(log_history: Sequence[Mapping[str, Any]]) -> tuple[list[Point], list[Point]]:
    """(train, eval) points as (step, loss), in step order; unusable entries are skipped."""
    train = [p for e in log_history if (p := _point(e, "loss")) is not None]
    evals = [p for e in log_history if (p := _point(e, "eval_loss")) is not None]
    return sorted(train), sorted(evals)


def save_loss_curve(
    log_history: Sequence[Mapping[str, Any]], path: Path, *, title: str = "Training loss"
) -> LossCurve:
    """Draw train loss and eval loss against step into a PNG at ``path``.

    Either series may be missing or a single point (drawn as markers, so one point shows).
    Raises NothingToPlotError when neither series has a point.
    """
    train, evals = loss_points(log_history)
    if not train and not evals:
        raise NothingToPlotError(
            "the log history has no entries with a step and a finite 'loss' or 'eval_loss'; "
            "nothing to draw"
        )
    import matplotlib

    matplotlib.use("Agg")  # no display on a server; must precede pyplot
    import matplotlib.pyplot as plt
    import numpy

    figure, axes = plt.subplots(figsize=(8, 4.5), dpi=100)
    counts = {"train": 0, "eval": 0}
    try:
        for name, points, color, marker in (
            ("train", train, "#3b7dd8", "." if len(train) > 1 else "o"),
            ("eval", evals, "#d8573b", "o"),
        ):
            if not points:
                continue
            steps, losses = zip(*points, strict=True)
            (line,) = axes.plot(steps, losses, label=f"{name} loss", color=color, marker=marker)
            # Count what matplotlib holds, not what was passed: the test checks the drawing.
            counts[name] = int(numpy.asarray(line.get_xdata()).size)
        axes.set_xlabel("step")
        axes.set_ylabel("loss")
        axes.set_title(title)
        axes.grid(alpha=0.3)
        axes.legend()
        figure.tight_layout()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, format="png")
    finally:
        plt.close(figure)
    return LossCurve(path=path, train_points=counts["train"], eval_points=counts["eval"])
