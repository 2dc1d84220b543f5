"""Score an adapter on an eval set: loss and token accuracy on the owner's tokens only.

The quality gate compares the candidate and the serving adapter with this one function on
the same eval file, so the comparison never depends on how a trainer averaged its batches.
Run as ``python -m training.evaluate --adapter DIR --eval-file eval.jsonl``; it prints one
JSON line with the metrics.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from training.chat_format import END_OF_TURN, CloneSpec, load_clone_spec, tokenize_for_training
from training.dataset import Sample, read_jsonl
from training.modeling import Device, load_adapter_tokenizer, load_base_model

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

logger = logging.getLogger(__name__)


def structural_token_ids(tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """Ids of the tokens that only structure a turn: <|im_end|> and pure newlines."""
    end_of_turn = tokenizer.convert_tokens_to_ids(END_OF_TURN)
    assert isinstance(end_of_turn, int)
    ids = {end_of_turn}
    for newlines in ("\n", "\n\n"):
        encoded = tokenizer(newlines, add_special_tokens=False)["input_ids"]
        if len(encoded) == 1:
            ids.add(int(encoded[0]))
    return sorted(ids)


def evaluate_adapter(
    adapter_dir: Path, eval_file: Path, *, max_length: int = 1024, device: Device = "auto"
) -> dict[str, float]:
    """Token-weighted loss and accuracy of the adapter on the assistant tokens of `eval_file`.

    Each sample is rendered with the adapter's own chat template (from clone.json) and its
    own system message, as at serving time. Samples longer than `max_length` are cut to it.
    """
    from peft import PeftModel

    spec = load_clone_spec(adapter_dir)
    tokenizer = load_adapter_tokenizer(adapter_dir, spec.base_model)
    model = PeftModel.from_pretrained(
        load_base_model(spec.base_model, device, recorded=spec.precision), str(adapter_dir)
    )
    model.eval()
    return score_samples(model, tokenizer, spec, read_jsonl(eval_file), max_length=max_length)


def score_samples(
    model: Any,
    tokenizer: PreTrainedTokenizerBase,
    spec: CloneSpec,
    samples: list[Sample],
    *,
    max_length: int,
) -> dict[str, float]:
    """``evaluate_adapter``'s figures for a loaded model (its active adapter) on ``samples``."""
    import torch

    if not samples:
        raise ValueError("the eval set has no samples to evaluate on")
    loss_sum = 0.0
    correct = 0
    tokens = 0
    content_correct = 0
    content_tokens = 0
    structural = torch.tensor(structural_token_ids(tokenizer))
    with torch.inference_mode():
        for sample in samples:
            encoded = tokenize_for_training(
                tokenizer, sample, chat_template=spec.chat_template, max_length=max_length
            )
            ids = torch.tensor([encoded["input_ids"][:max_length]], device=model.device)
            mask = torch.tensor([encoded["assistant_masks"][:max_length]], device=model.device)
            logits = model(input_ids=ids).logits[:, :-1].float()
            targets = ids[:, 1:]
            scored = mask[:, 1:].bool()
            if not bool(scored.any()):
                continue
            losses = torch.nn.functional.cross_entropy(
                logits.transpose(1, 2), targets, reduction="none"
            )
            hits = logits.argmax(-1) == targets
            loss_sum += float(losses[scored].sum())
            correct += int(hits[scored].sum())
            tokens += int(scored.sum())
            # "\n" and <|im_end|> are easy to predict and inflate accuracy on short replies.
            content = scored & ~torch.isin(targets, structural.to(targets.device))
            content_correct += int(hits[content].sum())
            content_tokens += int(content.sum())
    if tokens == 0:
        raise ValueError(f"the eval set has no owner tokens within max_length={max_length}")
    return {
        "eval_loss": loss_sum / tokens,
        "eval_mean_token_accuracy": correct / tokens,
        "eval_content_token_accuracy": content_correct / content_tokens if content_tokens else 0.0,
        "eval_tokens": float(tokens),
        "eval_content_tokens": float(content_tokens),
        "eval_samples": float(len(samples)),
    }


def main(argv: list[str] | None = None) -> int:
    """Print the adapter's metrics as one JSON line; exit 1 with a one-line error on failure."""
    parser = argparse.ArgumentParser(prog="python -m training.evaluate", description=__doc__)
    parser.add_argument("--adapter", type=Path, required=True)
    parser.add_argument("--eval-file", type=Path, required=True)
    parser.add_argument("--max-length", type=int, default=1024)
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    try:
        metrics = evaluate_adapter(
            args.adapter, args.eval_file, max_length=args.max_length, device=args.device
        )
    except (OSError, ValueError) as exc:
        print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}), flush=True)
        return 1
    print(json.dumps(metrics), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
