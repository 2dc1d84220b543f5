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
(``training.style_eval``) give the style figures, and are kept beside it as the owner's blind
test (``training.quiz_set``).

Each adapter's base model is loaded in exactly the precision its clone.json records (what it was
trained on and will serve with; NF4 needs CUDA), from where ``training.preflight`` finds it: a
base model missing offline fails at once, saying how to provide it. The runner that trained the
adapter runs the judge there (``Runner.judge``: ``judge_in_child`` here, over SSH on a GPU host),
off the event loop.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from training.chat_format import CloneSpec, load_clone_spec
from training.child_exit import exit_child
from training.dataset import read_jsonl
from training.evaluate import score_samples
from training.modeling import (
    Device,
    load_adapter_tokenizer,
    load_base_model,
    quantization_for,
)
from training.preflight import ModelSource, PreflightError, locate_model
from training.quiz_set import quiz_items, save_quiz_set
from training.runner import EvaluationError, child_error, run_json_child
from training.style_checks import style_scores
from training.style_eval import (
    DEFAULT_LIMIT,
    DEFAULT_MAX_NEW_TOKENS,
    generate_ended,
    held_out_pairs,
    pair_snippets,
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
    samples = read_jsonl(eval_file)
    spec = load_clone_spec(candidate)
    source = locate_model(spec.base_model, "weights")  # before torch loads: a missing one at once
    from peft import PeftModel

    tokenizer = load_adapter_tokenizer(candidate, spec.base_model)
    base = _load_base(spec, source, device)
    model = PeftModel.from_pretrained(base, str(candidate), adapter_name="candidate")
    model.eval()
    scores = score_samples(model, tokenizer, spec, samples, max_length=max_length)
    logger.info("candidate scored: eval_loss %.4f", scores["eval_loss"])
    style, style_error = _style(
        candidate, model, tokenizer, spec, samples, style_limit, style_max_new_tokens
    )
    if serving is None:
        return Judgement(scores, style=style, style_error=style_error)
    try:
        serving_spec = load_clone_spec(serving)
        serving_tokenizer = load_adapter_tokenizer(serving, serving_spec.base_model)
        if (serving_spec.base_model, serving_spec.precision) != (spec.base_model, spec.precision):
            del model, base
            source = locate_model(serving_spec.base_model, "weights")
            base = _load_base(serving_spec, source, device)
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


def _load_base(spec: CloneSpec, source: ModelSource, device: Device) -> Any:
    """The adapter's base model in exactly its recorded precision (it is what serves)."""
    quantization = quantization_for(spec.precision)
    return load_base_model(source.path, device, quantization, recorded=spec.precision)


def _style(
    adapter_dir: Path,
    model: Any,
    tokenizer: Any,
    spec: Any,
    samples: Any,
    limit: int,
    max_new_tokens: int,
) -> tuple[dict[str, float], str | None]:
    """The style figures of the loaded adapter, or the reason there are none; its replies
    are kept beside it as the owner's quiz (``training.quiz_set``)."""
    pairs = spread(held_out_pairs(samples), limit)
    if not pairs:
        return {}, "the eval set has no owner replies to compare with"
    try:
        generated = generate_ended(
            model, tokenizer, spec, [h for h, _ in pairs], max_new_tokens=max_new_tokens
        )
    except (ValueError, RuntimeError) as exc:
        return {}, _one_line(exc)
    try:
        save_quiz_set(adapter_dir, quiz_items(pairs, generated))
    except OSError as exc:  # the quiz is a bonus: the judgement stands without it
        logger.warning("the quiz set could not be written: %s", type(exc).__name__)
    replies = [text for text, _ in generated]
    return style_scores(replies, [real for _, real in pairs], pair_snippets(pairs)), None


def _one_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".splitlines()[0][:300]


JUDGE_PID_NAME = "judge.pid"  # beside the run's judge log: the judging child while it runs


async def judge_in_child(
    candidate: Path,
    serving: Path | None,
    eval_file: Path,
    *,
    max_length: int,
    log_path: Path,
    style_limit: int = DEFAULT_LIMIT,
    python: str = sys.executable,
    env: Mapping[str, str] | None = None,
    pid_path: Path | None = None,
) -> Judgement:
    """Run ``python -m training.judge`` and return its judgement; JudgeError on failure.

    Cancelling the awaiting task stops the child (and anything it started) and returns once
    it has exited. ``env`` None: this process's environment. ``pid_path`` records the child:
    a judge a killed bot left there is stopped before this one starts, so one adapter is never
    judged twice at once.
    """
    args = judge_args(candidate, serving, eval_file, max_length, style_limit)
    returncode, report = await run_json_child(
        "training.judge", args, log_path=log_path, python=python, env=env, pid_path=pid_path
    )
    return judgement_of(report, returncode, log_path, candidate.name)


def judge_args(
    candidate: Path | str,
    serving: Path | str | None,
    eval_file: Path | str,
    max_length: int,
    style_limit: int = DEFAULT_LIMIT,
) -> list[str]:
    """``python -m training.judge``'s arguments."""
    args = ["--candidate", str(candidate), "--eval-file", str(eval_file)]
    args += ["--max-length", str(max_length), "--style-limit", str(style_limit)]
    if serving is not None:
        args += ["--serving", str(serving)]
    return args


def judgement_of(report: dict[str, Any], returncode: int, log_path: Path, name: str) -> Judgement:
    """The judge child's answer as a Judgement; JudgeError with its reason when it failed."""
    if returncode != 0 or "candidate" not in report:
        error = child_error(report, log_path, returncode)
        raise JudgeError(f"judging {name} failed: {error}")
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
    except PreflightError as exc:  # one message that says what to do
        print(json.dumps({"error": str(exc)}), flush=True)
        return 1
    except (OSError, ValueError) as exc:
        print(json.dumps({"error": _one_line(exc)}), flush=True)
        return 1
    print(json.dumps(judgement.to_dict()), flush=True)
    return 0


if __name__ == "__main__":
    exit_child(main())
