"""Whether a new adapter may replace the serving one: it must beat it on the same eval set."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GateDecision:
    """The verdict and the figures behind it."""

    promote: bool
    candidate_loss: float
    serving_loss: float | None
    reason: str


def decide(
    candidate_loss: float, serving_loss: float | None, min_improvement: float
) -> GateDecision:
    """Promote when nothing serves yet, or when the candidate's eval_loss is lower by at least
    `min_improvement` than the serving adapter's, both scored on the new run's eval set."""
    if serving_loss is None:
        return GateDecision(True, candidate_loss, None, "no adapter was serving")
    gain = serving_loss - candidate_loss
    if gain >= min_improvement:
        reason = f"eval_loss {candidate_loss:.3f} beats the serving {serving_loss:.3f}"
        return GateDecision(True, candidate_loss, serving_loss, reason)
    reason = (
        f"eval_loss {candidate_loss:.3f} does not beat the serving adapter's "
        f"{serving_loss:.3f} by {min_improvement:g} on the same eval set"
    )
    return GateDecision(False, candidate_loss, serving_loss, reason)
