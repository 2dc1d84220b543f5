"""Judge a new adapter in one process: it and the serving adapter scored on one eval set, then
its style checks, with the base model loaded once.

Run as ``python -m training.judge --candidate DIR [--serving DIR] --eval-file eval.jsonl``; it
prints one JSON line (``Judgement.to_dict``) or ``{"error": ...}`` with exit status 1 when the
candidate itself cannot be scored. The candidate and the serving adapter are loaded on the same
base model in turn (PEFT adapters by name) and scored by ``training.evaluate.score_samples`` on
the same samples, each with its own clone.json and tokenizer, so the quality gate compares like
with like; a serving adapter of another base model gets that model loaded in its place. A
serving adapter that cannot be scored is reported (``serving_error``), not a failure: the gate
then keeps the candidate. The candidate's replies to held-out conversations
(``training.style_eval``) give the style figures.

``judge_in_child`` runs it from the bot or the CLI, off the event loop.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from training.chat_format import load_clone_spec
from training.dataset import read_jsonl
from training.evaluate import score_samples
from training.modeling import Device, load_adapter_tokenizer, load_base_model
from training.runner import EvaluationError, child_error, run_json_child
from training.style_checks import style_scores
from training.style_eval import (
    DEFAULT_LIMIT,
    DEFAULT_MAX_NEW_TOKENS,
    generate_with,
    held_out_pairs,
    spread,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Judgement:
    """What one judging process found."""

    candidate: dict[str, float]
    """The new adapter's eval figures (eval_loss, accuracies, token counts)."""
    serving: dict[str, float] | None = None
    """The serving adapter's, on the same eval set in the same process; None: none given or
    it failed (``serving_error``)."""
    serving_error: str | None = None
    style: dict[str, float] = field(default_factory=dict)
    """The new adapter's ``style_*`` figures (empty when they failed: ``style_error``)."""
    style_error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "candidate": self.candidate,
            "serving": self.serving,
            "serving_error": self.serving_error,
            "style": self.style,
            "style_error": self.style_error,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Judgement:
        serving = data.get("serving")
        return cls(
            candidate={k: float(v) for k, v in data["candidate"].items()},
            serving={k: float(v) for k, v in serving.items()} if serving else None,
            serving_error=data.get("serving_error"),
            style={k: float(v) for k, v in (data.get("style") or {}).items()},
            style_error=data.get("style_error"),
        )


class JudgeError(EvaluationError):
    """The new adapter could not be scored; the message is the child's one-line error."""


def judge(
    candidate: Path,
    serving: Path | None,
    eval_file: Path,
    *,
    max_length: int,
    style_limit: int = DEFAULT_LIMIT,
    style_max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
    device: Device = "auto",
) -> Judgement:
    """Score ``candidate`` (and ``serving``) on ``eval_file``, then ``candidate``'s style."""
    from peft import PeftModel

    samples = read_jsonl(eval_file)
    spec = load_clone_spec(candidate)
    tokenizer = load_adapter_tokenizer(candidate, spec.base_model)
    base = load_base_model(spec.base_model, device)
    model = PeftModel.from_pretrained(base, str(candidate), adapter_name="candidate")
    model.eval()
    scores = score_samples(model, tokenizer, spec, samples, max_length=max_length)
    logger.info("candidate scored: eval_loss %.4f", scores["eval_loss"])
    style, style_error = _style(model, tokenizer, spec, samples, style_limit, style_max_new_tokens)
    if serving is None:
        return Judgement(scores, style=style, style_error=style_error)
    try:
        serving_spec = load_clone_spec(serving)
        serving_tokenizer = load_adapter_tokenizer(serving, serving_spec.base_model)
        if serving_spec.base_model != spec.base_model:
            del model, base
            base = load_base_model(serving_spec.base_model, device)
            model = PeftModel.from_pretrained(base, str(serving), adapter_name="serving")
        else:
            model.load_adapter(str(serving), adapter_name="serving", is_trainable=False)
            model.set_adapter("serving")
        model.eval()
        serving_scores = score_samples(
            model, serving_tokenizer, serving_spec, samples, max_length=max_length
        )
    except (OSError, ValueError, RuntimeError) as exc:
        logger.warning("the serving adapter could not be scored: %s", type(exc).__name__)
        return Judgement(scores, None, _one_line(exc), style, style_error)
    return Judgement(scores, serving_scores, None, style, style_error)


def _style(
    model: Any, tokenizer: Any, spec: Any, samples: Any, limit: int, max_new_tokens: int
) -> tuple[dict[str, float], str | None]:
    """The style figures of the loaded adapter, or the reason there are none."""
    pairs = spread(held_out_pairs(samples), limit)
    if not pairs:
        return {}, "the eval set has no owner replies to compare with"
    try:
        generated = generate_with(
            model, tokenizer, spec, [h for h, _ in pairs], max_new_tokens=max_new_tokens
        )
    except (ValueError, RuntimeError) as exc:
        return {}, _one_line(exc)
    return style_scores(generated, [real for _, real in pairs]), None


def _one_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".splitlines()[0][:300]


async def judge_in_child(
    candidate: Path,
    serving: Path | None,
    eval_file: Path,
    *,
    max_length: int,
    log_path: Path,
    style_limit: int = DEFAULT_LIMIT,
    python: str = sys.executable,
    pid_path: Path | None = None,
) -> Judgement:
    """Run ``python -m training.judge`` and return its judgement; JudgeError on failure.

    Cancelling the awaiting task stops the child (and anything it started) and returns once
    it has exited. ``pid_path`` records the child: a judge a killed bot left there is stopped
    before this one starts, so one adapter is never judged twice at once.
    """
    args = ["--candidate", str(candidate), "--eval-file", str(eval_file)]
    args += ["--max-length", str(max_length), "--style-limit", str(style_limit)]
    if serving is not None:
        args += ["--serving", str(serving)]
    returncode, report = await run_json_child(
        "training.judge", args, log_path=log_path, python=python, pid_path=pid_path
    )
    if returncode != 0 or "candidate" not in report:
        error = child_error(report, log_path, returncode)
        raise JudgeError(f"judging {candidate.name} failed: {error}")
    return Judgement.from_dict(report)


def main(argv: list[str] | None = None) -> int:
    """Print the judgement as one JSON line; exit 1 with a one-line error on failure."""
    parser = argparse.ArgumentParser(prog="python -m training.judge", description=__doc__)
    parser.add_argument("--candidate", type=Path, required=True)
    parser.add_argument("--serving", type=Path)
    parser.add_argument("--eval-file", type=Path, required=True)
    parser.add_argument("--max-length", type=int, default=1024)
    parser.add_argument("--style-limit", type=int, default=DEFAULT_LIMIT)
    parser.add_argument("--style-max-new-tokens", type=int, default=DEFAULT_MAX_NEW_TOKENS)
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    try:
        judgement = judge(
            args.candidate,
            args.serving,
            args.eval_file,
            max_length=args.max_length,
            style_limit=args.style_limit,
            style_max_new_tokens=args.style_max_new_tokens,
            device=args.device,
        )
    except (OSError, ValueError) as exc:
        print(json.dumps({"error": _one_line(exc)}), flush=True)
        return 1
    print(json.dumps(judgement.to_dict()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
