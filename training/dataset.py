"""Owner's messages -> conversations -> cleaned multi-turn samples -> a time-ordered split.

The pipeline, one chat at a time (memory holds one chat's messages plus the samples made so
far, so the builder can stream a million stored messages):

1. the turn shaper (``training.turns``), the same code serving uses: message rules (kinds
   without typed text, forwarded, via_bot, empty, ``technical``), cleaning and the privacy
   scrub; sessions, group neighbourhoods, merged turns and exchanges;
2. reply rules and duplicates mark which owner replies are trained on
   (``training.samples.ReplyRules``); the others stay in the samples as context;
3. windows that fit ``max_seq_tokens`` and end on a trained reply (``training.samples``);
4. the split: the most recent ~``eval_fraction`` of conversations (by start) are held out.

Every message left out and every reply not trained on is counted under its reason in
``DatasetBuild.drops``: message-level reasons count messages, reply-level reasons count
replies (see ``training.samples``). Message text is never logged.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import os
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from storage.models import MessageRecord
from storage.private_files import open_private
from training.chat_format import ChatMessage, TokenCounter
from training.config import DatasetConfig
from training.samples import ReplyRules, Sample, targets, windows
from training.turns import (
    Line,
    chat_conversations,
    group_segments,
    is_group,
    sessions,
    shape_line,
)

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

logger = logging.getLogger(__name__)

__all__ = ["DatasetBuild", "Sample", "build_dataset", "fingerprint", "read_jsonl", "write_jsonl"]


@dataclass(frozen=True)
class DatasetBuild:
    """Result of ``build_dataset``: the split samples and an account of everything left out."""

    train: list[Sample]
    eval: list[Sample]
    drops: dict[str, int]
    conversations: int
    """Conversations that gave at least one sample (a long one gives several windows)."""
    fingerprint: str
    stats: dict[str, int] = field(default_factory=dict)
    dropped_reply_words: dict[str, list[int]] = field(default_factory=dict)
    """Word counts of the owner replies dropped by each pair rule (for the length report)."""
    chat_replies: dict[int, int] = field(default_factory=dict)
    """Owner replies kept per chat id (which chats the clone learns most from)."""
    eval_fingerprint: str = ""
    """sha256 of the eval set alone; equal values mean comparable eval losses."""


@dataclass(frozen=True)
class _Built:
    chat_id: int
    start: datetime
    samples: list[Sample]


def _chat_groups(messages: Iterable[MessageRecord]) -> Iterator[list[MessageRecord]]:
    """Each chat's messages, one chat at a time.

    A list (or other sequence) is grouped here whatever its order. Any other iterable must
    arrive grouped by ascending chat id, as storage reads it (``ORDER BY chat_id, ...``), so
    only one chat is ever held in memory; a chat id that goes back is an error.
    """
    if isinstance(messages, Sequence):
        ids = [m.chat_id for m in messages]
        if any(a > b for a, b in itertools.pairwise(ids)):
            messages = sorted(messages, key=lambda m: m.chat_id)
    current: list[MessageRecord] = []
    for message in messages:
        if current and message.chat_id != current[0].chat_id:
            if message.chat_id < current[0].chat_id:
                raise ValueError(
                    "build_dataset: a streamed corpus must be ordered by chat_id (storage "
                    "order); pass a list to have it grouped"
                )
            yield current
            current = []
        current.append(message)
    if current:
        yield current


def _lines(
    chat: Sequence[MessageRecord], config: DatasetConfig, drops: Counter[str]
) -> list[Line]:
    """The chat's messages shaped into lines, in time order (drops counted)."""
    lines = []
    for message in sorted(chat, key=lambda m: (m.date, m.message_id)):
        line = shape_line(message, config)
        if isinstance(line, Line):
            lines.append(line)
        else:
            drops[line] += 1
    return lines


def _out_of_group_context(lines: Sequence[Line], config: DatasetConfig) -> int:
    """Lines of a group that are in no owner's neighbourhood (never reach the dataset)."""
    by_id = {line.record.message_id: line for line in lines}
    used: set[int] = set()
    for session in sessions(lines, config):
        for segment in group_segments(session, by_id, config.group_context_messages):
            used.update(id(line) for line in segment)
    return len(lines) - len(used)


def _split(built: list[_Built], fraction: float) -> tuple[list[_Built], list[_Built]]:
    """Hold out the most recent conversations (by start): style drifts, and a random split
    would put near-duplicates of one period on both sides. At least one conversation on each
    side when there are two or more."""
    ordered = sorted(built, key=lambda b: (b.start, b.chat_id))  # stable: generation order
    count = len(ordered)
    held_out = round(count * fraction)
    held_out = min(max(held_out, 1), count - 1) if count >= 2 else 0
    return ordered[: count - held_out], ordered[count - held_out :]


