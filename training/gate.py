"""Whether a new adapter may replace the serving one: it must beat it on the same eval set.

The figures come from one ``training.judge`` process that scored both adapters on the new
run's eval set; a figure stored with the serving adapter (scored on an older eval set) is
never used.
"""

from __future__ import annotations

from dataclasses import dataclass

from training.judge import Judgement


@dataclass(frozen=True)
class GateDecision:
    """The verdict and the figures behind it."""

    promote: bool
    candidate_loss: float
    serving_loss: float | None
    reason: str


def decide(judgement: Judgement, *, serving_exists: bool, min_improvement: float) -> GateDecision:
    """Promote when nothing serves yet, or when the candidate's eval_loss is lower than the
    serving adapter's by at least ``min_improvement``, both from ``judgement``. A candidate
    that cannot be compared (the serving adapter failed to score) is kept, not promoted."""
    candidate = judgement.candidate["eval_loss"]
    if not serving_exists:
        return GateDecision(True, candidate, None, "no adapter was serving")
    if judgement.serving is None:
        reason = (
            "the serving adapter could not be scored on the same eval set "
            f"({judgement.serving_error or 'no figures'}), so the two cannot be compared"
        )
        return GateDecision(False, candidate, None, reason)
    serving = judgement.serving["eval_loss"]
    if serving - candidate >= min_improvement:
        reason = f"eval_loss {candidate:.3f} beats the serving {serving:.3f}"
        return GateDecision(True, candidate, serving, reason)
    reason = (
        f"eval_loss {candidate:.3f} does not beat the serving adapter's "
        f"{serving:.3f} by {min_improvement:g} on the same eval set"
    )
    return GateDecision(False, candidate, serving, reason)
