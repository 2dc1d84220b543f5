"""The owner's feedback as examples for the preference stage (``training.preference``).

* A /fix correction is a pair for DPO: the turns the corrected reply answered, as the clone saw
  them; the owner's better text (chosen) and the clone's reply (rejected).
* A reply marked good or bad (a reaction or a label button) that was not corrected is one
  unpaired example for KTO, desirable or not. A corrected reply's label is left out: its pair
  says more.

Prompts are shaped as the corpus samples are: the run's system prompt first, each turn through
the turn shaper's text rules (``training.corrections.context_turns``), the oldest context
turns cut until the prompt and the longer reply fit ``max_seq_tokens``. ``prepare`` writes
them into the run directory; the training process decides whether the stage runs.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

from storage.corrections import ContextTurn, Correction
from storage.private_files import open_private
from storage.reply_labels import ReplyLabel
from training.chat_format import ChatMessage, TokenCounter
from training.config import DatasetConfig
from training.corrections import context_turns, fit_sample, system_of
from training.turns import shape_text

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase


class PreferencePair(TypedDict):
    """A prompt (system message first) with the owner's reply and the rejected clone reply."""

    prompt: list[ChatMessage]
    chosen: str
    rejected: str


class LabelledReply(TypedDict):
    """A prompt with a clone reply the owner marked good (True) or bad (False)."""

    prompt: list[ChatMessage]
    completion: str
    label: bool


@dataclass(frozen=True)
class PreferenceData:
    """Every usable signal of the owner, and why the others were left out."""

    pairs: list[PreferencePair] = field(default_factory=list)
    unpaired: list[LabelledReply] = field(default_factory=list)
    drops: dict[str, int] = field(default_factory=dict)

    @property
    def signals(self) -> int:
        """Examples the stage can learn from (the count PREFERENCE_MIN_PAIRS is compared to)."""
        return len(self.pairs) + len(self.unpaired)


def preference_data(
    corrections: Sequence[Correction],
    labels: Sequence[ReplyLabel],
    config: DatasetConfig,
    tokenizer: PreTrainedTokenizerBase | None = None,
) -> PreferenceData:
    """The pairs and unpaired examples of the owner's corrections and labels.

    Left out (counted under ``preference_<reason>``): ``no_prompt`` (no user turn before the
    reply), ``empty`` (a reply with no text left after cleaning), ``same`` (the correction
    says what the clone said) and ``too_long`` (the last user turn and the reply alone exceed
    ``max_seq_tokens``).
    """
    counter = TokenCounter(config, tokenizer)
    drops: Counter[str] = Counter()
    pairs: list[PreferencePair] = []
    for correction in corrections:
        chosen = shape_text(correction.better_text, config)
        rejected = shape_text(correction.clone_text, config)
        if chosen and chosen == rejected:
            drops["preference_same"] += 1
            continue
        prompt = _prompt(correction.context, [chosen, rejected], config, counter, drops)
        if prompt is not None:
            pairs.append({"prompt": prompt, "chosen": chosen, "rejected": rejected})
    corrected = {(c.chat_id, c.turn_id) for c in corrections}
    unpaired: list[LabelledReply] = []
    for label in labels:
        if (label.chat_id, label.turn_id) in corrected:
            continue
        completion = shape_text(label.reply_text, config)
        prompt = _prompt(label.context, [completion], config, counter, drops)
        if prompt is not None:
            unpaired.append(
                {"prompt": prompt, "completion": completion, "label": label.label == "good"}
            )
    return PreferenceData(pairs, unpaired, dict(sorted(drops.items())))


def _prompt(
    context: Sequence[ContextTurn],
    replies: list[str],
    config: DatasetConfig,
    counter: TokenCounter,
    drops: Counter[str],
) -> list[ChatMessage] | None:
    """The prompt for ``replies`` (as much context as fits the longest), or None (counted)."""
    if not all(replies):
        drops["preference_empty"] += 1
        return None
    turns = context_turns(context, config)
    if not turns or turns[-1]["role"] != "user":
        drops["preference_no_prompt"] += 1
        return None
    longest = max(replies, key=lambda text: counter.message("assistant", text))
    reply: ChatMessage = {"role": "assistant", "content": longest}
    system = system_of(context, config)
    sample = fit_sample([system], turns, reply, counter, config.max_seq_tokens)
    if sample is None:
        drops["preference_too_long"] += 1
        return None
    return sample[:-1]


def write_preference_data(path: Path, data: PreferenceData) -> int:
    """Write one JSON line per example (pairs first); return how many."""
    with open_private(path) as out:
        for pair in data.pairs:
            out.write(json.dumps({"kind": "pair", **pair}, ensure_ascii=False) + "\n")
        for reply in data.unpaired:
            out.write(json.dumps({"kind": "unpaired", **reply}, ensure_ascii=False) + "\n")
    return data.signals


def read_preference_data(path: Path) -> PreferenceData:
    """Read ``write_preference_data``'s file; ``ValueError`` names the bad line."""
    data = PreferenceData()
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            _add_example(data, json.loads(line))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{path}: line {number} is no preference example ({exc!r})") from exc
    return data


def _add_example(data: PreferenceData, item: dict[str, Any]) -> None:
    prompt = _checked_prompt(item["prompt"])
    if item["kind"] == "pair":
        chosen, rejected = _text(item, "chosen"), _text(item, "rejected")
        data.pairs.append({"prompt": prompt, "chosen": chosen, "rejected": rejected})
    elif item["kind"] == "unpaired" and isinstance(item["label"], bool):
        completion = _text(item, "completion")
        data.unpaired.append({"prompt": prompt, "completion": completion, "label": item["label"]})
    else:
        raise ValueError("kind must be 'pair' or 'unpaired' (with a true/false label)")


def _text(item: dict[str, Any], key: str) -> str:
    value = item[key]
    if not isinstance(value, str) or not value:
        raise ValueError(f"{key} must be a non-empty string")
    return value


def _checked_prompt(value: Any) -> list[ChatMessage]:
    if not isinstance(value, list) or len(value) < 2:
        raise ValueError("prompt must be a list of messages: the system message, then turns")
    roles = [message["role"] for message in value]
    if roles[0] != "system" or roles[-1] != "user" or "system" in roles[1:]:
        raise ValueError("prompt must start with the system message and end on a user turn")
    if any(role not in ("user", "assistant") for role in roles[1:]):
        raise ValueError(f"unknown role in {roles}")
    return [{"role": message["role"], "content": str(message["content"])} for message in value]