def _digest(*splits: tuple[str, Sequence[Sample]]) -> str:
    digest = hashlib.sha256()
    for name, samples in splits:
        digest.update(f"[{name}]\n".encode())
        for sample in samples:
            line = json.dumps(sample, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
            digest.update(line.encode("utf-8") + b"\n")
    return digest.hexdigest()


def fingerprint(train: Sequence[Sample], held_out: Sequence[Sample]) -> str:
    """sha256 over the canonical JSON of every sample of both splits (streamed, not joined)."""
    return _digest(("train", train), ("eval", held_out))


def eval_fingerprint(held_out: Sequence[Sample]) -> str:
    """sha256 of the eval set alone."""
    return _digest(("eval", held_out))


def build_dataset(
    messages: Iterable[MessageRecord],
    config: DatasetConfig,
    tokenizer: PreTrainedTokenizerBase | None = None,
) -> DatasetBuild:
    """Turn stored messages into train/eval conversation samples (system prompt first).

    Args:
        messages: the corpus; a list in any order, or an iterable in storage order
            (grouped by ascending chat id), which is consumed one chat at a time.
        config: the dataset rules.
        tokenizer: measures ``max_seq_tokens`` exactly (through ``chat_format.render``);
            without it the ``chars_per_token`` estimate is used.
    """
    config.validate()
    counter = TokenCounter(config, tokenizer)
    rules = ReplyRules(config)
    drops = rules.drops
    built: list[_Built] = []
    chat_replies: dict[int, int] = {}
    stats: Counter[str] = Counter()
    for chat in _chat_groups(messages):
        chat_id = chat[0].chat_id
        stats["messages_seen"] += len(chat)
        lines = _lines(chat, config, drops)
        if not lines:
            continue
        stats["chats"] += 1
        stats["messages_kept"] += len(lines)
        stats["sessions"] += sum(1 for _ in sessions(lines, config))
        if is_group(chat_id):
            stats["group_messages_out_of_context"] += _out_of_group_context(lines, config)
        rules.new_chat(chat_id)
        replies = 0
        for conversation in chat_conversations(lines, config):
            samples = windows(rules.exchanges(conversation), counter, drops)
            if samples:
                built.append(_Built(chat_id, conversation.start, samples))
                replies += sum(len(targets(sample)) for sample in samples)
        if replies:
            chat_replies[chat_id] = replies

    train_part, eval_part = _split(built, config.eval_fraction)
    train = [sample for part in train_part for sample in part.samples]
    held_out = [sample for part in eval_part for sample in part.samples]
    stats.update(rules.stats)
    stats["samples_train"] = len(train)
    stats["samples_eval"] = len(held_out)
    stats["owner_turns"] = sum(chat_replies.values())
    logger.info(
        "dataset: %d messages, %d samples (%d eval), drops %s",
        stats["messages_seen"],
        len(train) + len(held_out),
        len(held_out),
        dict(sorted(drops.items())),
    )
    return DatasetBuild(
        train=train,
        eval=held_out,
        drops=dict(sorted(drops.items())),
        conversations=len(built),
        fingerprint=fingerprint(train, held_out),
        stats=dict(sorted(stats.items())),
        dropped_reply_words={k: list(v) for k, v in sorted(rules.dropped_words.items())},
        chat_replies=chat_replies,
        eval_fingerprint=eval_fingerprint(held_out),
    )


def write_jsonl(path: Path, samples: Iterable[Sample]) -> int:
    """Write one ``{"messages": [...]}`` line per sample (atomically); return the count."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    count = 0
    with open_private(tmp) as handle:  # message text: owner-only
        for sample in samples:
            handle.write(json.dumps({"messages": sample}, ensure_ascii=False) + "\n")
            count += 1
    os.replace(tmp, path)
    return count


def _parse_sample(data: Any, where: str) -> Sample:
    if not isinstance(data, dict) or not isinstance(data.get("messages"), list):
        raise ValueError(f"{where}: expected an object with a 'messages' list")
    sample: Sample = []
    for message in data["messages"]:
        if (
            not isinstance(message, dict)
            or message.get("role") not in ("system", "user", "assistant")
            or not isinstance(message.get("content"), str)
        ):
            raise ValueError(
                f"{where}: each message needs a role (system/user/assistant) and text"
            )
        parsed: ChatMessage = {"role": message["role"], "content": message["content"]}
        if "weight" in message:
            if message["weight"] not in (0, 1) or message["role"] != "assistant":
                raise ValueError(f"{where}: weight is 0 or 1, on assistant turns only")
            parsed["weight"] = int(message["weight"])
        sample.append(parsed)
    return sample


def read_jsonl(path: Path) -> list[Sample]:
    """Read samples written by ``write_jsonl``; errors name the file and line."""
    samples = []
    with Path(path).open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                data = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{where}: not JSON ({exc.msg})") from exc
            samples.append(_parse_sample(data, where))
    return samples
