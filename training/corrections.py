"""The owner's /fix corrections as training samples, shaped like the corpus samples.

Each correction becomes one sample: the system prompt, the conversation before the corrected
reply as the clone saw it (the clone's own earlier replies as context, weight 0), and the
owner's better text as the final assistant turn, the only one trained on.
Corrections only ever train: they are never evaluated.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from storage.corrections import ContextTurn, Correction
from training.chat_format import ChatMessage, TokenCounter
from training.config import DatasetConfig
from training.samples import Sample
from training.turns import shape_text

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase


@dataclass(frozen=True)
class CorrectionSamples:
    """The samples made from corrections, and why others were left out."""

    samples: list[Sample]
    drops: dict[str, int] = field(default_factory=dict)


def correction_samples(
    corrections: Sequence[Correction],
    config: DatasetConfig,
    tokenizer: PreTrainedTokenizerBase | None = None,
) -> CorrectionSamples:
    """One sample per usable correction; the oldest context turns go first when it is long.

    Left out (counted under ``correction_<reason>``): ``no_prompt`` (no user turn before the
    corrected reply) and ``too_long`` (the last user turn and the better text alone exceed
    ``max_seq_tokens``).
    """
    counter = TokenCounter(config, tokenizer)
    samples: list[Sample] = []
    drops: Counter[str] = Counter()
    for correction in corrections:
        turns = context_turns(correction.context, config)
        if not turns or turns[-1]["role"] != "user":
            drops["correction_no_prompt"] += 1
            continue
        reply: ChatMessage = {
            "role": "assistant",
            "content": shape_text(correction.better_text, config),
        }
        sample = fit_sample(
            [system_of(correction.context, config)], turns, reply, counter, config.max_seq_tokens
        )
        if sample is None:
            drops["correction_too_long"] += 1
            continue
        samples.append(sample)
    return CorrectionSamples(samples=samples, drops=dict(sorted(drops.items())))


def system_of(context: Sequence[ContextTurn], config: DatasetConfig) -> ChatMessage:
    """The system message a clone reply was answered with (its memory block included), or
    the system prompt for a prompt stored without one."""
    if context and context[0]["role"] == "system":
        return {"role": "system", "content": context[0]["content"]}
    return {"role": "system", "content": config.system_prompt}


def context_turns(context: Sequence[ContextTurn], config: DatasetConfig) -> list[ChatMessage]:
    """The turns a clone reply answered, through the turn shaper's text rules; the clone's
    own earlier replies are context (weight 0): they are not the owner's words."""
    turns: list[ChatMessage] = []
    for turn in context:
        if turn["role"] == "system":
            continue
        content = shape_text(turn["content"], config)
        if turn["role"] == "assistant" and content:
            turns.append({"role": "assistant", "content": content, "weight": 0})
        elif content:
            turns.append({"role": "user", "content": content})
    return turns


def fit_sample(
    head: list[ChatMessage],
    turns: list[ChatMessage],
    reply: ChatMessage,
    counter: TokenCounter,
    max_tokens: int,
) -> Sample | None:
    """The sample with as much of the context as fits, cut at user turns from the oldest."""
    while turns:
        sample = [*head, *turns, reply]
        if counter.sample(sample) <= max_tokens:
            return sample
        turns = turns[1:]
        while turns and turns[0]["role"] != "user":
            turns = turns[1:]
    return None
