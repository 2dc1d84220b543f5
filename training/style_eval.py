"""Let an adapter answer held-out conversations and compare its style with the owner's.

Run as ``python -m training.style_eval --adapter DIR --eval-file eval.jsonl``; it prints one
JSON line: the ``training.style_checks`` figures (``style_*``) and ``style_samples``, or
``{"error": ...}`` with exit status 1.

What is compared: each eval sample (``{"messages": [...]}``, as ``training.prepare`` writes
``eval.jsonl``) gives one pair, its *last* owner reply and the messages before it. They are
rendered with ``render_prompt``, with the adapter's chat template from clone.json and the
sample's own system message (the system prompt and the sample's memory block, the one
serving would build for those turns), exactly as serving renders them. Earlier owner
replies in a sample stay in the context but are not scored, so each conversation window
counts once.

How replies are generated: as the bot would answer, with clone.json's generation settings
(``max_new_tokens`` capped by ``--max-new-tokens``), stopping at ``<|im_end|>`` or
``<|endoftext|>``. When those settings sample, the generator is seeded with ``seed + i``
before the i-th reply, so a run is reproducible on the same device and one reply does not
depend on the others; greedy settings are deterministic anyway.

With ``--limit N`` only N samples are used, spread evenly over the file (the eval set is in
time order, so a prefix would only cover its oldest conversations).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from training.chat_format import (
    PAD_TOKEN,
    STOP_TOKENS,
    ChatMessage,
    CloneSpec,
    load_clone_spec,
    render_prompt,
)
from training.config import GenerationSettings
from training.dataset import Sample, read_jsonl
from training.memory import memory_snippets
from training.modeling import Device, load_adapter_tokenizer, load_base_model
from training.style_checks import style_scores

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

logger = logging.getLogger(__name__)

DEFAULT_LIMIT = 64
DEFAULT_MAX_NEW_TOKENS = 64


def held_out_pairs(samples: Sequence[Sample]) -> list[tuple[list[ChatMessage], str]]:
    """(messages before the last owner reply, that reply) for each sample with an owner reply.

    The messages start with the sample's system message (with its memory block).
    """
    pairs = []
    for sample in samples:
        turns: list[ChatMessage] = [{"role": m["role"], "content": m["content"]} for m in sample]
        last = max((i for i, m in enumerate(turns) if m["role"] == "assistant"), default=None)
        if last is None or not turns[last]["content"].strip():
            continue
        pairs.append((turns[:last], turns[last]["content"]))
    return pairs


def pair_snippets(pairs: Sequence[tuple[list[ChatMessage], str]]) -> list[list[str]]:
    """The memory block lines each pair's prompt showed ([] for none)."""
    return [
        memory_snippets(history[0]["content"])
        if history and history[0]["role"] == "system"
        else []
        for history, _ in pairs
    ]


def spread(items: Sequence[Any], limit: int) -> list[Any]:
    """At most ``limit`` items, evenly spaced over the sequence, first one included."""
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    if len(items) <= limit:
        return list(items)
    return [items[i * len(items) // limit] for i in range(limit)]


def generation_kwargs(
    tokenizer: PreTrainedTokenizerBase, settings: GenerationSettings
) -> dict[str, Any]:
    """Keyword arguments for ``model.generate``, as the bot's engine passes them."""
    return {
        **settings.to_generate_kwargs(),
        "eos_token_id": tokenizer.convert_tokens_to_ids(list(STOP_TOKENS)),
        "pad_token_id": tokenizer.convert_tokens_to_ids(PAD_TOKEN),
    }


def generate_replies(
    adapter_dir: Path,
    histories: Sequence[Sequence[ChatMessage]],
    *,
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
    seed: int = 0,
    device: Device = "auto",
) -> list[str]:
    """The adapter's reply to each history, generated as serving generates (see module doc)."""
    from peft import PeftModel

    spec: CloneSpec = load_clone_spec(adapter_dir)
    tokenizer = load_adapter_tokenizer(adapter_dir, spec.base_model)
    model = PeftModel.from_pretrained(
        load_base_model(spec.base_model, device, recorded=spec.precision), str(adapter_dir)
    )
    model.eval()
    replies = generate_ended(
        model, tokenizer, spec, histories, max_new_tokens=max_new_tokens, seed=seed
    )
    return [text for text, _ in replies]


def generate_ended(
    model: Any,
    tokenizer: PreTrainedTokenizerBase,
    spec: CloneSpec,
    histories: Sequence[Sequence[ChatMessage]],
    *,
    max_new_tokens: int,
    seed: int = 0,
) -> list[tuple[str, bool]]:
    """``generate_replies`` for a loaded model (its active adapter), each reply with whether it
    ended on a stop token (False: it was cut at the token limit)."""
    import torch

    capped = replace(
        spec.generation,
        max_new_tokens=min(max_new_tokens, spec.generation.max_new_tokens),
    )
    kwargs = generation_kwargs(tokenizer, capped)
    stops = set(kwargs["eos_token_id"])
    replies = []
    with torch.inference_mode():
        for index, history in enumerate(histories):
            torch.manual_seed(seed + index)
            prompt = render_prompt(tokenizer, spec, history)
            inputs = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
            inputs = inputs.to(model.device)
            output = model.generate(**inputs, **kwargs)
            new_tokens = output[0, inputs["input_ids"].shape[1] :]
            ended = any(int(token) in stops for token in new_tokens)
            text = str(tokenizer.decode(new_tokens, skip_special_tokens=True)).strip()
            replies.append((text, ended))
    return replies


def style_eval(
    adapter_dir: Path,
    eval_file: Path,
    *,
    limit: int = DEFAULT_LIMIT,
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
    seed: int = 0,
    device: Device = "auto",
) -> dict[str, float]:
    """Style figures of the adapter's replies against the owner's on ``eval_file``."""
    if max_new_tokens < 1:
        raise ValueError(f"--max-new-tokens must be at least 1, got {max_new_tokens}")
    if limit < 1:
        raise ValueError(f"--limit must be at least 1, got {limit}")
    load_clone_spec(adapter_dir)  # a bad adapter fails before the eval file is read
    pairs = spread(held_out_pairs(read_jsonl(eval_file)), limit)
    if not pairs:
        raise ValueError(f"{eval_file} has no owner replies to compare with")
    generated = generate_replies(
        adapter_dir,
        [history for history, _ in pairs],
        max_new_tokens=max_new_tokens,
        seed=seed,
        device=device,
    )
    logger.info("generated %d replies for the style checks", len(generated))
    return style_scores(generated, [real for _, real in pairs], pair_snippets(pairs))


def main(argv: list[str] | None = None) -> int:
    """Print the style figures as one JSON line; exit 1 with a one-line error on failure."""
    parser = argparse.ArgumentParser(prog="python -m training.style_eval", description=__doc__)
    parser.add_argument("--adapter", type=Path, required=True)
    parser.add_argument("--eval-file", type=Path, required=True)
    parser.add_argument("--limit", type=int, default=DEFAULT_LIMIT)
    parser.add_argument("--max-new-tokens", type=int, default=DEFAULT_MAX_NEW_TOKENS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    try:
        scores = style_eval(
            args.adapter,
            args.eval_file,
            limit=args.limit,
            max_new_tokens=args.max_new_tokens,
            seed=args.seed,
            device=args.device,
        )
    except (OSError, ValueError) as exc:
        print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}), flush=True)
        return 1
    print(json.dumps(scores), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
